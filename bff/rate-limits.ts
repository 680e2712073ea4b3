/**
 * Gateway rate limits in Redis, shared by every replica: per user (token subject) and per client
 * IP, each a fixed number of requests per second. rate-limiter-flexible does the counting with
 * one atomic Redis round trip; when Redis is unreachable its in-memory insurance limiter takes
 * over with the budget split across replicas, so a Redis outage neither blocks every request nor
 * lifts the limits.
 */
import type { RequestHandler } from 'express';
import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { callerOf } from './auth.js';
import { HttpError } from './errors.js';

export interface RateLimitSettings {
  userPerS: number;
  ipPerS: number;
  /** How many replicas share the limit, to size the in-memory fallback. */
  replicas?: number;
}

function limiter(redis: Redis | undefined, prefix: string, points: number, replicas: number): RateLimiterAbstract {
  const memory = new RateLimiterMemory({ keyPrefix: prefix, points: Math.max(1, Math.floor(points / replicas)), duration: 1 });
  if (!redis) return memory;
  return new RateLimiterRedis({ storeClient: redis, keyPrefix: prefix, points, duration: 1, insuranceLimiter: memory });
}

export function rateLimits(redis: Redis | undefined, settings: RateLimitSettings): RequestHandler {
  const replicas = settings.replicas ?? 2;
  const byIp = settings.ipPerS > 0 ? limiter(redis, 'bff:rl:ip', settings.ipPerS, replicas) : undefined;
  const byUser = settings.userPerS > 0 ? limiter(redis, 'bff:rl:user', settings.userPerS, replicas) : undefined;
  return (req, res, next) => {
    const caller = callerOf(res);
    const checks: Array<Promise<unknown>> = [];
    if (byIp) checks.push(consume(byIp, req.ip ?? 'unknown', 'this address'));
    if (byUser && caller) checks.push(consume(byUser, caller.userId, 'this user'));
    Promise.all(checks).then(() => next(), next);
  };
}

/** One limit; a refusal becomes a 429 naming whose budget ran out, with the wait until it refills. */
async function consume(limit: RateLimiterAbstract, key: string, who: string): Promise<void> {
  try {
    await limit.consume(key);
  } catch (rejection) {
    if (!(rejection instanceof RateLimiterRes)) throw rejection;
    throw new HttpError(429, { error: { code: 'RESOURCE_EXHAUSTED', message: `too many requests from ${who}; slow down`, reason: 'RATE_LIMITED' } }, Math.max(1, Math.ceil(rejection.msBeforeNext / 1000)));
  }
}
