import type { Redis } from 'ioredis';
import type { RoomCache, RoomRecord } from '../rooms.js';

/**
 * Compact Redis layout: one hash per room under `r:<id>`, with one- or two-letter field names,
 * times in epoch milliseconds and no expiry (Redis holds every room by design). A typical room is
 * well under 300 bytes.
 */
const F = {
  streamerId: 's',
  title: 't',
  category: 'c',
  coverKey: 'k',
  notice: 'n',
  status: 'st',
  giftGroupId: 'g',
  version: 'v',
  createdAt: 'ct',
  updatedAt: 'ut',
  liveStartedAt: 'lt',
} as const;

export const roomKey = (roomId: string) => `r:${roomId}`;

/**
 * Writes the hash only when the stored version is missing or older, atomically: two writers, or
 * an out-of-order event, can never move a room back to an older version.
 */
const PUT_IF_NEWER = `
local cur = redis.call('HGET', KEYS[1], 'v')
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1`;

type RoomRedis = Redis & { roomPutIfNewer(key: string, version: string, ...fields: string[]): Promise<number> };

function toHash(room: RoomRecord): string[] {
  const out = [
    F.streamerId, room.streamerId,
    F.title, room.title,
    F.category, room.category,
    F.coverKey, room.coverKey,
    F.notice, room.notice,
    F.status, room.status === 'live' ? '2' : '1',
    F.giftGroupId, room.giftGroupId,
    F.version, room.version,
    F.createdAt, String(room.createdAt.getTime()),
    F.updatedAt, String(room.updatedAt.getTime()),
  ];
  if (room.liveStartedAt) out.push(F.liveStartedAt, String(room.liveStartedAt.getTime()));
  return out;
}

function fromHash(roomId: string, h: Record<string, string>): RoomRecord {
  return {
    roomId,
    streamerId: h[F.streamerId] ?? '0',
    title: h[F.title] ?? '',
    category: h[F.category] ?? '',
    coverKey: h[F.coverKey] ?? '',
    notice: h[F.notice] ?? '',
    status: h[F.status] === '2' ? 'live' : 'offline',
    giftGroupId: h[F.giftGroupId] ?? '0',
    version: h[F.version] ?? '0',
    createdAt: new Date(Number(h[F.createdAt] ?? 0)),
    updatedAt: new Date(Number(h[F.updatedAt] ?? 0)),
    liveStartedAt: h[F.liveStartedAt] ? new Date(Number(h[F.liveStartedAt])) : null,
  };
}

export class RedisRoomCache implements RoomCache {
  private readonly redis: RoomRedis;

  constructor(redis: Redis) {
    if (!('roomPutIfNewer' in redis)) redis.defineCommand('roomPutIfNewer', { numberOfKeys: 1, lua: PUT_IF_NEWER });
    this.redis = redis as RoomRedis;
  }

  async put(room: RoomRecord): Promise<void> {
    await this.redis.roomPutIfNewer(roomKey(room.roomId), room.version, ...toHash(room));
  }

  async get(roomId: string): Promise<RoomRecord | undefined> {
    const h = await this.redis.hgetall(roomKey(roomId));
    return h[F.version] === undefined ? undefined : fromHash(roomId, h);
  }
}
