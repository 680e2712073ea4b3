/**
 * Who is calling, proved rather than claimed. Every call between livemesh processes carries a
 * short-lived JWT (EdDSA over Ed25519) in `authorization: Bearer …` metadata:
 *
 * - a **user token**, minted by the BFF after it verified the app's own token (issuer `bff`), or
 *   by an operator's command (issuer `operator`): the user id, role and display name, for the
 *   services named in its audience;
 * - a **service token**, minted by a service for its own calls (issuer and subject = that
 *   service), or by an operator for another team's service (issuer `operator`, any name that is
 *   not one of the mesh's own).
 *
 * Each issuer has its own key pair; a process holds its own private key and every issuer's public
 * key. A compromised Chat can therefore only speak as Chat, never mint money as Gift, and a
 * token meant for Room cannot be replayed to the Ledger. The metadata keys of old
 * (`lm-user-id`, `lm-role`) are not read at all: a bare claim proves nothing.
 */
import { createPrivateKey, createPublicKey, sign as signBytes, type KeyObject } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { LRUCache } from 'lru-cache';
import { DomainError } from './domain-error.js';
import { isPositiveInt64, type Caller, type Role } from './identity.js';

/** The metadata key tokens travel in (HTTP's Authorization header, as every gRPC tool expects). */
export const AUTH_METADATA_KEY = 'authorization';

/** The processes of the mesh; each signs its own service tokens and is an audience. */
export const MESH_SERVICES = ['room', 'gift', 'ledger', 'chat', 'ranking', 'bff'] as const;
export type MeshService = (typeof MESH_SERVICES)[number];
/** The issuer of operators' tokens (admin tokens for debugging and CLIs, other teams' service tokens). */
export const OPERATOR = 'operator';
/** Every key pair a development setup has: one per process, and the operator's. */
export const ISSUERS: readonly string[] = [...MESH_SERVICES, OPERATOR];

/**
 * Where a user's token may travel besides the service it is minted for: a service that calls
 * another on the user's behalf forwards the token unchanged, so the token must name that one too.
 * Chat asks the Ledger for the sender's level as the sender.
 */
export const FORWARDED_TO: Readonly<Partial<Record<MeshService, readonly MeshService[]>>> = { chat: ['ledger'] };

const ROLES: readonly Role[] = ['viewer', 'streamer', 'admin'];
const SERVICE_NAME = /^[a-z][a-z0-9-]{0,62}$/;
/** User id services act under when they call as themselves (recorded as `created_by`); never a real user. */
const SERVICE_USER_ID = '0';
/** Clock skew tolerated between processes, in seconds. */
const CLOCK_TOLERANCE_S = 5;
/** Longest life a token may claim, by issuer kind: mesh processes mint for minutes, operators for days. */
const MAX_LIFETIME_S = { mesh: 15 * 60, operator: 30 * 24 * 3600 };

/** The proven identity behind a token. */
export type Principal = { kind: 'user'; caller: Caller; issuer: string } | { kind: 'service'; service: string; issuer: string };

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/**
 * A compact JWS signed with Ed25519. Signing is synchronous (node:crypto) so a call site can build
 * its metadata without awaiting; verification, where parsing mistakes would matter, is jose's.
 */
export function signJwt(claims: JWTPayload & Record<string, unknown>, issuer: string, key: KeyObject): string {
  const header = b64url(JSON.stringify({ alg: 'EdDSA', typ: 'JWT', kid: issuer }));
  const payload = b64url(JSON.stringify({ iss: issuer, ...claims }));
  const signature = signBytes(null, Buffer.from(`${header}.${payload}`), key);
  return `${header}.${payload}.${b64url(signature)}`;
}

/**
 * Mints this process's tokens: service tokens for its own calls and, in the BFF, user tokens.
 * Tokens are reused while more than a third of their life is left, so a busy caller signs a few
 * times a minute, not once per call.
 */
export class TokenMinter {
  private readonly cache = new LRUCache<string, { token: string; renewAt: number }>({ max: 100_000 });

