import { randomUUID } from 'node:crypto';
import { Metadata, status as Code, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { Status } from '../gen/ts/google/rpc/status.js';
import { BadRequest, ErrorInfo } from '../gen/ts/google/rpc/error_details.js';
import { COMMON_DOMAIN, DomainError, type ErrorKind } from './domain-error.js';
import type { Logger } from './logger.js';

/** The trailer gRPC clients (grpcurl, grpc-go, grpcio's rich status) read rich error details from. */
const STATUS_DETAILS_KEY = 'grpc-status-details-bin';

const KIND_TO_CODE: Record<ErrorKind, Code> = {
  invalid_argument: Code.INVALID_ARGUMENT,
  not_found: Code.NOT_FOUND,
  already_exists: Code.ALREADY_EXISTS,
  permission_denied: Code.PERMISSION_DENIED,
  unauthenticated: Code.UNAUTHENTICATED,
  failed_precondition: Code.FAILED_PRECONDITION,
  aborted: Code.ABORTED,
  out_of_range: Code.OUT_OF_RANGE,
  resource_exhausted: Code.RESOURCE_EXHAUSTED,
  unavailable: Code.UNAVAILABLE,
  deadline_exceeded: Code.DEADLINE_EXCEEDED,
  unimplemented: Code.UNIMPLEMENTED,
};

/**
 * Socket and driver error codes meaning "a dependency is down", not "the server is broken".
 * They become UNAVAILABLE so clients and the balancer retry elsewhere instead of paging someone.
 */
const DEPENDENCY_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ENOTFOUND',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN',
  'ER_LOCK_WAIT_TIMEOUT',
  // InnoDB picked this transaction as a deadlock victim: nothing was written, a retry succeeds.
  'ER_LOCK_DEADLOCK',
  'CONNECTION_CLOSED',
]);

export function isDependencyUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && DEPENDENCY_ERROR_CODES.has(code)) return true;
  // ioredis reports a dead connection by message and class name only.
  if (err.name === 'MaxRetriesPerRequestError') return true;
  if (/Connection is closed|Stream isn't writeable|connect ECONNREFUSED/.test(err.message)) return true;
  if (isRedisClusterUnavailable(err)) return true;
  // A pool that cannot reach its server rejects with AggregateError of socket errors.
  if (err instanceof AggregateError) return err.errors.some(isDependencyUnavailable);
  return false;
}

/**
 * A Redis Cluster that is moving or missing slots: MOVED and ASK still answered after the client
 * ran out of redirections (a reshard in progress), CLUSTERDOWN (slots without a primary during a
 * failover), TRYAGAIN (a multi-key command while its slot migrates), MASTERDOWN and LOADING; or
 * ioredis's Cluster client with no node reachable or the slot map not yet known. ioredis retries
 * each for a moment first; what is left is a dependency briefly away, not a broken server.
 */
