import { status as Code, type CallOptions, type ClientUnaryCall, type Metadata, type ServiceError } from '@grpc/grpc-js';
import type { RequestOf, ResponseOf, UnaryMethod } from '../../kit/clients.js';
import type { Role } from '../../kit/identity.js';
import { asUser } from '../tokens.js';

/** A generated client's unary method, in the (request, metadata, options, callback) form. */
type Unary<Req, Res> = (req: Req, md: Metadata, options: Partial<CallOptions>, cb: (err: ServiceError | null, res: Res) => void) => ClientUnaryCall;

/** What one call ended with: the gRPC code's name ("OK", "UNAVAILABLE", …), or "HTTP 200" / "HTTP NETWORK" for the BFF. */
export interface CallResult<Res> {
  code: string;
  value?: Res;
  error?: ServiceError;
  /** what a failure said (gRPC details, an HTTP error body, a network error) */
  message?: string;
}

/**
 * A unary call that never rejects: the load generator counts outcomes, it does not handle them, so
 * every error becomes its code name and the caller decides what it means (retry, or count).
 */
export function unary<C extends object, M extends UnaryMethod<C>>(client: C, method: M, req: RequestOf<C, M>, md: Metadata, timeoutMs: number): Promise<CallResult<ResponseOf<C, M>>> {
  const fn = (client as Record<string, unknown>)[method] as Unary<RequestOf<C, M>, ResponseOf<C, M>>;
  return new Promise((resolve) => {
    try {
      fn.call(client, req, md, { deadline: Date.now() + timeoutMs }, (err, res) =>
        resolve(err ? { code: Code[err.code] ?? `CODE_${err.code}`, error: err, message: err.details } : { code: 'OK', value: res }),
      );
    } catch (err) {
      // A request the client cannot even serialise is a bug in the generator, not an outcome.
      resolve({ code: 'CLIENT_ERROR', error: err as ServiceError, message: String(err) });
    }
  });
}

/**
 * Metadata for a call made as `userId` in `role`: a token as the BFF mints it for a signed-in user
 * (an operator's admin token for `admin`). Tokens are cached and minted again well before they
 * expire, so a load of any length may call this per call; build it per call (or per retried
 * send), not once for a whole run.
 */
export function as(userId: string, role: Role, name = ''): Metadata {
  return asUser(userId, role, name);
}

/**
 * Codes that mean the platform failed the caller (as opposed to a business answer such as
 * INSUFFICIENT_FUNDS or RATE_LIMITED, which is the service working): what "failed client calls"
 * counts, and what a client retries.
 */
const FAILURE_CODES = new Set(['UNAVAILABLE', 'DEADLINE_EXCEEDED', 'INTERNAL', 'UNKNOWN', 'CANCELLED', 'DATA_LOSS', 'UNIMPLEMENTED', 'CLIENT_ERROR', 'HTTP NETWORK']);

export function isFailure(code: string): boolean {
  if (FAILURE_CODES.has(code)) return true;
  const http = /^HTTP (\d{3})$/.exec(code);
  return http !== null && Number(http[1]) >= 500;
}

/** Worth retrying with the same idempotency key: the outcome is unknown, not a refusal. */
export function isRetryable(code: string): boolean {
  return isFailure(code) || code === 'ABORTED';
}
