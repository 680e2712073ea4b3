/**
 * The cache-hit fast path: a fresh micro-cache entry for a room's entry screen or gift bar is
 * written straight from the node:http listener, before Express, the way nginx answers from its
 * cache before the application. When a crowd enters one room, nearly every request is such a hit,
 * and Express's per-request machinery (and a Redis round trip for the rate limit) would cost more
 * than the answer itself.
 *
 * Everything else, and anything unusual about a hit (a stale or missing entry, a bad token, a
 * client over its limit, a draining replica), goes through the Express app, which answers it
 * exactly as it always does.
 */
import type { IncomingMessage, OutgoingHttpHeaders, RequestListener, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { securityHeaders, type Readiness } from './app.js';
import type { BffContext } from './context.js';
import { bearerToken } from './auth.js';
import { writeEncoded } from './respond.js';
import { clientIp } from './rate-limits.js';
import { noteRecentRoom } from './routes/recent.js';
import { matchRoomScreen } from './screens.js';

/** The headers helmet sets on every response, computed once by running it against a recorder. */
function staticHeadersOf(middleware: RequestHandler): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  const recorder = { setHeader: (k: string, v: string) => void (headers[k] = v), removeHeader: () => undefined, getHeader: () => undefined };
  middleware({ headers: {} } as never, recorder as never, () => undefined);
  return headers;
}

export function withFastPath(app: RequestListener, ctx: BffContext, readiness: Readiness): RequestListener {
  const security = staticHeadersOf(securityHeaders());
  const maxAgeS = Math.max(1, Math.floor(ctx.settings.CACHE_TTL_MS / 1000));
  // Hits are limited per replica in memory; Express's path checks the shared Redis budget.
  const ipLimit = ctx.settings.RATE_LIMIT_IP_PER_S > 0 ? new RateLimiterMemory({ keyPrefix: 'hit:ip', points: ctx.settings.RATE_LIMIT_IP_PER_S, duration: 1 }) : undefined;
  const userLimit = ctx.settings.RATE_LIMIT_USER_PER_S > 0 ? new RateLimiterMemory({ keyPrefix: 'hit:user', points: ctx.settings.RATE_LIMIT_USER_PER_S, duration: 1 }) : undefined;

  return (req: IncomingMessage, res: ServerResponse) => {
    // A browser's cross-origin request (it carries Origin) goes through Express, which adds the CORS headers.
    const match = (req.method === 'GET' || req.method === 'HEAD') && !readiness.draining && !req.headers.origin ? matchRoomScreen(req.url ?? '') : undefined;
    const body = match ? ctx.cache.peekFresh(match.screen.cacheKey(match.roomId)) : undefined;
    if (!match || !body) {
      void app(req, res);
      return;
    }
    const serve = () => {
      ctx.cache.served.HIT++;
      writeEncoded(req, res, body, { cacheStatus: 'HIT', maxAgeS, baseHeaders: security });
    };
    const fallBack = () => void app(req, res);
    const ip = clientIp(req, ctx.settings.TRUST_PROXY_HOPS);
    let token: string | undefined;
    try {
      token = bearerToken(req.headers.authorization);
    } catch {
      fallBack();
      return;
    }
    if (token === undefined) {
      if (!ipLimit) serve();
      else ipLimit.consume(ip).then(serve, fallBack);
      return;
    }
    ctx.verifier.verify(token).then(async (caller) => {
      await Promise.all([ipLimit?.consume(ip), userLimit?.consume(caller.userId)]);
      if (match.screen.notesVisit) noteRecentRoom(ctx, caller.userId, match.roomId);
      serve();
    }, fallBack).catch(fallBack);
  };
}

