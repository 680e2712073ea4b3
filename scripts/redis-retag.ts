import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { Cluster, type Redis } from 'ioredis';
import { ConfigError, EXIT_CONFIG, kitConfigShape, parseConfig } from '../kit/config.js';
import { createLogger } from '../kit/logger.js';
import { connectRedis } from '../kit/redis.js';

/**
 * `npm run redis-retag -- [--dry-run]`: moves what lives only in Redis from the key names used
 * before the Redis Cluster hash tags (issue 18) to the tagged ones, on the single server at
 * REDIS_URL under REDIS_PREFIX. Run it on that server before moving to a Cluster: on a Cluster the
 * old and new names of one key sit in different slots, where RENAME cannot reach.
 *
 * Moved (same value, same meaning, TTL kept by RENAME):
 *   c:p:<room>          -> {c:<room>}:p          chat policy (never expires)
 *   c:u:<room>:<user>   -> {c:<room>}:u:<user>   room mute; room 0 (platform-wide) -> {u:<user>}:c:u
 *   c:l:<room>          -> {c:<room>}:l          like total; added into a new total already counting
 *   c:rs:<room>         -> {c:<room>}:rs         last room version/status seen (no repeated live notice)
 *   c:q:<room> + c:h:<room> -> {c:<room>}:m + :r the room's sequence becomes the stream's offset (a
 *                            new epoch) and the recent messages move, so offsets keep rising;
 *                            likewise {c:<room>}:q + {c:<room>}:h (the tagged layout before the stream)
 *   k:b:r:<room>:<P>:<span>[:h|:o] -> k:{rk:<room>}:<P>:<span>[:h|:o]   a room's board, three keys together
 *   k:b:s:<P>:<span>[:h|:o]        -> k:{rk:s}:<P>:<span>[:h|:o]        a streamer board
 *   k:ls:<room>         -> k:{rk:<room>}:ls      the room's latest broadcast start
 *
 * Left to start over (README, Redis Cluster): Room's keys (a cache of MySQL, backfilled at start)
 * and presence; Chat's retry records, token buckets, slow-mode markers and merge windows (seconds
 * to minutes); the online counts last announced (one hash became a key per room: at worst one
 * extra announcement); Ranking's rebuild locks (a rebuild running across the upgrade is re-run).
 *
 * A new key that already exists (the new release wrote it first) is never overwritten: the old
 * key stays and is counted as skipped, except a like total, whose two counts add up, and a board,
 * which is added into the new one when no order counts in both. Each key is
 * moved by one script, so an interrupted run leaves every key either moved or not, and a re-run
 * only finds what is left.
 */

/** How one old key fared. */
type Outcome = 'moved' | 'merged' | 'skipped' | 'gone';

interface Family {
  name: string;
  /** SCAN pattern under the prefix. */
  pattern: string;
  /** The new name(s) for an old key (prefix stripped), or undefined when the key is not this family's (left alone). */
  plan(key: string): string[] | undefined;
  script: keyof RetagScripts;
  /** Keys the pattern also finds that move with another (a board's :h and :o): not counted. */
  companion?: RegExp;
}

/**
 * ARGV[1] = '1' for a dry run. KEYS[1] old, KEYS[2] new. A rename that never overwrites; RENAME
 * keeps the TTL (mutes, room status, live start expire as before).
 */
const MOVE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'skipped' end
if ARGV[1] ~= '1' then redis.call('RENAME', KEYS[1], KEYS[2]) end
return 'moved'`;

/** Like totals: a new total already counting (likes flushed by the new release) gets the old one added. */
const MOVE_LIKES = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
if redis.call('EXISTS', KEYS[2]) == 0 then
  if ARGV[1] ~= '1' then redis.call('RENAME', KEYS[1], KEYS[2]) end
  return 'moved'
end
if ARGV[1] ~= '1' then
  local old = redis.call('HMGET', KEYS[1], 'n', 't')
  redis.call('HINCRBY', KEYS[2], 'n', tonumber(old[1] or '0'))
  local t = tonumber(redis.call('HGET', KEYS[2], 't') or '0')
  if old[2] and tonumber(old[2]) > t then redis.call('HSET', KEYS[2], 't', old[2]) end
  redis.call('DEL', KEYS[1])
end
return 'merged'`;

