import type { ChainableCommander } from 'ioredis';
import { pipelineByOwner, type RedisClient } from '../../../kit/redis.js';
import type { PresenceStore } from '../presence.js';
import type { Cursor, IdPage, PartialRoom, RoomCache, RoomChecksum, RoomRecord } from '../rooms.js';

/**
 * Compact Redis layout (every key also carries REDIS_PREFIX); nothing here expires except
 * presence sets, because Redis is meant to hold every room. Keys are grouped by owner with a hash
 * tag, so on a Redis Cluster each script stays in one slot and rooms spread over every primary:
 *
 *   {r:<id>}        hash, one room: one- or two-letter fields, times in epoch ms (~150-300 bytes)
 *   {r:<id>}:o      zset, sessions in the room (score = last enter, ms); expires when idle
 *   {s:<streamer>}  zset, the streamer's room ids (score = id)
 *   {rl}:l, {rl}:l:<cat>  zset, live rooms overall and per category (score = live start, ms)
 *   {rl}:h          zset, live rooms by online count, the input of the hot list
 *   {rl}:v          hash, room id -> "<version>|<1 live, 0 not>|<category>": the listings' own
 *                   view of each room, so their update is version-checked on its own
 *   {rl}:m          hash, sv = sum of the versions in {rl}:v; with HLEN {rl}:v, compared with
 *                   MySQL's figures at start-up to tell whether Redis is complete
 *
 * The listings ({rl}) span every room, so they cannot share a slot with a room: a write is the
 * room's script, then the listings' script and the streamer's index. Each step is idempotent and
 * version-checked, and a put runs every step even when the room's hash already had the version,
 * so a retried put (the change event is redelivered until a put succeeds) or a backfill repairs
 * listings left behind by a crash between the steps.
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

export const roomKey = (roomId: string) => `{r:${roomId}}`;
const presenceKey = (roomId: string) => `{r:${roomId}}:o`;
const streamerKey = (streamerId: string) => `{s:${streamerId}}`;
const VIEW = '{rl}:v';
const LIVE = '{rl}:l';
const LIVE_CATEGORY = '{rl}:l:';
const HOT = '{rl}:h';
const META = '{rl}:m';

/**
 * Writes the room's hash only when the stored version is missing or older, in one atomic step:
 * two writers, a backfill racing a write, or an out-of-order event can never move a room back to
 * an older version. Answers {written 1/0, sessions in the room} (the hot tally of a room going live).
 */
const PUT_IF_NEWER = `
local cur = redis.call('HGET', KEYS[1], 'v')
local written = 0
if not cur or tonumber(cur) < tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], unpack(ARGV, 2))
  written = 1
end
return {written, redis.call('ZCARD', KEYS[2])}`;

/**
 * The listings' side of a put, version-checked against their own view of the room (KEYS[1]), so
 * it applies once and never moves back. KEYS[3] is the category-index prefix ("{rl}:l:" after
 * ioredis has added REDIS_PREFIX), so the script can find the old category's index.
 * ARGV: id, version, live 1/0, live score, category, sessions.
 */
const LIST_IF_NEWER = `
local id = ARGV[1]
local v = tonumber(ARGV[2])
local cur = redis.call('HGET', KEYS[1], id)
local curv = 0
local oldcat = ''
if cur then
  local sep = string.find(cur, '|', 1, true)
  curv = tonumber(string.sub(cur, 1, sep - 1))
  if curv >= v then return 0 end
  oldcat = string.sub(cur, sep + 3)
end
redis.call('HSET', KEYS[1], id, ARGV[2] .. '|' .. ARGV[3] .. '|' .. ARGV[5])
if oldcat ~= '' then redis.call('ZREM', KEYS[3] .. oldcat, id) end
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[2], ARGV[4], id)
  if ARGV[5] ~= '' then redis.call('ZADD', KEYS[3] .. ARGV[5], ARGV[4], id) end
  redis.call('ZADD', KEYS[4], ARGV[6], id)
else
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[4], id)
end
redis.call('HINCRBY', KEYS[5], 'sv', v - curv)
return 1`;

/** Adds or refreshes a session and drops sessions idle past the TTL; answers {count, 1 if the room is live}. */
const ENTER = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local live = 0
if redis.call('HGET', KEYS[2], 'st') == '2' then live = 1 end
return {redis.call('ZCARD', KEYS[1]), live}`;

const LEAVE = `
redis.call('ZREM', KEYS[1], ARGV[1])
local live = 0
if redis.call('HGET', KEYS[2], 'st') == '2' then live = 1 end
return {redis.call('ZCARD', KEYS[1]), live}`;

/**
 * Re-tallies a room in the hot list if the listings hold it as live: the listings decide, so an
 * enter racing the room going offline cannot leave an offline room in the list.
 */
const TALLY = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local sep = string.find(cur, '|', 1, true)
if string.sub(cur, sep + 1, sep + 1) ~= '1' then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1`;

