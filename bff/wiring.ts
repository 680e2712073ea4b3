/**
 * Builds a whole BFF from its configuration: connections, upstream clients, cache, switches and
 * the Express app. main.ts runs it as a process; tests build the same thing in-process.
 */
import type { RequestListener } from 'node:http';
import type { NatsConnection } from '../kit/nats.js';
import { connectNats } from '../kit/nats.js';
import { connectRedis, type RedisClient } from '../kit/redis.js';
import type { Logger } from '../kit/logger.js';
import { createApp, Readiness } from './app.js';
import { TokenVerifier } from './auth.js';
import type { BffConfig } from './config.js';
import type { BffContext } from './context.js';
import { withFastPath } from './fast-path.js';
import { BffMetrics } from './metrics.js';
import { serveMetrics } from '../kit/metrics.js';
import { MeshCredentials } from '../kit/credentials.js';
import { MicroCache } from './microcache.js';
import { RateLimits } from './rate-limits.js';
import { StreamGateway } from './stream/gateway.js';
import { Switches } from './switches.js';
import { closeUpstreams, createUpstreams, type Upstream } from './upstreams.js';

export interface Bff {
  app: ReturnType<typeof createApp>;
  /** What the HTTP server runs: the cache-hit fast path in front of the app. */
  handler: RequestListener;
  ctx: BffContext;
  nats: NatsConnection;
  redis: RedisClient;
  /** Where /metrics is served, when it is. */
  metricsPort: number | undefined;
  /** The room stream; `stream.attach(server)` once the HTTP server exists. */
  stream: StreamGateway;
  /** Closes clients and connections (after the HTTP server has drained). */
  close(): Promise<void>;
}

export async function createBff(config: BffConfig, log: Logger, readiness = new Readiness()): Promise<Bff> {
  const redis = await connectRedis(config, log);
  const nats = await connectNats(config.NATS_URL, `bff-${config.REPLICA}`, log, { replicas: config.NATS_REPLICAS });
  const switches = await Switches.open(nats, config.NATS_PREFIX, log);
  const metrics = new BffMetrics(config.REPLICA);
  const credentials = MeshCredentials.load('bff', config);
  const upstreams = createUpstreams(credentials, config, (upstream, method, code, seconds) => metrics.observeUpstream(upstream, method, code, seconds));
  for (const u of Object.values(upstreams) as Array<Upstream<object>>) {
    u.onStateChange((state) => log.warn({ upstream: u.name, breaker: state }, `breaker ${u.name} ${state}`));
  }
  const cache = new MicroCache({
    ttlMs: config.CACHE_TTL_MS,
    degradedTtlMs: config.CACHE_DEGRADED_TTL_MS,
    swrMs: config.CACHE_TTL_MS,
    staleIfErrorMs: config.CACHE_STALE_MS,
    max: config.CACHE_MAX_ENTRIES,
    onRefreshError: (key, err) => log.debug({ key, err }, 'micro-cache refresh failed; serving the previous entry'),
  });
  const limits = new RateLimits(redis, { userPerS: config.RATE_LIMIT_USER_PER_S, ipPerS: config.RATE_LIMIT_IP_PER_S });
  const ctx: BffContext = { settings: config, upstreams, verifier: new TokenVerifier(config.JWT_SECRET, config.JWT_ISSUER), cache, limits, switches, redis, metrics, log };
  const app = createApp({ log, readiness, context: ctx });
  const stream = new StreamGateway(
    { nats, natsPrefix: config.NATS_PREFIX, upstreams, verifier: ctx.verifier, cache, switches, limits, trustProxyHops: config.TRUST_PROXY_HOPS, log },
    {
      callBudgetMs: config.REQUEST_BUDGET_MS,
      eventsPerS: config.STREAM_EVENTS_PER_S,
      tickMs: config.STREAM_TICK_MS,
      sampleAbove: config.STREAM_SAMPLE_ABOVE,
      gapWaitMs: config.STREAM_GAP_WAIT_MS,
      maxBufferBytes: config.STREAM_MAX_BUFFER_BYTES,
      heartbeatMs: config.STREAM_HEARTBEAT_MS,
      resumeMax: config.STREAM_RESUME_MAX,
      presenceRefreshMs: config.STREAM_PRESENCE_REFRESH_MS,
    },
  );
  metrics.follow(cache, upstreams, () => stream.stats);
  const metricsServer = config.METRICS_PORT === -1 ? undefined : await serveMetrics(metrics, config.HOST, config.METRICS_PORT);
  return {
    app,
    handler: withFastPath(app, ctx, readiness),
    metricsPort: metricsServer?.port,
    ctx,
    nats,
    redis,
    stream,
    async close() {
      stream.close();
      await metricsServer?.close();
      switches.close();
      closeUpstreams(upstreams);
      await nats.drain();
      await redis.quit();
    },
  };
}
