import type { ChainableCommander, Redis } from 'ioredis';
import type { PresenceStore } from '../presence.js';
import type { Cursor, IdPage, PartialRoom, RoomCache, RoomChecksum, RoomRecord } from '../rooms.js';

/**
 * Compact Redis layout (every key also carries REDIS_PREFIX); nothing here expires except
 * presence sets, because Redis is meant to hold every room:
 *
 *   r:<id>        hash, one room: one- or two-letter fields, times in epoch ms (~150-300 bytes)
 *   s:<streamer>  zset, the streamer's room ids (score = id)
 *   l, l:<cat>    zset, live rooms overall and per category (score = live start, ms)
 *   o:<id>        zset, sessions in the room (score = last enter, ms); expires when idle
 *   h             zset, live rooms by online count, the input of the hot list
 *   m             hash, n = number of rooms, sv = sum of their versions: compared with MySQL's
 *                 figures at start-up to tell whether Redis is complete
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
} as const satisfies Partial<Record<keyof RoomRecord, string>>;

export const roomKey = (roomId: string) => `r:${roomId}`;
const streamerKey = (streamerId: string) => `s:${streamerId}`;
const LIVE = 'l';
const LIVE_CATEGORY = 'l:';
const presenceKey = (roomId: string) => `o:${roomId}`;
const HOT = 'h';
const META = 'm';

/**
 * Writes the hash and its index entries only when the stored version is missing or older, in one
 * atomic step: two writers, a backfill racing a write, or an out-of-order event can never move a
 * room back to an older version. KEYS[4] is the category-index prefix ("l:" after ioredis has
 * added REDIS_PREFIX), so the script can find the old category's index without knowing the prefix.
 */
const PUT_IF_NEWER = `
local cur = redis.call('HGET', KEYS[1], 'v')
local v = tonumber(ARGV[1])
local curv = 0
if cur then
  curv = tonumber(cur)
  if curv >= v then return 0 end
end
local oldcat = redis.call('HGET', KEYS[1], 'c')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[2])
if oldcat and oldcat ~= '' then redis.call('ZREM', KEYS[4] .. oldcat, ARGV[2]) end
if ARGV[3] == '2' then
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
  if ARGV[5] ~= '' then redis.call('ZADD', KEYS[4] .. ARGV[5], ARGV[4], ARGV[2]) end
  redis.call('ZADD', KEYS[5], redis.call('ZCARD', KEYS[7]), ARGV[2])
else
  redis.call('ZREM', KEYS[3], ARGV[2])
  redis.call('ZREM', KEYS[5], ARGV[2])
end
if not cur then redis.call('HINCRBY', KEYS[6], 'n', 1) end
redis.call('HINCRBY', KEYS[6], 'sv', v - curv)
return 1`;

