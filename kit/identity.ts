import { DomainError } from './domain-error.js';

export type Role = 'viewer' | 'streamer' | 'admin';

/** Who is calling. userId is a decimal int64 string: ids never pass through a JS number. */
export interface Caller {
  userId: string;
  role: Role;
  name: string;
  /** The verified token this identity came from, forwarded unchanged on calls made on the caller's behalf. */
  token?: string;
  /** Set when a service calls as itself (an RPC whose access rules name it): the service's name. */
  service?: string;
  /** Who signed the token: `bff` for app users, `operator` for admin tokens, or the calling service. */
  issuer?: string;
}

const INT64_MAX = 9223372036854775807n;

/** True for a positive decimal int64; the one id check every service uses. */
export function isPositiveInt64(value: string): boolean {
  if (!/^[1-9][0-9]{0,18}$/.test(value)) return false;
  return BigInt(value) <= INT64_MAX;
}

/** The caller, or UNAUTHENTICATED when the RPC needs one and none was sent. */
export function requireCaller(caller: Caller | undefined): Caller {
  if (!caller) {
    throw new DomainError('unauthenticated', 'UNAUTHENTICATED', 'this RPC needs a caller identity: a signed token in `authorization: Bearer <token>` metadata (the BFF sends one for signed-in users; `npm run auth -- token admin` mints one for debugging). lm-user-id and lm-role metadata are not trusted');
  }
  return caller;
}

/** The caller if their role is one of `roles`, else PERMISSION_DENIED with the given reason. */
export function requireRole(caller: Caller | undefined, roles: readonly Role[], reason = 'PERMISSION_DENIED', domain?: string): Caller {
  const who = requireCaller(caller);
  if (!roles.includes(who.role)) {
    throw new DomainError('permission_denied', reason, `role ${who.role} may not do this; needs ${roles.join(' or ')}`, domain ? { domain } : {});
  }
  return who;
}
