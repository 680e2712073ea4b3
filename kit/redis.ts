import { Redis } from 'ioredis';
import type { Logger } from './logger.js';
import { tracingOn } from './tracing.js';
import { traceRedis } from './tracing-redis.js';

/**
 * A Redis client that reconnects forever but fails individual commands fast while disconnected,
 * so a Redis blip turns into quick UNAVAILABLE answers rather than requests hanging until their
 * deadline. Every key is prefixed, which is how tests and environments share one server.
 */
export async function connectRedis(url: string, keyPrefix: string, log: Logger, opts: { autoPipelining?: boolean } = {}): Promise<Redis> {
  const redis = new Redis(url, {
    keyPrefix,
    // Commands issued in the same tick leave in one write: under load, the per-command socket
    // write is the largest CPU cost of a Redis call (a service on the hot path opts in).
    enableAutoPipelining: opts.autoPipelining ?? false,
    lazyConnect: true,
    connectTimeout: 5000,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2000),
  });
  let down = false;
  redis.on('error', (err: Error) => {
    if (!down) log.warn({ err: err.message }, 'redis connection error');
    down = true;
  });
  redis.on('ready', () => {
    if (down) log.info('redis reconnected');
    down = false;
  });
  await redis.connect();
  return tracingOn() ? traceRedis(redis, keyPrefix) : redis;
}
