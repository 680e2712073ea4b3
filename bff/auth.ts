/**
 * User tokens: HS256 JWTs from the identity provider, carrying the user id (`sub`), display name
 * (`name`) and role (`role`). The BFF is the only place tokens are checked; services trust the
 * identity the BFF forwards in metadata.
 */
import type { RequestHandler, Response } from 'express';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { stripControlChars } from '../kit/contract-rules.js';
import { isPositiveInt64, type Caller, type Role } from '../kit/identity.js';
import { HttpError } from './errors.js';

const ROLES: readonly Role[] = ['viewer', 'streamer', 'admin'];

/** The one algorithm user tokens may be signed with (named in /openapi.json's security scheme too). */
export const USER_TOKEN_ALGORITHM = 'HS256';

export class TokenVerifier {
  private readonly key: Uint8Array;

  constructor(
    secret: string,
    private readonly issuer = '',
  ) {
    this.key = new TextEncoder().encode(secret);
  }

  /** The caller a token names; an HttpError 401 saying what is wrong otherwise. */
  async verify(token: string): Promise<Caller> {
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.key, { algorithms: [USER_TOKEN_ALGORITHM], ...(this.issuer ? { issuer: this.issuer } : {}) }));
    } catch (err) {
      throw unauthenticated(err instanceof joseErrors.JWTExpired ? 'token expired' : err instanceof joseErrors.JOSEError ? `invalid token (${err.code})` : 'invalid token');
    }
    const sub = payload.sub;
    if (typeof sub !== 'string' || !isPositiveInt64(sub)) throw unauthenticated('token subject must be a positive 64-bit integer user id');
    const role = payload.role;
    if (typeof role !== 'string' || !ROLES.includes(role as Role)) throw unauthenticated(`token role must be one of ${ROLES.join(', ')}`);
    const name = typeof payload.name === 'string' ? shortName(payload.name, 64) : '';
    return { userId: sub, role: role as Role, name };
  }

  /** Mints a token; for the demo page and tests (the real identity provider signs with the same key). */
  sign(caller: Caller, ttlS = 3600): Promise<string> {
    const jwt = new SignJWT({ role: caller.role, name: caller.name }).setProtectedHeader({ alg: USER_TOKEN_ALGORITHM }).setSubject(caller.userId).setIssuedAt().setExpirationTime(`${ttlS}s`);
    if (this.issuer) jwt.setIssuer(this.issuer);
    return jwt.sign(this.key);
  }
}

/**
 * A display name cut to `max` characters (code points, so an emoji is never split) without
 * control characters: each service bounds the names it stores (CHAT_CONTRACT and GIFT_CONTRACT
 * senderName in kit/contract-rules.ts) and would otherwise refuse a field the user never typed
 * into this request.
 */
export function shortName(name: string, max: number): string {
  return [...stripControlChars(name)].slice(0, max).join('');
}

function unauthenticated(message: string): HttpError {
  return new HttpError(401, { error: { code: 'UNAUTHENTICATED', message } });
}

/** The bearer token of an Authorization header: undefined when absent, 401 when malformed. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/.exec(header.trim());
  if (!match?.[1]) throw unauthenticated('Authorization header must be "Bearer <token>"');
  return match[1];
}

/** The verified caller of this request, if any (set by `authenticate`). */
export function callerOf(res: Response): Caller | undefined {
  return res.locals.caller as Caller | undefined;
}

/** The caller, or 401: for handlers behind `requireRole`, where one always exists. */
export function mustCaller(res: Response): Caller {
  const caller = callerOf(res);
  if (!caller) throw unauthenticated('this route needs a signed-in user (Authorization: Bearer <token>)');
  return caller;
}

/**
 * Verifies a token when one is sent: public screens work without one, but a bad token is always a
 * 401 rather than silently anonymous, so a client with an expired token notices.
 */
export function authenticate(verifier: TokenVerifier): RequestHandler {
  return (req, res, next) => {
    let token: string | undefined;
    try {
      token = bearerToken(req.headers.authorization);
    } catch (err) {
      next(err);
      return;
    }
    if (token === undefined) {
      next();
      return;
    }
    verifier.verify(token).then(
      (caller) => {
        res.locals.caller = caller;
        next();
      },
      (err: unknown) => next(err),
    );
  };
}

/** 401 without a user, 403 when the user's role is not one of `roles`. */
export function requireRole(...roles: Role[]): RequestHandler {
  return (_req, res, next) => {
    const caller = callerOf(res);
    if (!caller) {
      next(unauthenticated('this route needs a signed-in user (Authorization: Bearer <token>)'));
      return;
    }
    if (roles.length > 0 && !roles.includes(caller.role)) {
      next(new HttpError(403, { error: { code: 'PERMISSION_DENIED', message: `role ${caller.role} may not do this; needs ${roles.join(' or ')}` } }));
      return;
    }
    next();
  };
}
