/**
 * Tokens for tools that run longer than a token lives (load, soak, chaos, fuzz, benchmarks, the
 * operator CLIs). A token is minted on first use and minted again once two thirds of its life has
 * passed, so no call leaves with a token about to expire (a third of the life is still left, far
 * more than any call's deadline), and a busy loop signs a few times an hour, not once per call:
 * the services' verifiers then answer from their cache, as they do for the BFF's own tokens.
 */
import type { Metadata } from '@grpc/grpc-js';
import type { Role } from '../kit/identity.js';
import { bearer, devServiceToken, devUserToken, operatorServiceToken, operatorUserToken } from './credentials.js';

/** Lifetimes the helpers below mint with: the BFF's users' tokens last minutes, operators' an hour. */
const USER_TOKEN_TTL_S = 600;
const OPERATOR_TOKEN_TTL_S = 3600;

interface Entry {
  token: string;
  metadata: Metadata | undefined;
  renewAt: number;
}

/** Tokens by a caller-chosen key, each renewed after two thirds of its life. */
class RenewingTokens {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly now: () => number = Date.now,
    private readonly maxEntries = 100_000,
  ) {}

  /** The token `mint(ttlS)` made for `key`, or a new one if that one is past two thirds of `ttlS`. */
  token(key: string, ttlS: number, mint: (ttlS: number) => string): string {
    return this.entry(key, ttlS, mint).token;
  }

  /** Metadata carrying that token: one instance per token, shared by every caller until renewed, so never add to it. */
  metadata(key: string, ttlS: number, mint: (ttlS: number) => string): Metadata {
    const e = this.entry(key, ttlS, mint);
    return (e.metadata ??= bearer(e.token));
  }

  private entry(key: string, ttlS: number, mint: (ttlS: number) => string): Entry {
    const now = this.now();
    let e = this.entries.get(key);
    if (!e || e.renewAt <= now) {
      // A load over more users than this only mints again; the map never grows without bound.
      if (!e && this.entries.size >= this.maxEntries) this.entries.clear();
      e = { token: mint(ttlS), metadata: undefined, renewAt: now + (ttlS * 1000 * 2) / 3 };
      this.entries.set(key, e);
    }
    return e;
  }
}

const shared = new RenewingTokens();

/**
 * A user's token as the BFF mints it (an admin gets an operator's token, as in devUserToken), for
 * `audience` (default: every gRPC service), renewed before it expires.
 */
export function userToken(userId: string, role: Role, name = '', audience?: readonly string[]): string {
  const ttlS = role === 'admin' ? OPERATOR_TOKEN_TTL_S : USER_TOKEN_TTL_S;
  return shared.token(`u|${userId}|${role}|${name}|${audience?.join(',') ?? '*'}`, ttlS, (ttl) => devUserToken(userId, role, name, { ttlS: ttl, ...(audience ? { audience } : {}) }));
}

/** Fresh metadata for one call as that user (the caller may add to it). */
export function asUser(userId: string, role: Role, name = '', audience?: readonly string[]): Metadata {
  return bearer(userToken(userId, role, name, audience));
}

/**
 * The same, as one Metadata instance shared until the token is renewed: for benchmarks' hot loops,
 * which should not pay for building metadata on every call. Do not add to it.
 */
export function sharedUserMetadata(userId: string, role: Role, name = '', audience?: readonly string[]): Metadata {
  const ttlS = role === 'admin' ? OPERATOR_TOKEN_TTL_S : USER_TOKEN_TTL_S;
  return shared.metadata(`u|${userId}|${role}|${name}|${audience?.join(',') ?? '*'}`, ttlS, (ttl) => devUserToken(userId, role, name, { ttlS: ttl, ...(audience ? { audience } : {}) }));
}

/**
 * An operator's admin token (signed with AUTH_OPERATOR_KEY, or the development operator key): what
 * the operator CLIs call with. `LM_ADMIN_ID` (default 1) is the user id it names.
 */
export function operatorAdminToken(userId = process.env.LM_ADMIN_ID || '1', name = 'operator'): string {
  return shared.token(`op|${userId}|${name}`, OPERATOR_TOKEN_TTL_S, (ttlS) => operatorUserToken(userId, 'admin', name, { ttlS }));
}

/** A mesh service's own token (signed with its development key), renewed before it expires. */
export function serviceToken(service: string, audience?: readonly string[]): string {
  return shared.token(`s|${service}|${audience?.join(',') ?? '*'}`, USER_TOKEN_TTL_S, (ttlS) => devServiceToken(service, { ttlS, ...(audience ? { audience } : {}) }));
}

/** An operator-signed token for another team's service (never a mesh service's name), renewed before it expires. */
export function otherTeamServiceToken(service: string, audience?: readonly string[]): string {
  return shared.token(`os|${service}|${audience?.join(',') ?? '*'}`, OPERATOR_TOKEN_TTL_S, (ttlS) => operatorServiceToken(service, { ttlS, ...(audience ? { audience } : {}) }));
}