const REDIS_CLUSTER_REPLIES = /^(MOVED|ASK|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|LOADING) /;
const REDIS_CLUSTER_CLIENT = /^(Failed to refresh slots cache|None of startup nodes is available|Cluster isn't ready|Too many Cluster redirections)/;

export function isRedisClusterUnavailable(err: Error): boolean {
  return (err.name === 'ReplyError' && REDIS_CLUSTER_REPLIES.test(err.message)) || err.name === 'ClusterAllFailedError' || REDIS_CLUSTER_CLIENT.test(err.message);
}

/**
 * A call to another livemesh service that failed, as every client in the mesh (services and the
 * BFF) sees it. grpc-js rejects with a plain Error carrying `code`, `details` and `metadata`;
 * before this class each consumer recognised that shape its own way (one insisted on metadata,
 * one did not, one only checked the code's type), so "is this a gRPC error" had three answers.
 */
export class GrpcCallError extends Error implements ServiceError {
  /** The service that failed, for callers that report it (the BFF names it in 5xx bodies). */
  upstream?: string;

  constructor(
    readonly code: Code,
    readonly details: string,
    readonly metadata: Metadata = new Metadata(),
    opts: { message?: string; cause?: unknown; upstream?: string } = {},
  ) {
    super(opts.message ?? `${code} ${Code[code] ?? 'UNKNOWN'}: ${details}`, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'GrpcCallError';
    if (opts.upstream !== undefined) this.upstream = opts.upstream;
  }

  /**
   * The one check: a gRPC status error, whether normalised already or straight from grpc-js (a
   * stream's `error` event, a generated client used directly). A numeric `code` is the mark:
   * Node's, the drivers' and NATS's errors carry string codes. Trailers may be missing (errors
   * made by hand); `from` supplies empty ones.
   */
  static is(err: unknown): err is GrpcFailure {
    return err instanceof GrpcCallError || (err instanceof Error && typeof (err as { code?: unknown }).code === 'number');
  }

  /**
   * The one client-side normaliser: whatever a call rejected with, as a GrpcCallError. A grpc-js
   * error keeps its code, details, trailers, message and stack; anything else (a client-side
   * interceptor throwing, say) becomes UNKNOWN, which is what grpc-js reports for it too.
   */
  static from(err: unknown): GrpcCallError {
    if (err instanceof GrpcCallError) return err;
    if (GrpcCallError.is(err)) {
      const metadata = err.metadata instanceof Metadata ? err.metadata : new Metadata();
      const e = new GrpcCallError(err.code, err.details ?? '', metadata, { message: err.message, cause: err, upstream: err.upstream });
      if (err.stack) e.stack = err.stack;
      return e;
    }
    const message = err instanceof Error ? err.message : String(err);
    return new GrpcCallError(Code.UNKNOWN, message, new Metadata(), { cause: err });
  }
}

/** What a gRPC failure looks like to a client: grpc-js's ServiceError, and the upstream when a caller names it. */
export type GrpcFailure = ServiceError & { upstream?: string };

/** Builds the status trailers: google.rpc.Status with ErrorInfo (and BadRequest for bad fields). */
function detailsMetadata(code: Code, message: string, info: ErrorInfo, badRequest?: BadRequest): Metadata {
  const details = [{ typeUrl: 'type.googleapis.com/google.rpc.ErrorInfo', value: Buffer.from(ErrorInfo.encode(info).finish()) }];
  if (badRequest) {
    details.push({ typeUrl: 'type.googleapis.com/google.rpc.BadRequest', value: Buffer.from(BadRequest.encode(badRequest).finish()) });
  }
  const md = new Metadata();
  md.set(STATUS_DETAILS_KEY, Buffer.from(Status.encode({ code, message, details }).finish()));
  return md;
}

/** Builds a full status for a reason; used by the normalizer and by interceptors that refuse calls themselves. */
export function statusFor(code: Code, reason: string, message: string, domain = COMMON_DOMAIN, metadata: Record<string, string> = {}): StatusObject {
  return { code, details: message, metadata: detailsMetadata(code, message, { reason, domain, metadata }) };
}

/**
 * The single normalizer from anything thrown by a handler to the status a client sees.
 * - DomainError: its code, message, ErrorInfo and (for bad fields) BadRequest.
 * - A dependency that is down: UNAVAILABLE / DEPENDENCY_UNAVAILABLE, safe to retry.
 * - An error from a downstream gRPC call: passed through unchanged.
 * - Anything else: logged in full under a fresh correlation id, returned as a bare INTERNAL so
 *   no stack, SQL or hostname ever reaches a client.
 */
export function toStatus(err: unknown, log: Logger, method: string): StatusObject {
  if (err instanceof DomainError) {
    const code = KIND_TO_CODE[err.kind];
    const badRequest = err.violations.length > 0 ? { fieldViolations: err.violations.map((v) => ({ field: v.field, description: v.description, reason: err.reason, localizedMessage: undefined })) } : undefined;
    return { code, details: err.message, metadata: detailsMetadata(code, err.message, { reason: err.reason, domain: err.domain, metadata: err.metadata }, badRequest) };
  }
  if (GrpcCallError.is(err)) {
    const e = GrpcCallError.from(err);
    return { code: e.code, details: e.details, metadata: e.metadata };
  }
  const correlationId = randomUUID();
  if (isDependencyUnavailable(err)) {
    log.warn({ err, method, correlationId }, 'dependency unavailable');
    return statusFor(Code.UNAVAILABLE, 'DEPENDENCY_UNAVAILABLE', `a dependency is unavailable, retry later (correlation id ${correlationId})`, COMMON_DOMAIN, { correlation_id: correlationId });
  }
  log.error({ err, method, correlationId }, 'unexpected error');
  return statusFor(Code.INTERNAL, 'INTERNAL', `internal error (correlation id ${correlationId})`, COMMON_DOMAIN, { correlation_id: correlationId });
}

/**
 * The normalizer for one item of a batch RPC (CreateTransfers, AckOrderEffects): the
 * google.rpc.Status the item's own unary call would have failed with, code, message and details
 * alike, to be put in that item's result.
 */
export function toStatusMessage(err: unknown, log: Logger, method: string): Status {
  const s = toStatus(err, log, method);
  const raw = s.metadata?.get(STATUS_DETAILS_KEY)[0];
  if (raw) return Status.decode(typeof raw === 'string' ? Buffer.from(raw, 'base64') : raw);
  return { code: s.code, message: s.details, details: [] };
}

/**
 * The other direction: a batch item's google.rpc.Status as the ServiceError its own unary call
 * would have raised, so callers handle an item exactly as a single call (errorInfoOf(err.metadata),
 * err.code) and one error path serves both.
 */
export function serviceErrorOf(status: Status): GrpcCallError {
  const metadata = new Metadata();
  metadata.set(STATUS_DETAILS_KEY, Buffer.from(Status.encode(status).finish()));
  return new GrpcCallError(status.code, status.message, metadata);
}

/** The rich error details a status carries, decoded. */
export interface StatusDetails {
  errorInfo?: ErrorInfo;
  badRequest?: BadRequest;
  /** Type URLs of details not decoded here. */
  other: string[];
}

/**
 * Decodes google.rpc.Status from the `grpc-status-details-bin` trailer, if present; the one
 * decoder behind the tests, the CLI and (later) the BFF's error mapping.
 */
export function statusDetailsOf(metadata: Metadata | undefined): StatusDetails | undefined {
  const raw = metadata?.get(STATUS_DETAILS_KEY)[0];
  if (!raw) return undefined;
  const status = Status.decode(typeof raw === 'string' ? Buffer.from(raw, 'base64') : raw);
  const out: StatusDetails = { other: [] };
  for (const any of status.details) {
    if (any.typeUrl.endsWith('/google.rpc.ErrorInfo')) out.errorInfo = ErrorInfo.decode(any.value);
    else if (any.typeUrl.endsWith('/google.rpc.BadRequest')) out.badRequest = BadRequest.decode(any.value);
    else out.other.push(any.typeUrl);
  }
  return out;
}

export const errorInfoOf = (metadata: Metadata | undefined): ErrorInfo | undefined => statusDetailsOf(metadata)?.errorInfo;

export const badRequestOf = (metadata: Metadata | undefined): BadRequest | undefined => statusDetailsOf(metadata)?.badRequest;
