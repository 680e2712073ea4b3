/**
 * A server span per HTTP request for the Express app, continuing the caller's trace when it sends
 * `traceparent` (a phone or a gateway that traces). Two middlewares: `begin` first, so the span
 * covers the whole request, and `resume` after the body parser, which calls on from a stream
 * event where the request's context is no longer the active one.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, tracer, unsampled, type Context } from './tracing.js';

type Next = (err?: unknown) => void;
type Middleware = (req: IncomingMessage, res: ServerResponse, next: Next) => void;

const CONTEXT = Symbol('livemesh.trace-context');
type Traced = IncomingMessage & { [CONTEXT]?: Context; route?: { path?: unknown }; baseUrl?: string };

export function requestTracing(): { begin: Middleware; resume: Middleware } {
  return {
    begin(req, res, next) {
      const parent = propagation.extract(ROOT_CONTEXT, req.headers);
      if (unsampled(parent)) {
        // The caller's trace was not sampled: pass its context on, make no span.
        (req as Traced)[CONTEXT] = parent;
        context.with(parent, next);
        return;
      }
      const method = req.method ?? 'GET';
      const span = tracer().startSpan(method, { kind: SpanKind.SERVER, attributes: { 'http.request.method': method, 'url.path': (req.url ?? '').split('?')[0] } }, parent);
      const ctx = trace.setSpan(parent, span);
      (req as Traced)[CONTEXT] = ctx;
      res.once('close', () => {
        // Named by the route that answered (`POST /v1/rooms/:roomId/gifts`), known only now.
        const r = req as Traced;
        if (typeof r.route?.path === 'string') {
          const route = `${r.baseUrl ?? ''}${r.route.path}`;
          span.updateName(`${method} ${route}`);
          span.setAttribute('http.route', route);
        }
        span.setAttribute('http.response.status_code', res.statusCode);
        if (res.statusCode >= 500 || !res.writableFinished) span.setStatus({ code: SpanStatusCode.ERROR, ...(res.writableFinished ? {} : { message: 'connection closed before the response was sent' }) });
        span.end();
      });
      context.with(ctx, next);
    },
    resume(req, _res, next) {
      const ctx = (req as Traced)[CONTEXT];
      if (ctx) context.with(ctx, next);
      else next();
    },
  };
}
