import { deleteKeys, slotOwner, type RedisClient } from '../../../kit/redis.js';
import type { Contribution } from '../boards.js';
import type { Around, BoardContent, BoardStore, Entry, RebuildLock, Top } from '../ports.js';

/**
 * Each board is three keys:
 *
 *   <board>     zset; member "<9999999999999 - reach ms, 13 digits>:<user>", score the total.
 *               Redis orders equal scores by member, so among equal totals the user who reached
 *               theirs first sorts first in a descending read: ties go to the earlier.
 *   <board>:h   hash; s:<user> the exact total (HINCRBY, int64: the zset's double is only the
 *               order), m:<user> the user's current member, r:<user> reach ms, n:<user> name
 *   <board>:o   set of order ids counted: what makes a redelivered event count once per board
 *
 * plus k:{rk:<room>}:ls (the room's latest broadcast start, ms) and the rebuild locks
 * k:{rk:<room>}:x (a room) and k:{rk:s}:x:w:<week id> (a week). All three keys of a board expire
 * together. Each lock shares the slot of the boards it guards (boards.ts tags the keys), so the
 * apply script checks it atomically; a gift touches two slots, its room's and the streamer boards'.
 */
const APPLY = `
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local first = tonumber(ARGV[6])
local ls = tonumber(ARGV[4])
if first == 3 and ls > 0 and ls > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5]) end
local reach = tonumber(ARGV[2])
local applied = 0
for i = first, #KEYS do
  local board = KEYS[i]
  local j = 7 + (i - first) * 3
  local user, exp, name = ARGV[j], ARGV[j + 1], ARGV[j + 2]
  if redis.call('SADD', board .. ':o', ARGV[3]) == 1 then
    local h = board .. ':h'
    local score = redis.call('HINCRBY', h, 's:' .. user, ARGV[1])
    local r = math.max(reach, tonumber(redis.call('HGET', h, 'r:' .. user) or '0'))
    local old = redis.call('HGET', h, 'm:' .. user)
    if old then redis.call('ZREM', board, old) end
    local member = string.format('%013d', 9999999999999 - r) .. ':' .. user
    redis.call('ZADD', board, score, member)
    redis.call('HSET', h, 'm:' .. user, member, 'r:' .. user, tostring(r))
    if name ~= '' then redis.call('HSET', h, 'n:' .. user, name) end
    for _, key in ipairs({board, h, board .. ':o'}) do redis.call('PEXPIREAT', key, exp) end
    applied = applied + 1
  end
end
return applied`;

/** Lua appending member, exact total and name of each member in `members` to `out`. */
const appendEntries = (members: string) => `
for _, m in ipairs(${members}) do
  local user = string.sub(m, 15)
  local v = redis.call('HMGET', KEYS[1] .. ':h', 's:' .. user, 'n:' .. user)
  table.insert(out, m)
  table.insert(out, v[1] or '0')
  table.insert(out, v[2] or '')
end`;

/** The top n with exact totals and names, and the board's size, in one round trip. */
const READ_TOP = `
local out = {redis.call('ZCARD', KEYS[1])}
${appendEntries("redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)")}
return out`;

/** A user's place and up to n neighbours each side: {size, rank0 or -1, first rank0, entries…}. */
const USER_RANK = `
local total = redis.call('ZCARD', KEYS[1])
local h = KEYS[1] .. ':h'
local m = redis.call('HGET', h, 'm:' .. ARGV[1])
if not m then return {total, -1, 0} end
local rank = redis.call('ZREVRANK', KEYS[1], m)
if not rank then return {total, -1, 0} end
local n = tonumber(ARGV[2])
local lo = math.max(0, rank - n)
local out = {total, rank, lo}
${appendEntries("redis.call('ZREVRANGE', KEYS[1], lo, rank + n)")}
return out`;

/** Raises a room's broadcast start, never lowers it (events and room changes arrive in any order). */
const RAISE_LIVE_START = `
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`;

interface BoardScripts {
  rankLiveStart(...args: string[]): Promise<number>;
  rankApply(...args: string[]): Promise<number>;
  rankTop(...args: string[]): Promise<Array<string | number>>;
  rankUser(...args: string[]): Promise<Array<string | number>>;
}
type BoardRedis = RedisClient & BoardScripts;

export type { Around, BoardContent, Entry, Top } from '../ports.js';

const MAX_INV = 9999999999999;
const memberOf = (reachMs: number, userId: string) => `${String(MAX_INV - reachMs).padStart(13, '0')}:${userId}`;

function entriesFrom(flat: Array<string | number>, from: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i + 2 < flat.length; i += 3) {
    const member = String(flat[i]);
    out.push({ userId: member.slice(14), score: String(flat[i + 1]), reachAt: new Date(MAX_INV - Number(member.slice(0, 13))), name: String(flat[i + 2]) });
  }
  return out;
}

const roomLockKey = (roomId: string) => `k:{rk:${roomId}}:x`;
const weekLockKey = (weekId: string) => `k:{rk:s}:x:w:${weekId}`;
const liveStartKey = (roomId: string) => `k:{rk:${roomId}}:ls`;
/** The apply script checks the same keys, so an event for a locked room or week is put back. */
const lockKey = (l: RebuildLock) => ('room' in l ? roomLockKey(l.room) : weekLockKey(l.week));

export class RedisBoards implements BoardStore {
  private readonly redis: BoardRedis;

  constructor(redis: RedisClient) {
    if (!('rankApply' in redis)) {
      redis.defineCommand('rankApply', { lua: APPLY });
      redis.defineCommand('rankTop', { numberOfKeys: 1, lua: READ_TOP });
      redis.defineCommand('rankUser', { numberOfKeys: 1, lua: USER_RANK });
      redis.defineCommand('rankLiveStart', { numberOfKeys: 1, lua: RAISE_LIVE_START });
    }
    this.redis = redis as BoardRedis;
  }

