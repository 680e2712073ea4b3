/**
 * The one error type domain code throws. It names *what went wrong* in domain terms (a kind and a
 * stable reason) and carries no transport types, so the same domain code can sit behind gRPC,
 * the BFF or a CLI. The kit's normalizer (grpc-errors.ts) is the only place that maps it to a
 * gRPC status.
 */
export type ErrorKind =
  | 'invalid_argument'
  | 'not_found'
  | 'already_exists'
  | 'permission_denied'
  | 'unauthenticated'
  | 'failed_precondition'
  | 'aborted'
  | 'out_of_range'
  | 'resource_exhausted'
  | 'unavailable'
  | 'deadline_exceeded'
  | 'unimplemented';

/** One offending request field; `field` is the proto field path as clients send it (snake_case). */
export interface FieldViolation {
  field: string;
  description: string;
}

export interface DomainErrorOptions {
  /** ErrorInfo.domain; "livemesh" for reasons from CommonErrorReason, "livemesh.<service>" otherwise. */
  domain?: string;
  /** ErrorInfo.metadata: machine-readable facts a client may act on (ids, retry_after_ms, …). */
  metadata?: Record<string, string>;
  /** For invalid_argument: every offending field, reported as google.rpc.BadRequest. */
  violations?: FieldViolation[];
  cause?: unknown;
}

export const COMMON_DOMAIN = 'livemesh';

export class DomainError extends Error {
  readonly domain: string;
  readonly metadata: Record<string, string>;
  readonly violations: FieldViolation[];

  constructor(
    readonly kind: ErrorKind,
    /** Stable UPPER_SNAKE reason: an enum value name from the service's ErrorReason enum, prefix stripped. */
    readonly reason: string,
    message: string,
    opts: DomainErrorOptions = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'DomainError';
    this.domain = opts.domain ?? COMMON_DOMAIN;
    this.metadata = opts.metadata ?? {};
    this.violations = opts.violations ?? [];
  }
}

/**
 * Turns a generated ErrorReason enum value into its wire reason: the value's name without the
 * `<ENUM>_ERROR_REASON_` prefix, e.g. ROOM_ERROR_REASON_ROOM_NOT_FOUND -> ROOM_NOT_FOUND.
 * Taking the generated `toJSON` keeps the reason strings tied to the contract.
 */
export function reasonName<E extends number>(toJSON: (value: E) => string, value: E): string {
  return toJSON(value).replace(/^[A-Z]+_ERROR_REASON_/, '');
}

/**
 * A bad request naming its fields. The first violation leads the message so that a human reading
 * only the status line (grpcurl, a log) sees which field to fix.
 */
function invalidArgument(violations: FieldViolation[]): DomainError {
  const [first] = violations;
  if (!first) throw new Error('invalidArgument needs at least one violation');
  const rest = violations.length > 1 ? ` (and ${violations.length - 1} more)` : '';
  return new DomainError('invalid_argument', 'FIELD_INVALID', `${first.field}: ${first.description}${rest}`, {
    metadata: { field: first.field },
    violations,
  });
}

/** Shorthand for the common case of one bad field. */
export function invalidField(field: string, description: string): DomainError {
  return invalidArgument([{ field, description }]);
}

/** The same idempotency key came back with different fields: a client bug, never retried away. */
export function idempotencyKeyReused(key: string, field = 'request_id'): DomainError {
  return new DomainError('already_exists', 'IDEMPOTENCY_KEY_REUSED', `${field} ${JSON.stringify(key)} was already used with different fields`, {
    metadata: { field },
  });
}

/**
 * Collects field violations so a request reports every bad field at once instead of one per
 * round trip. `throwIfAny` raises a single INVALID_ARGUMENT listing them all.
 */
export class Violations {
  private readonly list: FieldViolation[] = [];

  add(field: string, description: string): this {
    this.list.push({ field, description });
    return this;
  }

  check(ok: boolean, field: string, description: string): this {
    if (!ok) this.add(field, description);
    return this;
  }

  throwIfAny(): void {
    if (this.list.length > 0) throw invalidArgument(this.list);
  }
}

/**
 * The same error with its field paths put under `prefix` (`transfers[3].`), for an item of a
 * batch RPC: the client learns which item and which of its fields to fix.
 */
export function underField(err: unknown, prefix: string): unknown {
  if (!(err instanceof DomainError) || err.violations.length === 0) return err;
  const violations = err.violations.map((v) => ({ field: `${prefix}${v.field}`, description: v.description }));
  const metadata = err.metadata.field === undefined ? err.metadata : { ...err.metadata, field: `${prefix}${err.metadata.field}` };
  return new DomainError(err.kind, err.reason, `${prefix}${err.message}`, { domain: err.domain, metadata, violations, cause: err });
}
