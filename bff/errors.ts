/**
 * Every BFF error becomes one JSON shape, `{ error: { code, message, … } }`, in one middleware:
 * clients switch on `code` (gRPC's names), show `message`, and find the offending input in
 * `field`. Upstream gRPC failures keep their reason (`INSUFFICIENT_FUNDS`) so the app can react
 * to it without parsing text.
 */
import { status as Code } from '@grpc/grpc-js';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import { GrpcCallError, statusDetailsOf, type GrpcFailure } from '../kit/grpc-errors.js';
import type { Logger } from '../kit/logger.js';

export interface ErrorBody {
  error: {
    code: string;
    message: string;
    /** The service's reason (ErrorInfo.reason), when there is one. */
    reason?: string;
    /** The first offending input, as the client named it (`count`, `Idempotency-Key`). */
    field?: string;
    /** Every offending input when there are several. */
    fields?: Array<{ field: string; description: string }>;
    /** The upstream service that failed, for 502-504s. */
    upstream?: string;
  };
}

export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/** An error the BFF answers on purpose: a status, a body, and for 429/503 how long to wait. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: ErrorBody,
    readonly retryAfterS?: number,
  ) {
    super(body.error.message);
    this.name = 'HttpError';
  }

  static badRequest(field: string, message: string): HttpError {
    return new HttpError(400, { error: { code: 'INVALID_ARGUMENT', message: `${field}: ${message}`, field } });
  }
}

/** HTTP status → the code clients switch on; the names follow gRPC's so upstream errors map 1:1. */
const CODE_BY_STATUS: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'ABORTED',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RESOURCE_EXHAUSTED',
  501: 'UNIMPLEMENTED',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};

/**
 * gRPC code → HTTP status, after google.rpc.Code's published mapping, except that an upstream's
 * INTERNAL or unknown failure is a 502 (the BFF itself is fine) and FAILED_PRECONDITION is a 409,
 * because for livemesh it always means "the state does not allow this now" (room not live, not
 * enough coins), which clients treat differently from malformed input.
 */
const HTTP_BY_GRPC: Partial<Record<Code, number>> = {
  [Code.CANCELLED]: 499,
  [Code.INVALID_ARGUMENT]: 400,
  [Code.OUT_OF_RANGE]: 400,
  [Code.NOT_FOUND]: 404,
  [Code.ALREADY_EXISTS]: 409,
  [Code.ABORTED]: 409,
  [Code.FAILED_PRECONDITION]: 409,
  [Code.PERMISSION_DENIED]: 403,
  [Code.UNAUTHENTICATED]: 401,
  [Code.RESOURCE_EXHAUSTED]: 429,
  [Code.UNIMPLEMENTED]: 501,
  [Code.UNAVAILABLE]: 503,
  [Code.DEADLINE_EXCEEDED]: 504,
};

export type { GrpcFailure } from '../kit/grpc-errors.js';

/** The kit's one check (GrpcCallError.is), under the name the BFF's routes and gateway use. */
export const isGrpcFailure = (err: unknown): err is GrpcFailure => GrpcCallError.is(err);

/** Failures worth retrying elsewhere or later: the ones stale-if-error and the breakers act on. */
export function isTransient(err: unknown): boolean {
  if (err instanceof HttpError) return err.status === 503 || err.status === 504;
  return isGrpcFailure(err) && (err.code === Code.UNAVAILABLE || err.code === Code.DEADLINE_EXCEEDED || err.code === Code.RESOURCE_EXHAUSTED);
}

/**
 * Retry-After for "come back later" answers, with jitter: if every client of a crowded room
 * retried after exactly the same delay, the retries would arrive as one new spike (seed 002).
 */
export function retryAfterWithJitter(baseS = 2, spreadS = 4): number {
  return baseS + Math.floor(Math.random() * (spreadS + 1));
}

/** The most a retry hint from upstream may add: enough to spread a crowd's retries over a second. */
export const RETRY_AFTER_JITTER_S = 1;

/**
 * Retry-After when the upstream said when to come back (ErrorInfo `retry_after_ms`, e.g. Chat's
 * rate limit or slow mode): that time rounded up to whole seconds, so a client never retries
 * early, plus 0–1 s of jitter so a room's clients do not all return in the same instant (seed
 * 002's pull-storm advice). Undefined when there is no usable hint.
 */
export function retryAfterFromHint(retryAfterMs: string | undefined, random: () => number = Math.random): number | undefined {
  if (retryAfterMs === undefined || !/^\d{1,12}$/.test(retryAfterMs.trim())) return undefined;
  const baseS = Math.max(1, Math.ceil(Number(retryAfterMs) / 1000));
  return baseS + Math.floor(random() * (RETRY_AFTER_JITTER_S + 1));
}

