/**
 * The BFF's HTTP application: routes, JSON error shape and the HTTP side of a graceful drain.
 *
 * Nothing here reads the environment, installs signal handlers or exits the process; main.ts does
 * that. Tests (and later features such as the micro-cache or the WebSocket gateway) build the same
 * app with createApp() and serve it on port 0.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type ErrorRequestHandler, type Express, type RequestHandler } from 'express';
import type { Logger } from '../services/kit/logger.js';

/**
 * Whether this process is still taking new work. Shared by /readyz and the drain, so a load
 * balancer sees "draining" for the whole grace period before the listener actually closes.
 */
export class Readiness {
  private drainingSince: number | undefined;

  get draining(): boolean {
    return this.drainingSince !== undefined;
  }

  /** Idempotent: a second signal must not restart the grace period. */
  beginDrain(): void {
    this.drainingSince ??= Date.now();
  }
}

export interface AppOptions {
  /** Where unexpected (5xx) errors are logged; silent when omitted, as in most tests. */
  log?: Logger;
  /** Shared drain state; a fresh, serving one when omitted. */
  readiness?: Readiness;
  /** Largest accepted JSON body. Mobile requests are small; a bigger body is a bug or abuse. */
  jsonLimit?: string;
}

/** The one JSON error shape every BFF response uses, so clients never have to parse HTML. */
export interface ErrorBody {
  error: { code: string; message: string };
}

export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

/** Builds the Express app. Routes are added here as the BFF grows; the 404 and error handlers stay last. */
export function createApp(opts: AppOptions = {}): Express {
  const readiness = opts.readiness ?? new Readiness();
  const app = express();
  // Advertising the framework helps only someone scanning for vulnerable versions.
  app.disable('x-powered-by');
  app.use(closeWhileDraining(readiness));
  app.use(express.json({ limit: opts.jsonLimit ?? '64kb' }));

  // Liveness: the process answers at all. Deliberately independent of upstreams, so a dead
  // dependency never gets every BFF pod restarted at once.
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', service: 'bff' });
  });

  // Readiness: whether a balancer should send new requests here; turns 503 as soon as a drain begins.
  app.get('/readyz', (_req, res) => {
    if (readiness.draining) res.status(503).json({ status: 'draining' });
    else res.json({ status: 'ok' });
  });

  app.use(notFound);
  app.use(errorHandler(opts.log));
  return app;
}

/**
 * While draining, ask every client to drop its keep-alive connection after the current response:
 * otherwise server.close() would wait for idle sockets that a busy client keeps reusing.
 */
function closeWhileDraining(readiness: Readiness): RequestHandler {
  return (_req, res, next) => {
    if (readiness.draining) res.setHeader('Connection', 'close');
    next();
  };
}

const notFound: RequestHandler = (req, res) => {
  res.status(404).json(errorBody('NOT_FOUND', `no route ${req.method} ${req.path}`));
};

/** HTTP status → the code clients switch on; the names follow gRPC's so upstream errors map 1:1 later. */
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

/** Errors raised by Express and body-parser (http-errors) carry a status and say whether their message is safe to show. */
interface HttpishError {
  status?: unknown;
  statusCode?: unknown;
  expose?: unknown;
  type?: unknown;
  message?: unknown;
}

/**
 * The single place an error becomes a response: always JSON, never Express's HTML page, and never
 * an internal message or stack trace for a 5xx (those go to the log instead).
 */
function errorHandler(log: Logger | undefined): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    // Once the body has started there is no way to send a different status; let Express end the socket.
    if (res.headersSent) {
      next(err);
      return;
    }
    const e = (typeof err === 'object' && err !== null ? err : {}) as HttpishError;
    const raw = typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : 500;
    const status = raw >= 400 && raw <= 599 ? raw : 500;
    const code = CODE_BY_STATUS[status] ?? (status < 500 ? 'FAILED_PRECONDITION' : 'INTERNAL');
    let message: string;
    if (e.type === 'entity.parse.failed') message = 'malformed JSON body';
    else if (status < 500 && e.expose !== false && typeof e.message === 'string') message = e.message;
    else message = status < 500 ? 'bad request' : 'internal error';
    if (status >= 500) log?.error({ err, method: req.method, path: req.path }, 'request failed');
    res.status(status).json(errorBody(code, message));
  };
}

/** Listens on host:port (0 picks a free port) and resolves once bound, or rejects with the bind error (EADDRINUSE…). */
export function listen(app: Express, host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host);
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.once('listening', () => {
      server.off('error', onError);
      resolve(server);
    });
  });
}

/** The port a listening server got (useful after listening on port 0). */
export function boundPort(server: Server): number {
  return (server.address() as AddressInfo).port;
}

export interface DrainOptions {
  /** Keep accepting (and answering /readyz 503) this long, so balancers and probes notice first. */
  graceMs: number;
  /** In-flight requests get this long after the listener closes; then their sockets are destroyed. */
  timeoutMs: number;
}

/**
 * Graceful stop of the HTTP side: readiness turns 503, requests keep being served for the grace
 * period, then the listener closes, idle keep-alive sockets are closed (and again as requests
 * finish), and whatever is still open after the timeout is destroyed. Resolves true when every
 * connection finished on its own.
 */
export async function drainHttpServer(server: Server, readiness: Readiness, opts: DrainOptions): Promise<boolean> {
  readiness.beginDrain();
  await sleep(opts.graceMs);
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  // A request that finishes on a keep-alive socket leaves it idle; sweep those up until close completes.
  const sweep = setInterval(() => server.closeIdleConnections(), 100);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), opts.timeoutMs);
  });
  const outcome = await Promise.race([closed.then(() => 'closed' as const), timedOut]);
  clearInterval(sweep);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    server.closeAllConnections();
    await closed;
    return false;
  }
  return true;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
