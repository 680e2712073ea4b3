import { DomainError } from './domain-error.js';

/** Metadata keys carrying the caller's identity between BFF and services, and service to service. */
export const USER_ID_KEY = 'lm-user-id';
export const ROLE_KEY = 'lm-role';
export const USER_NAME_KEY = 'lm-user-name';

export type Role = 'viewer' | 'streamer' | 'admin';
const ROLES: readonly Role[] = ['viewer', 'streamer', 'admin'];

/** Who is calling. userId is a decimal int64 string: ids never pass through a JS number. */
export interface Caller {
  userId: string;
  role: Role;
  name: string;
}

const INT64_MAX = 9223372036854775807n;

/** True for a positive decimal int64; the one id check every service uses. */
export function isPositiveInt64(value: string): boolean {
  if (!/^[1-9][0-9]{0,18}$/.test(value)) return false;
  return BigInt(value) <= INT64_MAX;
}

/**
 * Reads the identity from request metadata. The services sit on an internal network behind the
 * BFF, which verifies the user's token and forwards these keys; internal teams and grpcurl users
 * set them by hand (`-H 'lm-user-id: 42' -H 'lm-role: streamer'`).
 *
 * No identity at all is `undefined` (reads allow that); a present but malformed one is an error,
 * because silently treating a typo as anonymous hides bugs.
 */
export function callerFrom(get: (key: string) => string | undefined): Caller | undefined {
  const userId = get(USER_ID_KEY);
  const role = get(ROLE_KEY);
  if (userId === undefined && role === undefined) return undefined;
  if (userId === undefined || !isPositiveInt64(userId)) {
    throw new DomainError('unauthenticated', 'UNAUTHENTICATED', `metadata ${USER_ID_KEY} must be a positive 64-bit integer`);
  }
  if (role === undefined || !ROLES.includes(role as Role)) {
    throw new DomainError('unauthenticated', 'UNAUTHENTICATED', `metadata ${ROLE_KEY} must be one of ${ROLES.join(', ')}`);
  }
  return { userId, role: role as Role, name: get(USER_NAME_KEY) ?? '' };
}

/** The caller, or UNAUTHENTICATED when the RPC needs one and none was sent. */
export function requireCaller(caller: Caller | undefined): Caller {
  if (!caller) {
    throw new DomainError('unauthenticated', 'UNAUTHENTICATED', `this RPC needs a caller identity (metadata ${USER_ID_KEY} and ${ROLE_KEY})`);
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