  constructor(
    readonly issuer: string,
    private readonly key: KeyObject,
    private readonly now: () => number = Date.now,
  ) {}

  /** This process's own token for calls to `audience`. */
  service(audience: string, ttlS = 300): string {
    return this.cached(`s|${audience}`, ttlS, () => ({ kind: 'service', sub: this.issuer, aud: audience }));
  }

  /** A token for `caller`, for the services in `audience` (the called one first). */
  user(caller: Pick<Caller, 'userId' | 'role' | 'name'>, audience: readonly string[], ttlS = 60): string {
    const aud = audience.length === 1 ? audience[0]! : [...audience];
    return this.cached(`u|${caller.userId}|${caller.role}|${caller.name}|${audience.join(',')}`, ttlS, () => ({ kind: 'user', sub: caller.userId, role: caller.role, name: caller.name, aud }));
  }

  private cached(key: string, ttlS: number, claims: () => Record<string, unknown>): string {
    const now = this.now();
    const hit = this.cache.get(key);
    if (hit && hit.renewAt > now) return hit.token;
    const iat = Math.floor(now / 1000);
    const token = signJwt({ ...claims(), iat, exp: iat + ttlS }, this.issuer, this.key);
    this.cache.set(key, { token, renewAt: now + (ttlS * 1000 * 2) / 3 });
    return token;
  }
}

/** A refused token: UNAUTHENTICATED with ErrorInfo.metadata.problem saying why, for the caller to fix. */
function refused(problem: string, message: string): DomainError {
  return new DomainError('unauthenticated', 'UNAUTHENTICATED', `authorization token refused: ${message}`, { metadata: { problem } });
}

/**
 * Verifies tokens addressed to this process. A verified token is remembered (by its full text, so
 * a forged payload under a real signature never matches) until it expires: the signature check
 * with jose, 250-350 µs of CPU on the benchmark machine, is paid once per token rather than once
 * per call (a hit costs about 10 µs, docs/benchmarks.md).
 */
export class TokenVerifier {
  private readonly cache: LRUCache<string, { principal: Principal; exp: number }>;

  constructor(
    readonly audience: string,
    private readonly publicKeys: ReadonlyMap<string, readonly KeyObject[]>,
    private readonly now: () => number = Date.now,
    maxCached = 50_000,
  ) {
    this.cache = new LRUCache({ max: maxCached });
  }

  /** The principal a token proves; a cached token answers synchronously. */
  verify(token: string): Principal | Promise<Principal> {
    const hit = this.cache.get(token);
    if (hit) {
      if (hit.exp * 1000 + CLOCK_TOLERANCE_S * 1000 > this.now()) return hit.principal;
      this.cache.delete(token);
      throw refused('expired', 'token expired');
    }
    return this.verifyFresh(token);
  }

  private async verifyFresh(token: string): Promise<Principal> {
    let payload: JWTPayload | undefined;
    let issuer = '';
    let keys: readonly KeyObject[] = [];
    // Each of the issuer's published keys in turn (more than one only during a rotation).
    for (let i = 0; payload === undefined; i++) {
      try {
        ({ payload } = await jwtVerify(
          token,
          (header) => {
            issuer = typeof header.kid === 'string' ? header.kid : '';
            keys = this.publicKeys.get(issuer) ?? [];
            const key = keys[i];
            if (!key) throw refused('unknown_issuer', `no public key for issuer ${JSON.stringify(issuer)} (kid)`);
            return key;
          },
          {
            algorithms: ['EdDSA'],
            audience: this.audience,
            clockTolerance: CLOCK_TOLERANCE_S,
            requiredClaims: ['exp', 'iat', 'sub', 'aud', 'iss'],
            currentDate: new Date(this.now()),
          },
        ));
      } catch (err) {
        if (err instanceof joseErrors.JWSSignatureVerificationFailed && i + 1 < keys.length) continue;
        throw joseProblem(err, this.audience);
      }
    }
    if (payload.iss !== issuer) throw refused('issuer_mismatch', 'iss does not match the key id (kid)');
    const nowS = this.now() / 1000;
    // jose checks iat only against a maximum age; a token issued "in the future" could otherwise
    // claim a short life while its exp is years away.
    if ((payload.iat ?? 0) > nowS + CLOCK_TOLERANCE_S) throw refused('not_yet_valid', 'token iat is in the future');
    const lifetime = (payload.exp ?? 0) - (payload.iat ?? 0);
    const max = issuer === OPERATOR ? MAX_LIFETIME_S.operator : MAX_LIFETIME_S.mesh;
    if (lifetime > max || (payload.exp ?? 0) - nowS > max) throw refused('lifetime_too_long', `a token from ${issuer} may live at most ${max} s; this one claims ${lifetime} s`);
    const principal = principalOf(payload, issuer, token);
    this.cache.set(token, { principal, exp: payload.exp ?? 0 });
    return principal;
  }
}