interface RoomScripts {
  roomPut(...args: string[]): Promise<[number, number]>;
  roomList(...args: string[]): Promise<number>;
  roomEnter(...args: string[]): Promise<[number, number]>;
  roomLeave(...args: string[]): Promise<[number, number]>;
  roomTally(...args: string[]): Promise<number>;
}
type RoomRedis = RedisClient & RoomScripts;
type RoomPipeline = ChainableCommander & { roomPut(...args: string[]): ChainableCommander; roomList(...args: string[]): ChainableCommander };

function withScripts(redis: RedisClient): RoomRedis {
  if (!('roomPut' in redis)) {
    redis.defineCommand('roomPut', { numberOfKeys: 2, lua: PUT_IF_NEWER });
    redis.defineCommand('roomList', { numberOfKeys: 5, lua: LIST_IF_NEWER });
    redis.defineCommand('roomEnter', { numberOfKeys: 2, lua: ENTER });
    redis.defineCommand('roomLeave', { numberOfKeys: 2, lua: LEAVE });
    redis.defineCommand('roomTally', { numberOfKeys: 2, lua: TALLY });
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
  return [roomKey(room.roomId), presenceKey(room.roomId), room.version, ...hash];
}

function listArgs(room: RoomRecord, sessions: number): string[] {
  const liveScore = String((room.liveStartedAt ?? room.updatedAt).getTime());
  return [VIEW, LIVE, LIVE_CATEGORY, HOT, META, room.roomId, room.version, room.status === 'live' ? '1' : '0', liveScore, room.category, String(sessions)];
}

function throwFirst(results: Array<[Error | null, unknown]>): unknown[] {
  return results.map(([err, res]) => {
    if (err) throw err;
    return res;
  });
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

  constructor(redis: RedisClient) {
    this.redis = withScripts(redis);
  }

  async put(room: RoomRecord): Promise<boolean> {
    const [written, sessions] = await this.redis.roomPut(...putArgs(room));
    await Promise.all([this.redis.roomList(...listArgs(room, sessions)), this.redis.zadd(streamerKey(room.streamerId), room.roomId, room.roomId)]);
    return written === 1;
  }

  /** For the backfill: one pipeline per step (per room on a Cluster); returns how many rooms were newer than Redis's copy. */
  async putMany(rooms: RoomRecord[]): Promise<number> {
    const puts = throwFirst(await pipelineByOwner(this.redis, rooms, (r) => roomKey(r.roomId), (p, r) => (p as RoomPipeline).roomPut(...putArgs(r)))) as Array<[number, number]>;
    const lists = this.redis.pipeline() as RoomPipeline;
    rooms.forEach((room, i) => lists.roomList(...listArgs(room, puts[i]?.[1] ?? 0)));
    await Promise.all([
      lists.exec().then((r) => throwFirst(r ?? [])),
      pipelineByOwner(this.redis, rooms, (r) => streamerKey(r.streamerId), (p, r) => p.zadd(streamerKey(r.streamerId), r.roomId, r.roomId)).then(throwFirst),
    ]);
    return puts.filter(([written]) => written === 1).length;
  }

  async get(roomId: string): Promise<RoomRecord | undefined> {
    const h = await this.redis.hgetall(roomKey(roomId));
    return h[F.version] === undefined ? undefined : fullRecord(roomId, h);
  }

  async getMany(roomIds: string[], fields?: ReadonlyArray<keyof RoomRecord>): Promise<Array<PartialRoom | undefined>> {
    const wanted = fields ? [...new Set([F.version, ...fields.flatMap((f) => (f in F ? [F[f as keyof typeof F]] : []))])] : undefined;
    const results = await pipelineByOwner(this.redis, roomIds, roomKey, (p, id) => (wanted ? p.hmget(roomKey(id), ...wanted) : p.hgetall(roomKey(id))));
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
    const [n, sv] = throwFirst((await this.redis.pipeline().hlen(VIEW).hget(META, 'sv').exec()) ?? []) as [number, string | null];
    return { rooms: Number(n), versionSum: sv ?? '0' };
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

  constructor(redis: RedisClient) {
    this.redis = withScripts(redis);
  }

  /** The room's sessions, then (for a live room) its place in the hot list: two slots on a Cluster. */
  async enter(roomId: string, session: string, nowMs: number, ttlMs: number): Promise<number> {
    const [n, live] = await this.redis.roomEnter(presenceKey(roomId), roomKey(roomId), session, String(nowMs), String(nowMs - ttlMs), String(ttlMs));
    if (live === 1) await this.redis.roomTally(VIEW, HOT, roomId, String(n));
    return n;
  }

  async leave(roomId: string, session: string): Promise<number> {
    const [n, live] = await this.redis.roomLeave(presenceKey(roomId), roomKey(roomId), session);
    if (live === 1) await this.redis.roomTally(VIEW, HOT, roomId, String(n));
    return n;
  }

  count(roomId: string): Promise<number> {
    return this.redis.zcard(presenceKey(roomId));
  }

  async hottest(limit: number): Promise<Array<{ roomId: string; online: number }>> {
    return pairs(await this.redis.zrevrange(HOT, 0, limit - 1, 'WITHSCORES')).map((e) => ({ roomId: e.id, online: e.score }));
  }
}
