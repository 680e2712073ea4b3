/**
 * What the route modules share, built once per process by main.ts (or by a test) and passed in:
 * constructor injection, no container.
 */
import type { Request, Response } from 'express';
import type { Logger } from '../kit/logger.js';
import type { Caller } from '../kit/identity.js';
import type { RedisClient } from '../kit/redis.js';
import type { TokenVerifier } from './auth.js';
import type { BffConfig } from './config.js';
import type { BffMetrics } from './metrics.js';
import type { MicroCache } from './microcache.js';
import type { RateLimits } from './rate-limits.js';
import { writeEncoded } from './respond.js';
import type { Switches } from './switches.js';
import type { Upstreams } from './upstreams.js';

export type BffSettings = Pick<
  BffConfig,
  'REQUEST_BUDGET_MS' | 'OPTIONAL_DEADLINE_MS' | 'CACHE_TTL_MS' | 'TOPUP_SECRET' | 'RATE_LIMIT_USER_PER_S' | 'RATE_LIMIT_IP_PER_S' | 'BODY_LIMIT_BYTES' | 'TRUST_PROXY_HOPS' | 'DEMO' | 'CORS_ORIGINS'
>;

export interface BffContext {
  settings: BffSettings;
  upstreams: Upstreams;
  verifier: TokenVerifier;
  cache: MicroCache;
  limits: RateLimits;
  /** Absent only when NATS is not reachable at start: every section then counts as switched on. */
  switches?: Switches;
  redis?: RedisClient;
  metrics?: BffMetrics;
  log?: Logger;
}

/** Call context for a write or a single read: the request's whole budget, for this caller. */
export function callFor(ctx: BffContext, caller: Caller | undefined, startedAt = Date.now()) {
  return { caller, deadline: startedAt + ctx.settings.REQUEST_BUDGET_MS };
}

/** Serves a public screen through the micro-cache under `key` (a degraded one with max-age=0). */
export async function sendCachedScreen(ctx: BffContext, req: Request, res: Response, key: string, build: () => Promise<unknown>): Promise<void> {
  const { body, status, degraded } = await ctx.cache.get(key, build);
  // A degraded screen is rebuilt within moments: clients and CDNs must not keep it for the TTL either.
  writeEncoded(req, res, body, { cacheStatus: status, maxAgeS: degraded ? 0 : Math.max(1, Math.floor(ctx.settings.CACHE_TTL_MS / 1000)) });
}