/**
 * A board is three keys (KEYS[1..3] old board, :h, :o; KEYS[4..6] new) that move together. When
 * the new release already started the board (a gift since the upgrade), the old one is added into
 * it, as the gift script would have: per user the totals add up, the later reach time and a name
 * kept, the member rebuilt, the counted orders united, the later expiry kept. An order both boards
 * counted would count twice, so such a board is skipped instead (RebuildRanking recomputes it).
 */
const MOVE_BOARD = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
if redis.call('EXISTS', KEYS[4], KEYS[5], KEYS[6]) == 0 then
  if ARGV[1] ~= '1' then
    for i = 1, 3 do
      if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('RENAME', KEYS[i], KEYS[i + 3]) end
    end
  end
  return 'moved'
end
local orders = redis.call('SMEMBERS', KEYS[3])
for _, o in ipairs(orders) do
  if redis.call('SISMEMBER', KEYS[6], o) == 1 then return 'skipped' end
end
if ARGV[1] == '1' then return 'merged' end
local old = redis.call('HGETALL', KEYS[2])
local f = {}
for i = 1, #old, 2 do f[old[i]] = old[i + 1] end
for field, total in pairs(f) do
  if string.sub(field, 1, 2) == 's:' then
    local user = string.sub(field, 3)
    local score = redis.call('HINCRBY', KEYS[5], field, total)
    local r = math.max(tonumber(f['r:' .. user] or '0'), tonumber(redis.call('HGET', KEYS[5], 'r:' .. user) or '0'))
    local was = redis.call('HGET', KEYS[5], 'm:' .. user)
    if was then redis.call('ZREM', KEYS[4], was) end
    local member = string.format('%013d', 9999999999999 - r) .. ':' .. user
    redis.call('ZADD', KEYS[4], score, member)
    redis.call('HSET', KEYS[5], 'm:' .. user, member, 'r:' .. user, tostring(r))
    if f['n:' .. user] then redis.call('HSETNX', KEYS[5], 'n:' .. user, f['n:' .. user]) end
  end
end
for i = 1, #orders, 1000 do redis.call('SADD', KEYS[6], unpack(orders, i, math.min(i + 999, #orders))) end
local ttl = math.max(redis.call('PTTL', KEYS[1]), redis.call('PTTL', KEYS[4]))
if ttl > 0 then
  for i = 4, 6 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 'merged'`;

/**
 * A room's old sequence (KEYS[1], a counter) and recent list (KEYS[2], "<seq>|<event>" newest
 * first) become the stream's hash (KEYS[3]: o = the sequence, e = ARGV[2], a new epoch) and recent
 * list (KEYS[4], the same entries). Offsets continue above the recent entries'; the history
 * (:x) starts empty, so a client resuming from before the upgrade gets recovered: false. A room
 * whose stream hash exists already started its stream on the new release: skipped.
 */
const MOVE_STREAM = `
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[2]) == 0 then return 'gone' end
if redis.call('EXISTS', KEYS[3]) == 1 or redis.call('EXISTS', KEYS[4]) == 1 then return 'skipped' end
if ARGV[1] ~= '1' then
  local o = tonumber(redis.call('GET', KEYS[1]) or '0')
  local head = redis.call('LINDEX', KEYS[2], 0)
  if head then
    local seq = tonumber(string.match(head, '^(%d+)|'))
    if seq and seq > o then o = seq end
  end
  redis.call('HSET', KEYS[3], 'e', ARGV[2], 'o', o)
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RENAME', KEYS[2], KEYS[4]) end
  redis.call('DEL', KEYS[1])
