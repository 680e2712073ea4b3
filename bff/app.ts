/**
 * The BFF's HTTP application: routes, JSON error shape and the HTTP side of a graceful drain.
 *
 * Nothing here reads the environment, installs signal handlers or exits the process; main.ts does
 * that. Tests (and later features such as the micro-cache or the WebSocket gateway) build the same
 * app with createApp() and serve it on port 0.
 */
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import compression from 'compression';
import cors from 'cors';
import express, { type Express, type Request, type RequestHandler } from 'express';
import helmet from 'helmet';
import type { Logger } from '../kit/logger.js';
import { tracingOn } from '../kit/tracing.js';
import { requestTracing } from '../kit/tracing-http.js';
import { authenticate } from './auth.js';
import type { BffContext } from './context.js';
import { demoRoutes } from './demo.js';
import { errorBody, errorHandler, HttpError, notFound, writeRawError } from './errors.js';
import { encodeJson, type EncodedBody } from './microcache.js';
import { openApiDocument } from './openapi.js';
import { adminRoutes } from './routes/admin.js';
import { adminCatalogRoutes } from './routes/admin-catalog.js';
import { historyRoutes } from './routes/history.js';
import { meRoutes } from './routes/me.js';
import { orderRoutes } from './routes/orders.js';
import { roomRoutes } from './routes/rooms.js';
import { streamerRoutes } from './routes/streamer.js';
import { walletRoutes } from './routes/wallet.js';
import { writeEncoded } from './respond.js';

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
  jsonLimit?: string | number;
  /** The mobile API's dependencies; without them only the health routes exist (drain tests). */
  context?: BffContext;
}


/** Builds the Express app. Routes are added here as the BFF grows; the 404 and error handlers stay last. */
export function createApp(opts: AppOptions = {}): Express {
  const readiness = opts.readiness ?? new Readiness();
  const app = express();
  // Advertising the framework helps only someone scanning for vulnerable versions.
  app.disable('x-powered-by');
  const ctx = opts.context;
  const tracing = tracingOn() ? requestTracing() : undefined;
  if (tracing) app.use(tracing.begin);
  if (ctx?.settings.TRUST_PROXY_HOPS) app.set('trust proxy', ctx.settings.TRUST_PROXY_HOPS);
  if (ctx?.metrics) app.use(ctx.metrics.http());
  app.use(closeWhileDraining(readiness));
  app.use(securityHeaders());
  // Responses built per request (me, actions) are compressed here; cached screens arrive
  // precompressed with Content-Encoding set, which this middleware leaves alone.
  app.use(compression({ threshold: 1024 }));
  app.use(
    express.json({
      limit: opts.jsonLimit ?? ctx?.settings.BODY_LIMIT_BYTES ?? '64kb',
      // Signed callbacks are verified over the bytes received, not over a re-serialization.
      verify: (req, _res, buf) => {
        (req as Request & { rawBody?: Buffer }).rawBody = buf;
      },
    }),
  );
  // The body parser calls on from a stream event: the request's trace context is entered again.
  if (tracing) app.use(tracing.resume);

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

  // Built and compressed once, on first request.
  let openapi: Promise<EncodedBody> | undefined;
  app.get('/openapi.json', async (req, res) => {
    openapi ??= encodeJson(openApiDocument());
    writeEncoded(req, res, await openapi, { maxAgeS: 300 });
  });

  if (ctx?.settings.DEMO === 'on') app.use(demoRoutes(ctx.verifier));
  if (ctx) {
    // CORS first, so a browser's preflight (OPTIONS, no token) is answered before auth and rate limits.
    app.use('/v1', apiCors(ctx.settings.CORS_ORIGINS ?? []));
    app.use('/v1', authenticate(ctx.verifier), ctx.limits.middleware());
    app.use(roomRoutes(ctx), streamerRoutes(ctx), meRoutes(ctx), walletRoutes(ctx), adminRoutes(ctx));
    app.use(historyRoutes(ctx), orderRoutes(ctx), adminCatalogRoutes(ctx));
  }

  app.use(notFound);
  app.use(errorHandler(opts.log));
  return app;
}

/**
 * helmet's defaults, less `upgrade-insecure-requests`: TLS ends at the load balancer, and on a
 * plain-HTTP demo (a phone on the LAN) the directive would send the page's own script to an
 * https:// URL nobody serves. The API answers JSON only; the demo page's script is same-origin.
 * Shared with the cache-hit fast path, so both answer with the same headers.
 */
export function securityHeaders(): RequestHandler {
  return helmet({ contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } } });
}

/**
 * CORS for the web client, with the `cors` package: only the configured origins (CORS_ORIGINS)
 * get Access-Control-Allow-* headers; any other origin gets none, so its browser refuses the
 * answer. Tokens travel in the Authorization header, never cookies, so credentials stay off.
 */
export function apiCors(origins: readonly string[]): RequestHandler {
  const allowed = new Set(origins);
  return cors({
    origin: (origin, done) => done(null, origin !== undefined && allowed.has(origin)),
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key', 'If-None-Match'],
    exposedHeaders: ['ETag', 'Retry-After', 'X-Cache-Status', 'WWW-Authenticate'],
    maxAge: 600,
  });
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

/** How long a refused connection may keep sending (its body, usually) before it is cut. */
const LINGER_MS = 2_000;

/**
 * Requests Node's HTTP parser refuses (an unknown method, a malformed header line, headers past
 * the size limit) get the JSON error shape, and the connection lingers: Node's default writes a
 * bare 400 and destroys the socket at once, and closing a socket with unread bytes resets it, so
 * a client still sending its body saw "connection reset" instead of the answer (found by the
 * fuzzer). The parser keeps consuming, and reporting, what arrives after the error; only the
 * first report is answered.
 */
function answerClientError(answered: WeakSet<Duplex>) {
  return (err: NodeJS.ErrnoException, socket: Duplex): void => {
    if (answered.has(socket)) return;
    answered.add(socket);
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const refusal =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? new HttpError(431, errorBody('REQUEST_HEADER_FIELDS_TOO_LARGE', 'the request headers are larger than the server accepts'))
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? new HttpError(408, errorBody('REQUEST_TIMEOUT', 'the request was not received in time'))
          : new HttpError(400, errorBody('INVALID_ARGUMENT', `not a valid HTTP/1.1 request (${err.code ?? 'parse error'})`));
    writeRawError(socket, refusal);
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  };
}

/** Listens on host:port (0 picks a free port) and resolves once bound, or rejects with the bind error (EADDRINUSE…). */
export function listen(handler: RequestListener, host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer(handler).listen(port, host);
    server.on('clientError', answerClientError(new WeakSet()));
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
  /** Called when the grace period ends, before the listener closes (WebSockets are closed here). */
  onGraceEnd?: () => void;
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
  opts.onGraceEnd?.();
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