  /**
   * Adds one order to every board it touches, one script per slot (the streamer boards', then the
   * room's): boards that already counted it are skipped. Returns how many boards changed, or
   * 'locked' while a rebuild holds the room or week.
   *
   * The week lock lives with the streamer boards, so the room's week boards are checked against it
   * a moment before their script runs. That is enough: an event in hand is for an order already
   * paid, which a rebuild that locks after the check lists, and the board it writes records the
   * order, so the script either lands before the rebuild's replace (and is overwritten by a total
   * that includes it) or after (and skips it as counted).
   */
  async apply(
    order: { orderId: string; roomId: string; amountMinor: string; reachMs: number; liveStartMs: number; weekId: string },
    contributions: Contribution[],
    liveStartTtlMs: number,
  ): Promise<number | 'locked'> {
    const roomOwner = slotOwner(roomLockKey(order.roomId));
    const room = contributions.filter((c) => slotOwner(c.board.key) === roomOwner);
    const streamer = contributions.filter((c) => slotOwner(c.board.key) !== roomOwner);
    const run = async (lead: string[], group: Contribution[]) => {
      const args = [order.amountMinor, String(order.reachMs), order.orderId, String(order.liveStartMs), String(liveStartTtlMs), String(lead.length + 1)];
      for (const c of group) args.push(c.userId, String(c.board.expireAt), c.name);
      const keys = [...lead, ...group.map((c) => c.board.key)];
      return this.redis.rankApply(String(keys.length), ...keys, ...args);
    };
    let applied = 0;
    if (streamer.length > 0) {
      const n = await run([weekLockKey(order.weekId)], streamer);
      if (n === -1) return 'locked';
      applied += n;
    }
    const n = await run([roomLockKey(order.roomId), liveStartKey(order.roomId)], room);
    return n === -1 ? 'locked' : applied + n;
  }

  async top(board: string, n: number): Promise<Top> {
    const flat = await this.redis.rankTop(board, String(n));
    return { total: Number(flat[0] ?? 0), entries: entriesFrom(flat, 1) };
  }

  async around(board: string, userId: string, n: number): Promise<Around> {
    const flat = await this.redis.rankUser(board, userId, String(n));
    return { total: Number(flat[0] ?? 0), rank: Number(flat[1]), first: Number(flat[2]), entries: entriesFrom(flat, 3) };
  }

  /** The room's latest broadcast start known (from gifts and room changes), or undefined. */
  async liveStart(roomId: string): Promise<Date | undefined> {
    const v = await this.redis.get(liveStartKey(roomId));
    return v ? new Date(Number(v)) : undefined;
  }

  /** Raises the room's broadcast start (never lowers it: events arrive out of order). */
  async noteLiveStart(roomId: string, start: Date, ttlMs: number): Promise<void> {
    await this.redis.rankLiveStart(liveStartKey(roomId), String(start.getTime()), String(ttlMs));
  }

  /** Every stored total on a board, by user (a rebuild compares them with the recomputed ones). */
  async scores(board: string): Promise<Map<string, string>> {
    const h = await this.redis.hgetall(`${board}:h`);
    const out = new Map<string, string>();
    for (const [field, value] of Object.entries(h)) if (field.startsWith('s:')) out.set(field.slice(2), value);
    return out;
  }

  /**
   * Replaces boards wholesale: content, counted orders and expiry, in one transaction per slot
   * (a room's boards together, the streamer boards together). The rebuild's lock keeps the live
   * consumer off them meanwhile.
   */
  async replace(boards: BoardContent[]): Promise<void> {
    const bySlot = new Map<string, BoardContent[]>();
    for (const b of boards) bySlot.set(slotOwner(b.board.key), [...(bySlot.get(slotOwner(b.board.key)) ?? []), b]);
    await Promise.all([...bySlot.values()].map((group) => this.replaceInOneSlot(group)));
  }

  private async replaceInOneSlot(boards: BoardContent[]): Promise<void> {
    const tx = this.redis.multi();
    for (const { board, entries } of boards) {
      const h = `${board.key}:h`;
      const o = `${board.key}:o`;
      tx.del(board.key, h, o);
      for (const e of entries) {
        const member = memberOf(e.reachAt.getTime(), e.userId);
        tx.zadd(board.key, e.score, member);
        tx.hset(h, `s:${e.userId}`, e.score, `m:${e.userId}`, member, `r:${e.userId}`, String(e.reachAt.getTime()));
        if (e.name) tx.hset(h, `n:${e.userId}`, e.name);
        if (e.orders.length > 0) tx.sadd(o, ...e.orders);
      }
      for (const key of [board.key, h, o]) tx.pexpireat(key, board.expireAt);
    }
    const results = await tx.exec();
    for (const [err] of results ?? []) if (err) throw err;
  }

  /** Takes rebuild locks (all or none); they expire on their own if the rebuilder dies. */
  async lock(locks: RebuildLock[], ttlMs: number): Promise<boolean> {
    const taken: string[] = [];
    for (const key of locks.map(lockKey)) {
      if ((await this.redis.set(key, '1', 'PX', ttlMs, 'NX')) !== 'OK') {
        await deleteKeys(this.redis, taken);
        return false;
      }
      taken.push(key);
    }
    return true;
  }

  async isLocked(lock: RebuildLock): Promise<boolean> {
    return (await this.redis.exists(lockKey(lock))) === 1;
  }

  async unlock(locks: RebuildLock[]): Promise<void> {
    await deleteKeys(this.redis, locks.map(lockKey));
  }
}