function joseProblem(err: unknown, audience: string): DomainError {
  if (err instanceof DomainError) return err;
  if (err instanceof joseErrors.JWTExpired) return refused('expired', 'token expired');
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return refused('bad_signature', 'signature does not verify');
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return refused('wrong_audience', `token is not for ${audience}`);
    if (err.claim === 'nbf' || err.claim === 'iat') return refused('not_yet_valid', `token ${err.claim} is in the future`);
    return refused('bad_claims', `claim ${err.claim}: ${err.reason}`);
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return refused('bad_algorithm', 'tokens must be signed with EdDSA');
  if (err instanceof joseErrors.JOSEError) return refused('malformed', `malformed token (${err.code})`);
  return refused('malformed', 'malformed token');
}

function principalOf(payload: JWTPayload, issuer: string, token: string): Principal {
  const kind = payload.kind;
  // jose does not check the claim's type, and the id checks below would stringify an array.
  const sub = typeof payload.sub === 'string' ? payload.sub : '';
  if (kind === 'user') {
    if (issuer !== 'bff' && issuer !== OPERATOR) throw refused('issuer_not_allowed', `issuer ${issuer} may not sign user tokens`);
    if (!isPositiveInt64(sub)) throw refused('bad_claims', 'sub must be a positive 64-bit user id');
    const role = payload.role;
    if (typeof role !== 'string' || !ROLES.includes(role as Role)) throw refused('bad_claims', `role must be one of ${ROLES.join(', ')}`);
    const name = typeof payload.name === 'string' ? payload.name : '';
    return { kind: 'user', issuer, caller: { userId: sub, role: role as Role, name, token, issuer } };
  }
  if (kind === 'service') {
    if (!SERVICE_NAME.test(sub)) throw refused('bad_claims', 'sub must be a service name (lowercase letters, digits, dashes)');
    const mesh = (MESH_SERVICES as readonly string[]).includes(sub);
    // A mesh service speaks only for itself; an operator may name other teams, never a mesh service.
    if (issuer === OPERATOR ? mesh : issuer !== sub) throw refused('issuer_not_allowed', `issuer ${issuer} may not sign for service ${sub}`);
    return { kind: 'service', issuer, service: sub };
  }
  throw refused('bad_claims', 'kind must be user or service');
}

/** Which callers an RPC accepts beyond what its domain logic checks. */
export interface MethodAccess {
  /** Services whose own token may call this RPC; in it they act as an internal admin. */
  services?: readonly string[];
  /**
   * False: users' tokens from the BFF are refused whatever their role (RPCs that make or move
   * money on their own say-so); operators' admin tokens are still accepted. Default true.
   */
  users?: boolean;
}

/** Access rules by short method name (`TopUp`); a method not listed takes the defaults. */
export type AccessTable = Readonly<Record<string, MethodAccess>>;

/** Metadata values as grpc-js hands them over. */
export interface MetadataReader {
  get(key: string): Array<string | Buffer>;
}

/**
 * Turns a call's metadata into the caller its handler sees, applying the service's access table:
 * no token is an anonymous call (the domain decides whether that is enough); a bad token is
 * refused outright, never downgraded to anonymous; a service token counts only on RPCs that name
 * the service, and is anonymous elsewhere.
 */
