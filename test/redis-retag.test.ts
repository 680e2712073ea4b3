import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromRoot } from '../kit/paths.js';
import { isolate } from '../scripts/isolation.js';
import { retagRedis, summary, type FamilyTally } from '../scripts/redis-retag.js';
import type { ChatEvent } from '../services/chat/events.js';
import { encodeEvent } from '../services/chat/mapping.js';
import { RedisChatStore } from '../services/chat/store/redis-chat.js';
import { Boards, type Contribution } from '../services/ranking/boards.js';
import { Calendar } from '../services/ranking/calendar.js';
import { RedisBoards } from '../services/ranking/store/redis-boards.js';

/**
 * `npm run redis-retag`: keys written in the layout before the Redis Cluster hash tags (as the
 * release at c5309a3 wrote them) are moved, and read back through today's stores.
 */
const iso = isolate('retag');
let redis: Redis;
const now = Date.now();
const DAY_MS = 24 * 3600_000;

/** Ranking's gift script as the old release ran it, on the old key names. */
const OLD_APPLY = `
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local ls = tonumber(ARGV[4])
if ls > 0 and ls > tonumber(redis.call('GET', KEYS[3]) or '0') then redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5]) end
local reach = tonumber(ARGV[2])
local applied = 0
for i = 4, #KEYS do
  local board = KEYS[i]
  local j = 6 + (i - 4) * 3
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

const chatLine = (roomId: string, seq: string, messageId: string, text: string): ChatEvent => ({
  roomId,
  seq,
  priority: 'normal',
  at: new Date(now),
  payload: { chat: { messageId, senderId: '7', senderName: 'viewer 7', senderLevel: 1, text, mergedCount: 1, senderRole: undefined } },
});

/** What the old release left for a room: policy, mutes (room and platform-wide), likes, status, sequence and recent messages. */
async function writeOldChat(r: Redis, roomId: string): Promise<void> {
  await r.hset(`c:p:${roomId}`, 'ml', '3', 'sm', '5000', 'cc', '1', 'v', '4', 'ut', String(now), 'ub', '9');
  for (const [room, user] of [[roomId, '21'], ['0', '22']] as const) {
    const key = `c:u:${room}:${user}`;
    await r.multi().del(key).hset(key, 'e', String(now + DAY_MS), 'b', '9', 'r', 'spam').pexpireat(key, now + DAY_MS).exec();
  }
  await r.hset(`c:l:${roomId}`, 'n', '12345', 't', String(now - 1000));
  await r.multi().hset(`c:rs:${roomId}`, 'v', '3', 's', 'live').pexpire(`c:rs:${roomId}`, 30 * DAY_MS).exec();
  await r.set(`c:q:${roomId}`, '42');
  // The old recent list: "<seq>|<event without its seq>", newest first.
  for (const [seq, id, text] of [['40', '100', 'first'], ['42', '101', 'second']] as const) {
    await r.lpush(`c:h:${roomId}`, Buffer.concat([Buffer.from(`${seq}|`), encodeEvent(chatLine(roomId, '0', id, text))]));
  }
}

const calendar = new Calendar('UTC');
const boards = new Boards(calendar);
const oldBoardKey = (newKey: string) => newKey.replace(/^k:\{rk:s\}:/, 'k:b:s:').replace(/^k:\{rk:([^}]+)\}:/, 'k:b:r:$1:');

interface OldGift { order: string; sender: string; amount: string; reach: number }

/** Gifts in a room as the old release applied them: its day board, the streamer week board if asked, and its live start. */
async function writeOldBoards(r: Redis, roomId: string, gifts: OldGift[], streamer = true): Promise<{ roomDay: string; streamerWeek: string }> {
  const roomDay = boards.room(roomId, 'day', now);
  const streamerWeek = boards.streamer('week', now);
  const keys = [`k:x:r:${roomId}`, 'k:x:w:none', `k:ls:${roomId}`, oldBoardKey(roomDay.key), ...(streamer ? [oldBoardKey(streamerWeek.key)] : [])];
  for (const g of gifts) {
    await r.eval(OLD_APPLY, keys.length, ...keys, g.amount, String(g.reach), g.order, String(now - 3600_000), String(DAY_MS),
      g.sender, String(roomDay.expireAt), `viewer ${g.sender}`, ...(streamer ? [`9${roomId}`, String(streamerWeek.expireAt), ''] : []));
  }
  return { roomDay: roomDay.key, streamerWeek: streamerWeek.key };
}

async function snapshot(r: Redis, prefix: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const full of (await r.keys(`${prefix}*`)).sort()) {
    const key = full.slice(prefix.length);
    out[key] = `${await r.type(key)} ${(await r.dumpBuffer(key))?.toString('hex') ?? ''}`;
  }
  return out;
}

const tally = (tallies: FamilyTally[], family: string) => tallies.find((t) => t.family === family);

beforeAll(() => {
  redis = new Redis(iso.urls.redisUrl, { keyPrefix: iso.redisPrefix });
});

afterAll(async () => {
  redis?.disconnect();
  await iso.cleanup();
});

describe('redis-retag (function)', () => {
  it('moves policies, mutes, likes, room status, recent messages and boards; the new stores read them', async () => {
    const roomId = '501';
    const conflict = '502';
    await writeOldChat(redis, roomId);
    const { roomDay, streamerWeek } = await writeOldBoards(redis, roomId, [
      { order: '5001', sender: '31', amount: '700', reach: now - 5000 },
      { order: '5002', sender: '32', amount: '900', reach: now - 4000 },
    ]);
    const chat = new RedisChatStore(redis);
    const ranking = new RedisBoards(redis);
    // Room 502 ran on the new release already: a policy set and likes flushed there first.
    await redis.hset(`c:p:${conflict}`, 'ml', '1', 'v', '2');
    await redis.hset(`c:l:${conflict}`, 'n', '1000', 't', String(now - 5000));
    await chat.setPolicy(conflict, { minLevel: 8 }, '0', '9', now);
    await chat.flushLikes(conflict, 5, now);
    // Gifts the new release counted before the command ran: one more on both boards (they add up),
    // and in room 504 an order the old board counted too (that board is skipped, not counted twice).
    const gift = (room: string, order: string, sender: string, amount: string, onBoards: Contribution[]) =>
      ranking.apply({ orderId: order, roomId: room, amountMinor: amount, reachMs: now - 1000, liveStartMs: 0, weekId: 'none' }, onBoards, DAY_MS);
    expect(await gift(roomId, '6001', '31', '300', [
      { board: boards.room(roomId, 'day', now), userId: '31', name: 'viewer 31' },
      { board: boards.streamer('week', now), userId: `9${roomId}`, name: '' },
    ])).toBe(2);
    const twice = '504';
    await writeOldBoards(redis, twice, [{ order: '5001', sender: '31', amount: '700', reach: now - 5000 }], false);
    const old504 = oldBoardKey(boards.room(twice, 'day', now).key);
    expect(await gift(twice, '5001', '31', '700', [{ board: boards.room(twice, 'day', now), userId: '31', name: 'viewer 31' }])).toBe(1);
    // Room 503 ran on the hash-tagged layout main had before the room stream: {c:<room>}:q and :h.
    const tagged = '503';
    await redis.set(`{c:${tagged}}:q`, '7');
    await redis.lpush(`{c:${tagged}}:h`, Buffer.concat([Buffer.from('6|'), encodeEvent(chatLine(tagged, '0', '200', 'tagged'))]));

    // A dry run counts and changes nothing.
    const before = await snapshot(redis, iso.redisPrefix);
    const lines: string[] = [];
    const dry = await retagRedis(redis, iso.redisPrefix, { dryRun: true, log: (l) => lines.push(l) });
    expect(await snapshot(redis, iso.redisPrefix)).toEqual(before);
    expect(tally(dry, 'chat policies')).toMatchObject({ scanned: 2, moved: 1, skipped: 1 });
    expect(lines.join('\n')).toContain('chat policies: 2 scanned, 1 would move, 0 would merge, 1 skipped (new key exists)');
    expect(summary(dry, true)).toMatch(/^redis-retag \(dry run, nothing changed\): /);

    const moved = await retagRedis(redis, iso.redisPrefix, { log: (l) => lines.push(l) });
    expect(moved.map((t) => [t.family, t.moved, t.merged, t.skipped])).toEqual([
      ['chat policies', 1, 0, 1],
      ['chat mutes', 2, 0, 0],
      ['chat like totals', 1, 1, 0],
      ['chat room status', 1, 0, 0],
      ['chat sequences and recent messages', 1, 0, 0],
      ['chat tagged sequences and recent messages', 1, 0, 0],
      ['ranking room boards', 0, 1, 1],
      ['ranking streamer boards', 0, 1, 0],
      ['ranking live starts', 2, 0, 0],
    ]);

    // Chat, through its store.
    expect(await chat.policy(roomId)).toMatchObject({ minLevel: 3, slowModeMs: 5000, chatClosed: true, version: '4', updatedBy: '9' });
    expect((await chat.likes(roomId)).total).toBe('12345');
    expect((await chat.likes(conflict)).total).toBe('1005');
    // The newer policy of room 502 was kept; its old one stays behind, untouched.
    expect(await chat.policy(conflict)).toMatchObject({ minLevel: 8, version: '1' });
    expect(await redis.hget(`c:p:${conflict}`, 'ml')).toBe('1');
    const admit = (room: string, user: string) =>
      chat.admit({ roomId: room, userId: user, clientMessageId: `m${user}`, fingerprint: 'f', textHash: 'h', candidateId: '900', nowMs: Date.now(), burst: 5, perSecond: 1, slowModeMs: 0, mergeWindowMs: 0, dedupeMs: 60_000 });
    expect(await admit(roomId, '21')).toEqual({ kind: 'muted', until: new Date(now + DAY_MS) });
    expect(await admit('777', '22')).toEqual({ kind: 'muted', until: new Date(now + DAY_MS) });
    expect(await redis.pttl(`{u:22}:c:u`)).toBeGreaterThan(DAY_MS - 60_000);
    // A status seen before: the same status at a newer version announces nothing again.
    expect(await chat.roomChanged(roomId, '4', 'live', 'x')).toEqual({ status: false, edit: false });
    const recent = await chat.recent(roomId);
    expect(recent.events.map((e) => [e.seq, 'chat' in e.payload ? e.payload.chat.text : ''])).toEqual([['40', 'first'], ['42', 'second']]);
    expect(recent.position.offset).toBe('42');
    expect(recent.position.epoch).toMatch(/^[0-9a-f]{16}$/);
    // Offsets continue above the old sequence, in the same epoch.
    expect(await chat.append(chatLine(roomId, '0', '102', 'third'), { size: 100, ttlMs: DAY_MS }, Date.now())).toEqual({ offset: '43', epoch: recent.position.epoch });
    expect((await chat.recent(roomId)).events.map((e) => e.seq)).toEqual(['40', '42', '43']);
    const taggedRecent = await chat.recent(tagged);
    expect([taggedRecent.position.offset, taggedRecent.events.map((e) => e.seq)]).toEqual(['7', ['6']]);

    // Ranking, through its store.
    const day = await ranking.top(roomDay, 10);
    expect(day.total).toBe(2);
    expect(day.entries.map((e) => [e.userId, e.score, e.name])).toEqual([['31', '1000', 'viewer 31'], ['32', '900', 'viewer 32']]);
    const week = await ranking.top(streamerWeek, 10);
    expect(week.entries.map((e) => [e.userId, e.score])).toEqual([[`9${roomId}`, '1900']]);
    expect(await redis.scard(`${roomDay}:o`)).toBe(3);
    // Room 504's board counted order 5001 on both sides: the new board alone, the old left behind.
    expect((await ranking.top(boards.room(twice, 'day', now).key, 10)).entries.map((e) => [e.userId, e.score])).toEqual([['31', '700']]);
    expect(await redis.exists(old504)).toBe(1);
    expect(await redis.pttl(`${roomDay}:o`)).toBeGreaterThan(0);
    expect(await redis.get(`k:{rk:${roomId}}:ls`)).toBe(String(now - 3600_000));
    // A redelivered gift still counts once: the counted orders moved with the board.
    const applied = await ranking.apply(
      { orderId: '5001', roomId, amountMinor: '700', reachMs: now, liveStartMs: 0, weekId: 'x' },
      [{ board: boards.room(roomId, 'day', now), userId: '31', name: 'viewer 31' }],
      DAY_MS,
    );
    expect(applied).toBe(0);

    // Nothing of the old layout is left but the conflicting policy and room 504's board.
    const left = (await redis.keys(`${iso.redisPrefix}*`)).map((k) => k.slice(iso.redisPrefix.length)).filter((k) => /^(c:[pulq]|c:h|c:rs|k:b|k:ls):|^\{c:[^}]+\}:[qh]$/.test(k));
    expect(left.sort()).toEqual([`c:p:${conflict}`, old504, `${old504}:h`, `${old504}:o`].sort());

    // A re-run finds only what it skipped and changes nothing.
    const settled = await snapshot(redis, iso.redisPrefix);
    const again = await retagRedis(redis, iso.redisPrefix);
    expect(again.reduce((n, t) => n + t.moved + t.merged, 0)).toBe(0);
    expect(tally(again, 'chat policies')).toMatchObject({ scanned: 1, skipped: 1 });
    expect(await snapshot(redis, iso.redisPrefix)).toEqual(settled);
  });
});

describe('redis-retag (command)', () => {
  const run = (env: Record<string, string>, ...args: string[]) =>
    promisify(execFile)(process.execPath, [fromRoot('dist', 'scripts', 'redis-retag.js'), ...args], { env: { ...process.env, REDIS_CLUSTER_NODES: '', ...env }, timeout: 60_000 }).then(
      (r) => ({ code: 0, ...r }),
      (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
    );

  it('moves the keys under REDIS_PREFIX and prints a line per family and a summary', async () => {
    const prefix = `${iso.redisPrefix}cli:`;
    const r = new Redis(iso.urls.redisUrl, { keyPrefix: prefix });
    try {
      await r.hset('c:p:601', 'ml', '2', 'v', '3');
      await r.hset('c:l:601', 'n', '77', 't', String(now));
      const out = await run({ REDIS_URL: iso.urls.redisUrl, REDIS_PREFIX: prefix });
      expect(out.code).toBe(0);
      expect(out.stdout).toContain('redis-retag: chat policies: 1 scanned, 1 moved');
      expect(out.stdout).toContain('redis-retag: chat like totals: 1 scanned, 1 moved');
      expect(out.stdout).toMatch(/^redis-retag: 2 scanned, 2 moved, 0 merged, 0 skipped \(new key exists\), 0 ignored$/m);
      const chat = new RedisChatStore(r);
      expect(await chat.policy('601')).toMatchObject({ minLevel: 2, version: '3' });
      expect((await chat.likes('601')).total).toBe('77');
      const rerun = await run({ REDIS_URL: iso.urls.redisUrl, REDIS_PREFIX: prefix });
      expect(rerun.stdout).toMatch(/^redis-retag: 0 scanned, 0 moved/m);
    } finally {
      r.disconnect();
    }
  }, 120_000);

  it('refuses a Cluster, saying to run it on the single server first, and an unknown argument', async () => {
    const cluster = await run({ REDIS_URL: iso.urls.redisUrl, REDIS_PREFIX: iso.redisPrefix, REDIS_CLUSTER_NODES: '127.0.0.1:7000' });
    expect(cluster.code).toBe(78);
    expect(cluster.stderr).toContain('REDIS_CLUSTER_NODES is set');
    expect(cluster.stderr).toContain('before moving the data to a Cluster');
    const bad = await run({ REDIS_URL: iso.urls.redisUrl, REDIS_PREFIX: iso.redisPrefix }, '--dryrun');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown argument --dryrun');
  }, 120_000);
});