/** An upstream failure as the HTTP error the client gets, naming the upstream for server-side failures. */
export function fromGrpc(err: GrpcFailure, upstream: string): HttpError {
  const status = HTTP_BY_GRPC[err.code] ?? 502;
  const details = statusDetailsOf(err.metadata);
  const code = Code[err.code] ?? 'UNKNOWN';
  const body: ErrorBody = { error: { code, message: err.details || code } };
  const reason = details?.errorInfo?.reason;
  if (reason) body.error.reason = reason;
  const violations = details?.badRequest?.fieldViolations ?? [];
  const field = violations[0]?.field ?? details?.errorInfo?.metadata.field;
  if (field) body.error.field = jsonName(field);
  if (violations.length > 1) body.error.fields = violations.map((v) => ({ field: jsonName(v.field), description: v.description }));
  if (status >= 500) {
    body.error.upstream = upstream;
    // Never pass an upstream's internal text on; its correlation id (in the message) is enough to find the log line.
    if (status === 502) body.error.message = `${upstream} failed: ${err.details}`;
    else if (!err.details.startsWith(upstream)) body.error.message = `${upstream} ${status === 504 ? 'timed out' : 'unavailable'}: ${err.details}`;
  }
  const retryAfterS = status === 503 || status === 429 ? (retryAfterFromHint(details?.errorInfo?.metadata.retry_after_ms) ?? retryAfterWithJitter()) : undefined;
  return new HttpError(status, body, retryAfterS);
}

/**
 * Services name fields as in the proto (`client_message_id`, `gift.price_minor`); clients know
 * the JSON names (`clientMessageId`), so the names are converted the way proto3 JSON does.
 */
function jsonName(protoPath: string): string {
  return protoPath.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

/** Sends an HttpError (used by the error middleware and by handlers that answer errors themselves). */
function sendError(res: Response, err: HttpError): void {
  if (err.retryAfterS !== undefined) res.setHeader('Retry-After', String(err.retryAfterS));
  if (err.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="livemesh"');
  res.status(err.status).json(err.body);
}

/**
 * Writes an HttpError straight to a socket, for the answers given outside Express: refused
 * WebSocket upgrades and requests Node's HTTP parser rejected. Same JSON shape; the connection
 * closes after it.
 */
export function writeRawError(socket: Duplex, err: HttpError, headOnly = false): void {
  const body = JSON.stringify(err.body);
  const headers = [`HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? 'Error'}`, 'Content-Type: application/json; charset=utf-8', `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close'];
  if (err.retryAfterS !== undefined) headers.push(`Retry-After: ${err.retryAfterS}`);
  socket.end(`${headers.join('\r\n')}\r\n\r\n${headOnly ? '' : body}`);
}

export const notFound: RequestHandler = (req, res) => {
  res.status(404).json(errorBody('NOT_FOUND', `no route ${req.method} ${req.path}`));
};

/** Errors raised by Express and body-parser (http-errors) carry a status and say whether their message is safe to show. */
interface HttpishError {
  status?: unknown;
  statusCode?: unknown;
  expose?: unknown;
  type?: unknown;
  message?: unknown;
  limit?: unknown;
}

/**
 * The single place an error becomes a response: always JSON, never Express's HTML page, and never
 * an internal message or stack trace for a 5xx (those go to the log instead).
 */
export function errorHandler(log: Logger | undefined): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    // Once the body has started there is no way to send a different status; let Express end the socket.
    if (res.headersSent) {
      next(err);
      return;
    }
    if (isGrpcFailure(err) && err.upstream) err = fromGrpc(err, err.upstream);
    if (err instanceof HttpError) {
      if (err.status >= 500) log?.warn({ method: req.method, path: req.path, status: err.status, error: err.body.error }, 'request failed upstream');
      sendError(res, err);
      return;
    }
    const e = (typeof err === 'object' && err !== null ? err : {}) as HttpishError;
    const raw = typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : 500;
    const status = raw >= 400 && raw <= 599 ? raw : 500;
    const code = CODE_BY_STATUS[status] ?? (status < 500 ? 'FAILED_PRECONDITION' : 'INTERNAL');
    let message: string;
    if (e.type === 'entity.parse.failed') message = 'malformed JSON body';
    else if (e.type === 'entity.too.large') message = `body larger than ${String(e.limit)} bytes`;
    else if (status < 500 && e.expose !== false && typeof e.message === 'string') message = e.message;
    else message = status < 500 ? 'bad request' : 'internal error';
    if (status >= 500) log?.error({ err, method: req.method, path: req.path }, 'request failed');
    res.status(status).json(errorBody(code, message));
  };
}
