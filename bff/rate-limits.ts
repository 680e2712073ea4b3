/**
 * Gateway rate limits in Redis, shared by every replica: per user (token subject) and per client
 * IP, each a fixed number of requests per second. rate-limiter-flexible does the counting with
 * one atomic Redis round trip; when Redis is unreachable its in-memory insurance limiter takes
 * over with the budget split across replicas, so a Redis outage neither blocks every request nor
 * lifts the limits.
 */
import type { IncomingMessage } from 'node:http';
import type { RequestHandler } from 'express';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { RedisClient } from '../kit/redis.js';
import { callerOf } from './auth.js';
import { HttpError } from './errors.js';

export interface RateLimitSettings {
  userPerS: number;
  ipPerS: number;
  /** How many replicas share the limit, to size the in-memory fallback. */
  replicas?: number;
}

function limiter(redis: RedisClient | undefined, prefix: string, points: number, replicas: number): RateLimiterAbstract {
  const memory = new RateLimiterMemory({ keyPrefix: prefix, points: Math.max(1, Math.floor(points / replicas)), duration: 1 });
  if (!redis) return memory;
  return new RateLimiterRedis({ storeClient: redis, keyPrefix: prefix, points, duration: 1, insuranceLimiter: memory });
}

/** The per-IP and per-user limits, for HTTP requests (middleware) and WebSocket upgrades (check). */
export class RateLimits {
  private readonly byIp: RateLimiterAbstract | undefined;
  private readonly byUser: RateLimiterAbstract | undefined;

  constructor(redis: RedisClient | undefined, settings: RateLimitSettings) {
    const replicas = settings.replicas ?? 2;
    this.byIp = settings.ipPerS > 0 ? limiter(redis, 'bff:rl:ip', settings.ipPerS, replicas) : undefined;
    this.byUser = settings.userPerS > 0 ? limiter(redis, 'bff:rl:user', settings.userPerS, replicas) : undefined;
  }

  /** Resolves when both budgets allow one more request; rejects with a 429 HttpError otherwise. */
  async check(ip: string, userId: string | undefined): Promise<void> {
    const checks: Array<Promise<void>> = [];
    if (this.byIp) checks.push(consume(this.byIp, ip, 'this address'));
    if (this.byUser && userId) checks.push(consume(this.byUser, userId, 'this user'));
    await Promise.all(checks);
  }

  /** After `authenticate`, so a signed-in user is counted as themselves. */
  middleware(): RequestHandler {
    return (req, res, next) => {
      this.check(req.ip ?? 'unknown', callerOf(res)?.userId).then(() => next(), next);
    };
  }
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

/** The client address as Express computes req.ip with `trust proxy` set to a hop count. */
export function clientIp(req: IncomingMessage, hops: number): string {
  const socket = req.socket.remoteAddress ?? 'unknown';
  if (hops === 0) return socket;
  const forwarded = String(req.headers['x-forwarded-for'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .reverse();
  const chain = [socket, ...forwarded];
  return chain[Math.min(hops, chain.length - 1)] ?? socket;
}
