/**
 * What counts as a failure. Kept apart from the generators and the transport so the rules can be
 * tested on their own, including that a bad answer really is reported.
 */
import { status as Code } from '@grpc/grpc-js';
import type { RpcOutcome } from './grpc-target.js';
import { TRUNCATED, type HttpOutcome } from './http-target.js';

/** Codes no input may produce: a thrown non-domain error, a broken invariant, a lost message. */
const FAILING_CODES: ReadonlySet<Code> = new Set([Code.INTERNAL, Code.UNKNOWN, Code.DATA_LOSS]);

/** "INVALID_ARGUMENT" for 3. */
export function codeName(code: number): string {
  return (Code as unknown as Record<number, string>)[code] ?? `CODE_${code}`;
}

/** Why a gRPC outcome is a failure, or undefined when it is an acceptable answer to any input. */
export function rpcFailure(o: RpcOutcome): string | undefined {
  if (FAILING_CODES.has(o.code)) return `${codeName(o.code)}: ${o.details}`;
  if (o.badResponse) return o.badResponse;
  if (o.reason === 'UNDECODABLE_STATUS_DETAILS') return `${codeName(o.code)} with status details that do not decode`;
  return undefined;
}

/**
 * Answers a credential that must be refused may get: UNAUTHENTICATED, or what the transport or
 * the host says before any check (a replica going away, a deadline, a cancel, load shed).
 */
const REFUSAL_CODES: ReadonlySet<Code> = new Set([Code.UNAUTHENTICATED, Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.CANCELLED, Code.RESOURCE_EXHAUSTED]);

/**
 * Why the answer to a call with a credential that must be refused (`why`: expired, forged, for
 * another audience, …) is a failure: anything else means the credential got past the check, as a
 * caller (PERMISSION_DENIED, a domain answer, OK) or as an anonymous call.
 */
export function refusalFailure(o: Pick<RpcOutcome, 'code' | 'details'>, why: string): string | undefined {
  if (REFUSAL_CODES.has(o.code)) return undefined;
  return `${codeName(o.code)} to a credential that must be refused (${why}): it got past the token check${o.details ? `; details: ${o.details}` : ''}`;
}

export interface HttpRules {
  /**
   * Count 503/504 (an upstream unavailable or too slow, said in the JSON error shape) as overload
   * rather than as failures. Off for the full run, whose target is zero 5xx; the smoke test turns
   * it on because a slow shared machine must not fail it.
   */
  tolerateOverload?: boolean;
  /** The request body was larger than the limit, so the server may close before reading it. */
  mayReset?: boolean;
}

/** The status column an HTTP outcome is counted under. */
export function httpStatusLabel(o: HttpOutcome): string {
  return o.status === 0 ? 'NO_RESPONSE' : String(o.status);
}

/** Why an HTTP outcome is a failure, or undefined when it is acceptable. */
export function httpFailure(o: HttpOutcome, rules: HttpRules = {}): string | undefined {
  if (o.status === 0) return rules.mayReset ? undefined : `no response: ${o.error ?? 'connection closed'}`;
  if (o.status >= 500) {
    const overload = (o.status === 503 || o.status === 504) && isJsonError(o);
    if (!(overload && rules.tolerateOverload)) return `HTTP ${o.status}: ${o.body.slice(0, 500)}`;
    return undefined;
  }
  // Errors are JSON in one shape; an empty body is allowed for what Node's HTTP parser refuses itself (400, 431).
  if (o.status >= 400 && o.body.length > 0 && o.body !== TRUNCATED && !isJsonError(o)) return `HTTP ${o.status} without the JSON error shape: ${o.contentType} ${o.body.slice(0, 300)}`;
  return undefined;
}

function isJsonError(o: HttpOutcome): boolean {
  if (!o.contentType.includes('json')) return false;
  try {
    const parsed = JSON.parse(o.body) as { error?: { code?: unknown; message?: unknown } };
    return typeof parsed.error?.code === 'string' && typeof parsed.error.message === 'string';
  } catch {
    return false;
  }
}
