/**
 * "Rooms I watched recently" is the BFF's own state: no service tracks viewing history, and the
 * BFF is where a signed-in user enters a room. A short sorted set per user in Redis, written
 * without waiting (a lost entry costs one line on the "me" page, never a slower room entry).
 */
import type { BffContext } from '../context.js';

const KEEP = 20;
const TTL_S = 30 * 24 * 3600;
const key = (userId: string) => `bff:recent:${userId}`;

export function noteRecentRoom(ctx: BffContext, userId: string, roomId: string): void {
  if (!ctx.redis) return;
  ctx.redis
    .multi()
    .zadd(key(userId), Date.now(), roomId)
    .zremrangebyrank(key(userId), 0, -KEEP - 1)
    .expire(key(userId), TTL_S)
    .exec()
    .catch((err: unknown) => ctx.log?.debug({ err, userId }, 'recent rooms: not recorded'));
}

/** Most recent first. Rejects when Redis is down; the "me" page then degrades that section. */
export async function recentRoomIds(ctx: BffContext, userId: string, limit = 10): Promise<string[]> {
  if (!ctx.redis) throw new Error('recent rooms need Redis');
  return ctx.redis.zrevrange(key(userId), 0, limit - 1);
}