end
return 'moved'`;

interface RetagScripts {
  retagMove(...args: string[]): Promise<Outcome>;
  retagMoveLikes(...args: string[]): Promise<Outcome>;
  retagMoveBoard(...args: string[]): Promise<Outcome>;
  retagMoveStream(...args: string[]): Promise<Outcome>;
}

/** An id segment: no colon, and no brace (which would be a hash tag). */
const SEG = '[^:{}]+';
const ID = `(${SEG})`;
const match = (re: RegExp, key: string) => re.exec(key)?.slice(1);

/** The families in the order they move; each plan checks the key's exact shape. */
export const FAMILIES: readonly Family[] = [
  { name: 'chat policies', pattern: 'c:p:*', script: 'retagMove', plan: (key) => match(new RegExp(`^c:p:${ID}$`), key)?.map((room) => `{c:${room}}:p`) },
  {
    name: 'chat mutes',
    pattern: 'c:u:*',
    script: 'retagMove',
    plan: (key) => {
      const [room, user] = match(new RegExp(`^c:u:${ID}:${ID}$`), key) ?? [];
      if (room === undefined || user === undefined) return undefined;
      return [room === '0' ? `{u:${user}}:c:u` : `{c:${room}}:u:${user}`];
    },
  },
  { name: 'chat like totals', pattern: 'c:l:*', script: 'retagMoveLikes', plan: (key) => match(new RegExp(`^c:l:${ID}$`), key)?.map((room) => `{c:${room}}:l`) },
  { name: 'chat room status', pattern: 'c:rs:*', script: 'retagMove', plan: (key) => match(new RegExp(`^c:rs:${ID}$`), key)?.map((room) => `{c:${room}}:rs`) },
  {
    name: 'chat sequences and recent messages',
    pattern: 'c:q:*',
    script: 'retagMoveStream',
    plan: (key) => match(new RegExp(`^c:q:${ID}$`), key)?.flatMap((room) => [`c:h:${room}`, `{c:${room}}:m`, `{c:${room}}:r`]),
  },
  {
    // The same two keys under the room's hash tag, as main had them between the Cluster layout and the room stream.
    name: 'chat tagged sequences and recent messages',
    pattern: '{c:*}:q',
    script: 'retagMoveStream',
    plan: (key) => match(new RegExp(`^\\{c:${ID}\\}:q$`), key)?.flatMap((room) => [`{c:${room}}:h`, `{c:${room}}:m`, `{c:${room}}:r`]),
  },
  {
    name: 'ranking room boards',
    pattern: 'k:b:r:*',
    script: 'retagMoveBoard',
    companion: /:[ho]$/,
    plan: (key) => {
      const [room, board] = match(new RegExp(`^k:b:r:${ID}:([LDW]:${SEG})$`), key) ?? [];
      return room === undefined || board === undefined ? undefined : boardKeys(key, `k:{rk:${room}}:${board}`);
    },
  },
  {
    name: 'ranking streamer boards',
    pattern: 'k:b:s:*',
    script: 'retagMoveBoard',
    companion: /:[ho]$/,
    plan: (key) => {
      const [board] = match(new RegExp(`^k:b:s:([DW]:${SEG})$`), key) ?? [];
      return board === undefined ? undefined : boardKeys(key, `k:{rk:s}:${board}`);
    },
  },
  { name: 'ranking live starts', pattern: 'k:ls:*', script: 'retagMove', plan: (key) => match(new RegExp(`^k:ls:${ID}$`), key)?.map((room) => `k:{rk:${room}}:ls`) },
];

/** The script's keys after the old board: its :h and :o, then the new three. */
function boardKeys(oldBoard: string, newBoard: string): string[] {
  return [`${oldBoard}:h`, `${oldBoard}:o`, newBoard, `${newBoard}:h`, `${newBoard}:o`];
}

export interface FamilyTally {
  family: string;
  scanned: number;
  moved: number;
  merged: number;
  skipped: number;
  /** Keys matching the pattern but not the family's shape (left alone), or gone meanwhile. */
  ignored: number;
}

export interface RetagOptions {
  dryRun?: boolean;
  log?: (line: string) => void;
  /** SCAN's COUNT hint. */
  batch?: number;
}

/** SCAN's glob treats these as special; a prefix is matched literally. */
const globEscape = (s: string) => s.replace(/[*?[\]\\]/g, '\\$&');

/**
 * Moves every old-layout key under `prefix` (the client's keyPrefix, which SCAN does not apply)
 * to its new name. Answers one tally per family.
 */
export async function retagRedis(redis: Redis | Cluster, prefix: string, opts: RetagOptions = {}): Promise<FamilyTally[]> {
  if (redis instanceof Cluster) throw new Error('redis-retag runs on the single Redis server, before moving to a Cluster: old and new key names sit in different slots there');
  const log = opts.log ?? (() => {});
  const dry = opts.dryRun ? '1' : '0';
  if (!('retagMove' in redis)) {
    redis.defineCommand('retagMove', { numberOfKeys: 2, lua: MOVE });
    redis.defineCommand('retagMoveLikes', { numberOfKeys: 2, lua: MOVE_LIKES });
    redis.defineCommand('retagMoveBoard', { numberOfKeys: 6, lua: MOVE_BOARD });
    redis.defineCommand('retagMoveStream', { numberOfKeys: 4, lua: MOVE_STREAM });
  }
  const scripts = redis as Redis & RetagScripts;
  const tallies: FamilyTally[] = [];
  for (const family of FAMILIES) {
    const tally: FamilyTally = { family: family.name, scanned: 0, moved: 0, merged: 0, skipped: 0, ignored: 0 };
    let cursor = '0';
    let reported = 0;
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', globEscape(prefix) + family.pattern, 'COUNT', opts.batch ?? 1000);
      cursor = next;
      const mine = found.map((full) => full.slice(prefix.length)).filter((key) => !family.companion?.test(key));
      // One script per key, all of a SCAN batch at once: the client's auto-pipelining sends them in one write.
      const outcomes = await Promise.all(mine.map((key) => {
        const keys = family.plan(key);
        return keys ? scripts[family.script](key, ...keys, dry, newEpoch()) : Promise.resolve('gone' as const);
      }));
      for (const outcome of outcomes) {
        tally.scanned++;
        if (outcome === 'gone') tally.ignored++;
        else tally[outcome]++;
      }
      if (tally.scanned - reported >= 10_000) {
        reported = tally.scanned;
        log(`redis-retag: ${family.name}: ${tally.scanned} scanned so far`);
      }
    } while (cursor !== '0');
    log(`redis-retag: ${family.name}: ${describe(tally, opts.dryRun)}`);
    tallies.push(tally);
  }
  return tallies;
}

function describe(t: Omit<FamilyTally, 'family'>, dryRun = false): string {
  const verb = dryRun ? 'would move' : 'moved';
  return `${t.scanned} scanned, ${t.moved} ${verb}, ${t.merged} ${dryRun ? 'would merge' : 'merged'}, ${t.skipped} skipped (new key exists), ${t.ignored} ignored`;
}

/** The summary line over every family. */
export function summary(tallies: FamilyTally[], dryRun = false): string {
  const sum = (f: keyof Omit<FamilyTally, 'family'>) => tallies.reduce((n, t) => n + t[f], 0);
  const total = { scanned: sum('scanned'), moved: sum('moved'), merged: sum('merged'), skipped: sum('skipped'), ignored: sum('ignored') };
  return `redis-retag${dryRun ? ' (dry run, nothing changed)' : ''}: ${describe(total, dryRun)}`;
}

/** A fresh stream epoch, as Chat's store makes them: 16 hex digits. */
const newEpoch = (): string => randomBytes(8).toString('hex');

async function main(argv: string[]): Promise<number> {
  const unknown = argv.filter((a) => a !== '--dry-run');
  if (unknown.length > 0) {
    console.error(`redis-retag: unknown argument ${unknown.join(' ')}\nusage: npm run redis-retag -- [--dry-run]   (uses REDIS_URL and REDIS_PREFIX)`);
    return 2;
  }
  const dryRun = argv.includes('--dry-run');
  const config = parseConfig({ REDIS_URL: kitConfigShape.REDIS_URL, REDIS_CLUSTER_NODES: kitConfigShape.REDIS_CLUSTER_NODES, REDIS_PREFIX: kitConfigShape.REDIS_PREFIX });
  if (config.REDIS_CLUSTER_NODES.length > 0) {
    console.error(
      'redis-retag: REDIS_CLUSTER_NODES is set; this command moves keys on the single Redis server and refuses a Cluster. ' +
        'Run it against the single server (REDIS_URL, REDIS_CLUSTER_NODES empty) before moving the data to a Cluster.',
    );
    return EXIT_CONFIG;
  }
  const redis = await connectRedis(config, createLogger({ service: 'redis-retag', replica: '', level: 'warn' }), { autoPipelining: true });
  try {
    console.log(`redis-retag: ${dryRun ? 'dry run on' : 'moving keys on'} ${new URL(config.REDIS_URL).host} under prefix ${JSON.stringify(config.REDIS_PREFIX)}`);
    const tallies = await retagRedis(redis, config.REDIS_PREFIX, { dryRun, log: (line) => console.log(line) });
    console.log(summary(tallies, dryRun));
    return 0;
  } finally {
    redis.disconnect();
  }
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err instanceof ConfigError ? err.message : `redis-retag failed: ${(err as Error).message}`);
      process.exit(err instanceof ConfigError ? EXIT_CONFIG : 1);
    },
  );
}