/** Adds or refreshes a session, drops sessions idle past the TTL, and re-tallies a live room. */
const ENTER = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local n = redis.call('ZCARD', KEYS[1])
if redis.call('HGET', KEYS[2], 'st') == '2' then redis.call('ZADD', KEYS[3], n, ARGV[4]) end
return n`;

const LEAVE = `
redis.call('ZREM', KEYS[1], ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if redis.call('HGET', KEYS[2], 'st') == '2' then redis.call('ZADD', KEYS[3], n, ARGV[2]) end
return n`;

interface RoomScripts {
  roomPut(...args: string[]): Promise<number>;
  roomEnter(...args: string[]): Promise<number>;
  roomLeave(...args: string[]): Promise<number>;
}
type RoomRedis = Redis & RoomScripts;
type RoomPipeline = ChainableCommander & { roomPut(...args: string[]): ChainableCommander };

function withScripts(redis: Redis): RoomRedis {
  if (!('roomPut' in redis)) {
    redis.defineCommand('roomPut', { numberOfKeys: 7, lua: PUT_IF_NEWER });
    redis.defineCommand('roomEnter', { numberOfKeys: 3, lua: ENTER });
    redis.defineCommand('roomLeave', { numberOfKeys: 3, lua: LEAVE });
  }
  return redis as RoomRedis;
}

function putArgs(room: RoomRecord): string[] {
  const live = room.status === 'live';
  const hash = [
    F.streamerId, room.streamerId,
    F.title, room.title,
    F.category, room.category,
    F.coverKey, room.coverKey,
    F.notice, room.notice,
    F.status, live ? '2' : '1',
    F.giftGroupId, room.giftGroupId,
    F.version, room.version,
    F.createdAt, String(room.createdAt.getTime()),
    F.updatedAt, String(room.updatedAt.getTime()),
  ];
  if (room.liveStartedAt) hash.push(F.liveStartedAt, String(room.liveStartedAt.getTime()));
  const liveScore = String((room.liveStartedAt ?? room.updatedAt).getTime());
  return [
    roomKey(room.roomId), streamerKey(room.streamerId), LIVE, LIVE_CATEGORY, HOT, META, presenceKey(room.roomId),
    room.version, room.roomId, live ? '2' : '1', liveScore, room.category,
    ...hash,
  ];
}

/** Builds a (possibly partial) room from hash fields; absent fields keep their zero value. */
function fromFields(roomId: string, get: (f: string) => string | null | undefined): PartialRoom {
  const out: PartialRoom = { roomId, version: get(F.version) ?? '0' };
  const str = (f: string) => get(f) ?? undefined;
  const time = (f: string) => {
    const raw = get(f);
    return raw ? new Date(Number(raw)) : undefined;
  };
  const set = <K extends keyof RoomRecord>(k: K, value: RoomRecord[K] | undefined) => {
    if (value !== undefined) out[k] = value;
  };
  set('streamerId', str(F.streamerId));
  set('title', str(F.title));
  set('category', str(F.category));
  set('coverKey', str(F.coverKey));
  set('notice', str(F.notice));
  const st = get(F.status);
  if (st) out.status = st === '2' ? 'live' : 'offline';
  set('giftGroupId', str(F.giftGroupId));
  set('createdAt', time(F.createdAt));
  set('updatedAt', time(F.updatedAt));
  const lt = get(F.liveStartedAt);
  if (lt !== undefined) out.liveStartedAt = lt ? new Date(Number(lt)) : null;
  return out;
}

/** A full hash always has every field but lt; fill the zero values a full record needs. */
function fullRecord(roomId: string, h: Record<string, string>): RoomRecord {
  const p = fromFields(roomId, (f) => h[f]);
  return {
    streamerId: '0', title: '', category: '', coverKey: '', notice: '', status: 'offline', giftGroupId: '0',
    createdAt: new Date(0), updatedAt: new Date(0), liveStartedAt: null,
    ...p,
  };
}

/** Redis's answer to a zset page query: [member, score, member, score, …]. */
function pairs(flat: string[]): Array<{ id: string; score: number }> {
  const out: Array<{ id: string; score: number }> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push({ id: flat[i] ?? '', score: Number(flat[i + 1]) });
  return out;
}

export class RedisRoomCache implements RoomCache {
  private readonly redis: RoomRedis;

  constructor(redis: Redis) {
    this.redis = withScripts(redis);
  }

  async put(room: RoomRecord): Promise<boolean> {
    return (await this.redis.roomPut(...putArgs(room))) === 1;
  }

  /** For the backfill: one pipeline per batch; returns how many rooms were newer than Redis's copy. */
  async putMany(rooms: RoomRecord[]): Promise<number> {
    const p = this.redis.pipeline() as RoomPipeline;
    for (const room of rooms) p.roomPut(...putArgs(room));
    const results = (await p.exec()) ?? [];
    let written = 0;
    for (const [err, res] of results) {
      if (err) throw err;
      if (res === 1) written++;
    }
    return written;
  }

  async get(roomId: string): Promise<RoomRecord | undefined> {
    const h = await this.redis.hgetall(roomKey(roomId));
    return h[F.version] === undefined ? undefined : fullRecord(roomId, h);
  }

  async getMany(roomIds: string[], fields?: ReadonlyArray<keyof RoomRecord>): Promise<Array<PartialRoom | undefined>> {
    const p = this.redis.pipeline();
    const wanted = fields ? [...new Set([F.version, ...fields.flatMap((f) => (f in F ? [F[f as keyof typeof F]] : []))])] : undefined;
    for (const id of roomIds) {
      if (wanted) p.hmget(roomKey(id), ...wanted);
      else p.hgetall(roomKey(id));
    }
    const results = (await p.exec()) ?? [];
    return roomIds.map((id, i) => {
      const [err, res] = results[i] ?? [new Error('pipeline answered short'), null];
      if (err) throw err;
      if (wanted) {
        const values = res as Array<string | null>;
        if (values[0] === null) return undefined;
        const byField = new Map(wanted.map((f, j) => [f as string, values[j] ?? null]));
        return fromFields(id, (f) => (byField.has(f) ? byField.get(f) : undefined));
      }
      const h = res as Record<string, string>;
      return h[F.version] === undefined ? undefined : fullRecord(id, h);
    });
  }

  liveIds(category: string, size: number, after: Cursor | undefined): Promise<IdPage> {
    return this.page(category === '' ? LIVE : LIVE_CATEGORY + category, size, after);
  }

  streamerIds(streamerId: string, size: number, after: Cursor | undefined): Promise<IdPage> {
    return this.page(streamerKey(streamerId), size, after);
  }

  async checksum(): Promise<RoomChecksum> {
    const [n, sv] = await this.redis.hmget(META, 'n', 'sv');
    return { rooms: Number(n ?? 0), versionSum: sv ?? '0' };
  }

  /**
   * Newest-first page of a zset after a cursor. Entries sharing the cursor's score (rooms that went
   * live in the same millisecond) sit in reverse member order, so the page resumes with those that
   * sort below the cursor's id, then continues strictly below its score. One round trip.
   */
  private async page(key: string, size: number, after: Cursor | undefined): Promise<IdPage> {
    let entries: Array<{ id: string; score: number }>;
    if (!after) {
      entries = pairs(await this.redis.zrevrangebyscore(key, '+inf', '-inf', 'WITHSCORES', 'LIMIT', 0, size + 1));
    } else {
      const results = (await this.redis
        .pipeline()
        .zrevrangebyscore(key, after.score, after.score, 'WITHSCORES')
        .zrevrangebyscore(key, `(${after.score}`, '-inf', 'WITHSCORES', 'LIMIT', 0, size + 1)
        .exec()) ?? [];
      for (const [err] of results) if (err) throw err;
      const same = pairs((results[0]?.[1] as string[]) ?? []).filter((e) => e.id < after.id);
      entries = [...same, ...pairs((results[1]?.[1] as string[]) ?? [])];
    }
    const page = entries.slice(0, size);
    const last = page[page.length - 1];
    return { ids: page.map((e) => e.id), next: entries.length > size && last ? { score: last.score, id: last.id } : undefined };
  }
}

export class RedisPresence implements PresenceStore {
  private readonly redis: RoomRedis;

  constructor(redis: Redis) {
    this.redis = withScripts(redis);
  }

  enter(roomId: string, session: string, nowMs: number, ttlMs: number): Promise<number> {
    return this.redis.roomEnter(presenceKey(roomId), roomKey(roomId), HOT, session, String(nowMs), String(nowMs - ttlMs), roomId, String(ttlMs));
  }

  leave(roomId: string, session: string): Promise<number> {
    return this.redis.roomLeave(presenceKey(roomId), roomKey(roomId), HOT, session, roomId);
  }

  count(roomId: string): Promise<number> {
    return this.redis.zcard(presenceKey(roomId));
  }

  async hottest(limit: number): Promise<Array<{ roomId: string; online: number }>> {
    return pairs(await this.redis.zrevrange(HOT, 0, limit - 1, 'WITHSCORES')).map((e) => ({ roomId: e.id, online: e.score }));
  }
}