export class CallAuthenticator {
  constructor(
    private readonly verifier: TokenVerifier,
    private readonly access: AccessTable = {},
  ) {}

  withAccess(access: AccessTable): CallAuthenticator {
    return new CallAuthenticator(this.verifier, access);
  }

  authenticate(metadata: MetadataReader, method: string): Caller | undefined | Promise<Caller | undefined> {
    const values = metadata.get(AUTH_METADATA_KEY);
    if (values.length === 0) return undefined;
    const header = values[0];
    // The token's own syntax is the verifier's to judge; a cached token is the exact same text.
    const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : '';
    if (token === '' || /\s/.test(token)) throw refused('malformed', `metadata ${AUTH_METADATA_KEY} must be "Bearer <token>"`);
    const principal = this.verifier.verify(token);
    return principal instanceof Promise ? principal.then((p) => this.admit(p, method, token)) : this.admit(principal, method, token);
  }

  private admit(principal: Principal, method: string, token: string): Caller | undefined {
    const rule = this.access[method] ?? {};
    if (principal.kind === 'user') {
      if (rule.users === false && principal.issuer !== OPERATOR) {
        throw new DomainError('permission_denied', 'CALLER_NOT_ALLOWED', `${method} accepts only ${describe(rule.services)} and operators' admin tokens, not users' tokens`, {
          metadata: { method },
        });
      }
      return principal.caller;
    }
    if (rule.services?.includes(principal.service)) {
      return { userId: SERVICE_USER_ID, role: 'admin', name: principal.service, service: principal.service, token, issuer: principal.issuer };
    }
    return undefined;
  }
}

function describe(services: readonly string[] | undefined): string {
  return services?.length ? `the ${services.join(', ')} service${services.length > 1 ? 's' : ''}` : 'no service';
}

/** Short name of the livemesh service a full gRPC service name belongs to (`livemesh.room.v1.RoomService` → `room`). */
export function audienceOf(fullServiceName: string): string {
  return /^livemesh\.([a-z]+)\.v1\./.exec(fullServiceName)?.[1] ?? fullServiceName;
}

export class AuthKeysMissing extends Error {
  constructor(message: string) {
    super(`${message}; run \`npm run auth -- keys\` to create development keys, or set AUTH_PUBLIC_KEYS_DIR and AUTH_SIGNING_KEY (see README "Identity and credentials")`);
    this.name = 'AuthKeysMissing';
  }
}

/**
 * Every issuer's public keys from a folder of `<issuer>.pem` files. An issuer may have several
 * (`<issuer>.<anything>.pem`): during a key rotation the new public key is published next to the
 * old one first, and the old one removed once no process signs with it.
 */
export function loadPublicKeys(dir: string): Map<string, KeyObject[]> {
  if (!existsSync(dir)) throw new AuthKeysMissing(`public key folder ${dir} does not exist`);
  const keys = new Map<string, KeyObject[]>();
  for (const file of readdirSync(dir).sort()) {
    const m = /^([a-z][a-z0-9-]*)(\.[A-Za-z0-9_-]+)?\.pem$/.exec(file);
    if (!m?.[1]) continue;
    const key = parseKey(join(dir, file), createPublicKey);
    keys.set(m[1], [...(keys.get(m[1]) ?? []), key]);
  }
  if (keys.size === 0) throw new AuthKeysMissing(`no <issuer>.pem public keys in ${dir}`);
  return keys;
}

export function loadSigningKey(file: string): KeyObject {
  if (!existsSync(file)) throw new AuthKeysMissing(`signing key ${file} does not exist`);
  return parseKey(file, createPrivateKey);
}

/** A key file parsed, or an error naming the file (OpenSSL's own says only "unsupported"). */
function parseKey(file: string, parse: (pem: Buffer) => KeyObject): KeyObject {
  let key: KeyObject;
  try {
    key = parse(readFileSync(file));
  } catch (err) {
    throw new Error(`${file} is not a PEM key (${(err as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${file} is a ${key.asymmetricKeyType} key; livemesh tokens are signed with Ed25519`);
  return key;
}
