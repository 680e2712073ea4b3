import type { Redis } from 'ioredis';
import type { ChatEvent } from '../events.js';
import { decodeEvent, encodeEvent } from '../mapping.js';
import type { Policy } from '../model.js';
import type { Admission, AdmitInput, ChatStore, MuteRecord } from '../ports.js';

/**
 * Chat's Redis layout (every key also carries REDIS_PREFIX):
 *
 *   c:q:<room>          per-room event sequence (INCR)
 *   c:h:<room>          list, the room's last published chat events, newest first, each
 *                       "<seq>|<RoomEvent protobuf without its seq>" (the script assigns the seq)
 *   c:p:<room>          hash, the room's policy; never expires
 *   c:u:<room>:<user>   hash, a mute (room 0: platform-wide); expires when the mute ends
 *   c:d:<user>:<cmid>   dedupe of client_message_id: "<fingerprint>|<message id>", 10 minutes
 *   c:r:<user>          hash, the user's token bucket (t tokens, a last update in ms)
 *   c:s:<room>:<user>   slow-mode marker, expires when the user may speak again
 *   c:f:<room>:<hash>   the message a flood of this text merges into, for the merge window
 *   c:n:<message id>    how many sends a merged message counts
 *   c:l:<room>          hash, n like total, t last flush (ms)
 *   c:g:<order>         a gift barrage being published (claimed, seconds) or published (done, 1 day)
 *   c:rs:<room>         hash, last room version and status seen (for live notices), 30 days
 *   c:w                 replica counter: a starting replica takes the next message-id worker
 *   c:o                 hash, room → online count last announced; c:ol the announcer's turn
 */
const k = {
  seq: (room: string) => `c:q:${room}`,
  seqPrefix: 'c:q:',
  online: 'c:o',
  onlineTurn: 'c:ol',
  recent: (room: string) => `c:h:${room}`,
  policy: (room: string) => `c:p:${room}`,
  mute: (room: string, user: string) => `c:u:${room}:${user}`,
  dedupe: (user: string, cmid: string) => `c:d:${user}:${cmid}`,
  rate: (user: string) => `c:r:${user}`,
  slow: (room: string, user: string) => `c:s:${room}:${user}`,
  flood: (room: string, hash: string) => `c:f:${room}:${hash}`,
  mergeCount: (id: string) => `c:n:${id}`,
  mergeCountPrefix: 'c:n:',
  likes: (room: string) => `c:l:${room}`,
  barrage: (order: string) => `c:g:${order}`,
  roomStatus: (room: string) => `c:rs:${room}`,
  worker: 'c:w',
};

/** Raw chat events kept per room: updates of merged messages take slots too, so keep twice the limit. */
const RECENT_KEPT = 200;

/**
 * Everything SendMessage decides in Redis, in one round trip and atomically: the retry check,
 * mutes, the token bucket, slow mode, then the flood merge, the event sequence and, for a new
 * message, its place in the recent list (ARGV[9] is the event, encoded without its seq). A
 * refused message consumes nothing; a retry (same client_message_id) is answered before any
 * limit. KEYS[8] is the merge-count key prefix as ioredis prefixed it, so the script can reach
 * the count of a message id it only learns from the flood key.
 */
const ADMIT = `
local now = tonumber(ARGV[1])
local d = redis.call('GET', KEYS[1])
if d then
  local sep = string.find(d, '|', 1, true)
  if string.sub(d, 1, sep - 1) == ARGV[2] then return {'dup', string.sub(d, sep + 1)} end
  return {'reused', ''}
end
for i = 2, 3 do
  local e = redis.call('HGET', KEYS[i], 'e')
  if e and tonumber(e) > now then return {'muted', e} end
end
local burst = tonumber(ARGV[4])
local rate = tonumber(ARGV[5])
local b = redis.call('HMGET', KEYS[4], 't', 'a')
local tokens = burst
if b[1] then tokens = math.min(burst, tonumber(b[1]) + math.max(0, now - tonumber(b[2])) * rate / 1000) end
if tokens < 1 then return {'rate', tostring(math.ceil((1 - tokens) * 1000 / rate))} end
local slow = tonumber(ARGV[6])
if slow > 0 then
  local left = redis.call('PTTL', KEYS[5])
  if left > 0 then return {'slow', tostring(left)} end
end
redis.call('HSET', KEYS[4], 't', tostring(tokens - 1), 'a', ARGV[1])
redis.call('PEXPIRE', KEYS[4], math.ceil(burst * 1000 / rate) + 1000)
if slow > 0 then redis.call('SET', KEYS[5], '1', 'PX', slow) end
local id = redis.call('GET', KEYS[6])
if id then
  local n = redis.call('INCR', KEYS[8] .. id)
  redis.call('SET', KEYS[1], ARGV[2] .. '|' .. id, 'PX', ARGV[8])
  return {'merged', id, tostring(n)}
end
id = ARGV[3]
local window = tonumber(ARGV[7])
if window > 0 then
  redis.call('SET', KEYS[6], id, 'PX', window)
  redis.call('SET', KEYS[8] .. id, '1', 'PX', window + 60000)
end
redis.call('SET', KEYS[1], ARGV[2] .. '|' .. id, 'PX', ARGV[8])
local seq = redis.call('INCR', KEYS[7])
redis.call('LPUSH', KEYS[9], seq .. '|' .. ARGV[9])
redis.call('LTRIM', KEYS[9], 0, ${RECENT_KEPT - 1})
return {'new', id, tostring(seq)}`;

/** Closes a merge window: the final count (and a sequence number for the update) if anything merged. */
const CLOSE_MERGE = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
redis.call('DEL', KEYS[1])
if n < 2 then return {0, 0} end
return {n, redis.call('INCR', KEYS[2])}`;

const FLUSH_LIKES = `
local total = redis.call('HINCRBY', KEYS[1], 'n', ARGV[1])
redis.call('HSET', KEYS[1], 't', ARGV[2])
return {total, redis.call('INCR', KEYS[2])}`;

/** Optimistic-locked policy write; answers the stored policy as a flat hash. */
const SET_POLICY = `
local v = redis.call('HGET', KEYS[1], 'v') or '0'
if ARGV[1] ~= '0' and ARGV[1] ~= v then return {'conflict', v} end
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'ut', ARGV[2], 'ub', ARGV[3])
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, 'ok')
return out`;

/**
 * Records a room version's status; returns a sequence number when the status changed (a notice is
 * due), else 0. Every replica hears every change; only the first to record it announces.
 */
const ROOM_STATUS = `
local cur = redis.call('HMGET', KEYS[1], 'v', 's')
if cur[1] and tonumber(cur[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 's', ARGV[2])
redis.call('PEXPIRE', KEYS[1], 2592000000)
if cur[2] == ARGV[2] then return 0 end
if not cur[2] and ARGV[2] ~= 'live' then return 0 end
return redis.call('INCR', KEYS[2])`;

/**
 * Online counts worth announcing: for each (room, count) pair in ARGV, a sequence number when the
 * count moved by at least ARGV[1] percent (and by at least one) since the last announcement,
 * else 0. The stored counts are updated for the rooms announced.
 */
const ONLINE_CHANGES = `
local pct = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 2 do
  local room, n = ARGV[i], tonumber(ARGV[i + 1])
  local last = tonumber(redis.call('HGET', KEYS[1], room) or '-1')
  local seq = 0
  if last < 0 or math.abs(n - last) >= math.max(1, last * pct / 100) then
    redis.call('HSET', KEYS[1], room, n)
    seq = redis.call('INCR', KEYS[2] .. room)
  end
  table.insert(out, seq)
end
return out`;

interface ChatScripts {
  chatOnlineChanges(...args: string[]): Promise<number[]>;
  chatAdmit(...args: Array<string | Buffer>): Promise<string[]>;
  chatFlushLikes(...args: string[]): Promise<[number, number]>;
  chatSetPolicy(...args: string[]): Promise<string[]>;
  chatRoomStatus(...args: string[]): Promise<number>;
}
type ChatRedis = Redis & ChatScripts;

export type { Admission, AdmitInput, MuteRecord } from '../ports.js';

export class RedisChatStore implements ChatStore {
  private readonly redis: ChatRedis;

  constructor(redis: Redis) {
    if (!('chatAdmit' in redis)) {
      redis.defineCommand('chatAdmit', { numberOfKeys: 9, lua: ADMIT });
      redis.defineCommand('chatCloseMerge', { numberOfKeys: 2, lua: CLOSE_MERGE });
      redis.defineCommand('chatFlushLikes', { numberOfKeys: 2, lua: FLUSH_LIKES });
      redis.defineCommand('chatSetPolicy', { numberOfKeys: 1, lua: SET_POLICY });
      redis.defineCommand('chatRoomStatus', { numberOfKeys: 2, lua: ROOM_STATUS });
      redis.defineCommand('chatOnlineChanges', { numberOfKeys: 2, lua: ONLINE_CHANGES });
    }
    this.redis = redis as ChatRedis;
  }

  async admit(a: AdmitInput): Promise<Admission> {
    const [kind, x = '', y = ''] = await this.redis.chatAdmit(
      k.dedupe(a.userId, a.clientMessageId), k.mute(a.roomId, a.userId), k.mute('0', a.userId), k.rate(a.userId),
      k.slow(a.roomId, a.userId), k.flood(a.roomId, a.textHash), k.seq(a.roomId), k.mergeCountPrefix, k.recent(a.roomId),
      String(a.nowMs), a.fingerprint, a.candidateId, String(a.burst), String(a.perSecond), String(a.slowModeMs), String(a.mergeWindowMs), String(a.dedupeMs),
      Buffer.from(withoutSeq(a.event)),
    );
    switch (kind) {
      case 'dup': return { kind: 'duplicate', messageId: x };
      case 'reused': return { kind: 'reused' };
      case 'muted': return { kind: 'muted', until: new Date(Number(x)) };
      case 'rate': return { kind: 'rate_limited', retryAfterMs: Number(x) };
      case 'slow': return { kind: 'slow_mode', retryAfterMs: Number(x) };
      case 'merged': return { kind: 'merged', messageId: x, count: Number(y) };
      case 'new': return { kind: 'new', messageId: x, seq: y };
      default: throw new Error(`unexpected admit answer ${String(kind)}`);
    }
  }

  /**
   * Closes merge windows, in one pipeline: for each message, the merged count and a sequence
   * number for its update, or undefined when nothing merged into it.
   */
  async closeMerges(open: Array<{ roomId: string; messageId: string }>): Promise<Array<{ count: number; seq: string } | undefined>> {
    const p = this.redis.pipeline() as ReturnType<Redis['pipeline']> & { chatCloseMerge(...args: string[]): unknown };
    for (const o of open) p.chatCloseMerge(k.mergeCount(o.messageId), k.seq(o.roomId));
    const results = (await p.exec()) ?? [];
    return results.map(([err, res]) => {
      if (err) throw err;
      const [count, seq] = res as [number, number];
      return count > 1 ? { count, seq: String(seq) } : undefined;
    });
  }

  nextSeq(roomId: string): Promise<number> {
    return this.redis.incr(k.seq(roomId));
  }

  /** Keeps a published chat event (encoded without its seq, which prefixes the entry) for ListRecentMessages. */
  async remember(roomId: string, seq: string, event: ChatEvent): Promise<void> {
    const entry = Buffer.concat([Buffer.from(`${seq}|`), withoutSeq(event)]);
    await this.redis.pipeline().lpush(k.recent(roomId), entry).ltrim(k.recent(roomId), 0, RECENT_KEPT - 1).exec().then(throwFirst);
  }

  /** Kept chat events, oldest first, with their seq (the caller collapses updates of one message). */
  async recent(roomId: string): Promise<ChatEvent[]> {
    const raw = await this.redis.lrangeBuffer(k.recent(roomId), 0, RECENT_KEPT - 1);
    return raw.reverse().flatMap((entry) => {
      const bar = entry.indexOf(0x7c);
      const event = decodeEvent(entry.subarray(bar + 1));
      return event ? [{ ...event, seq: entry.subarray(0, bar).toString() }] : [];
    });
  }

  async flushLikes(roomId: string, count: number, nowMs: number): Promise<{ total: string; seq: string }> {
    const [total, seq] = await this.redis.chatFlushLikes(k.likes(roomId), k.seq(roomId), String(count), String(nowMs));
    return { total: String(total), seq: String(seq) };
  }

  async likes(roomId: string): Promise<{ total: string; at: Date | undefined }> {
    const [n, t] = await this.redis.hmget(k.likes(roomId), 'n', 't');
    return { total: n ?? '0', at: t ? new Date(Number(t)) : undefined };
  }

  async policy(roomId: string): Promise<Policy | undefined> {
    const h = await this.redis.hgetall(k.policy(roomId));
    return h.v === undefined ? undefined : policyFrom(roomId, h);
  }

  /** Writes the given policy fields unless the version moved; 'conflict' carries the current version. */
  async setPolicy(
    roomId: string,
    fields: Partial<Pick<Policy, 'minLevel' | 'slowModeMs' | 'chatClosed'>>,
    expectedVersion: string,
    by: string,
    nowMs: number,
  ): Promise<{ ok: true; policy: Policy } | { ok: false; version: string }> {
    const pairs: string[] = [];
    if (fields.minLevel !== undefined) pairs.push('ml', String(fields.minLevel));
    if (fields.slowModeMs !== undefined) pairs.push('sm', String(fields.slowModeMs));
    if (fields.chatClosed !== undefined) pairs.push('cc', fields.chatClosed ? '1' : '0');
    const [status, ...rest] = await this.redis.chatSetPolicy(k.policy(roomId), expectedVersion, String(nowMs), by, ...pairs);
    if (status === 'conflict') return { ok: false, version: rest[0] ?? '0' };
    const h: Record<string, string> = {};
    for (let i = 0; i + 1 < rest.length; i += 2) h[rest[i] ?? ''] = rest[i + 1] ?? '';
    return { ok: true, policy: policyFrom(roomId, h) };
  }

  async mute(roomId: string, userId: string, m: MuteRecord): Promise<void> {
    const key = k.mute(roomId, userId);
    await this.redis.multi().del(key).hset(key, 'e', String(m.endMs), 'b', m.by, 'r', m.reason).pexpireat(key, m.endMs).exec().then(throwFirst);
  }

  async unmute(roomId: string, userId: string): Promise<void> {
    await this.redis.del(k.mute(roomId, userId));
  }

  /**
   * Claims a gift order's barrage for this replica: 'claimed' (publish it), 'done' (published
   * before) or 'busy' (another replica holds the claim; if it dies, the claim lapses in
   * `claimMs` and a redelivery takes it over).
   */
  async claimBarrage(orderId: string, claimMs: number): Promise<'claimed' | 'done' | 'busy'> {
    if ((await this.redis.set(k.barrage(orderId), 'claimed', 'PX', claimMs, 'NX')) === 'OK') return 'claimed';
    return (await this.redis.get(k.barrage(orderId))) === 'done' ? 'done' : 'busy';
  }

  /** Marks the barrage published, after the publish: a crash in between shows it twice, never zero times. */
  async markBarrage(orderId: string): Promise<void> {
    await this.redis.set(k.barrage(orderId), 'done', 'PX', 24 * 3600_000);
  }

  /** Sequence number for a live-started/stopped notice, or undefined when no notice is due. */
  async roomStatusChanged(roomId: string, version: string, status: 'live' | 'offline'): Promise<string | undefined> {
    const seq = await this.redis.chatRoomStatus(k.roomStatus(roomId), k.seq(roomId), version, status);
    return seq === 0 ? undefined : String(seq);
  }

  /** True for the one replica whose turn it is to announce online counts, for `ms`. */
  async takeOnlineTurn(ms: number): Promise<boolean> {
    return (await this.redis.set(k.onlineTurn, '1', 'PX', ms, 'NX')) === 'OK';
  }

  /** Which of these counts moved enough to announce: a sequence number for each one that did. */
  async onlineChanges(counts: Array<{ roomId: string; online: number }>, minChangePct: number): Promise<Array<string | undefined>> {
    if (counts.length === 0) return [];
    const seqs = await this.redis.chatOnlineChanges(k.online, k.seqPrefix, String(minChangePct), ...counts.flatMap((c) => [c.roomId, String(c.online)]));
    return seqs.map((seq) => (seq === 0 ? undefined : String(seq)));
  }

  /** A worker number for message ids, distinct among the last 1024 replicas started. */
  async takeWorkerId(): Promise<number> {
    return (await this.redis.incr(k.worker)) % 1024;
  }
}

function policyFrom(roomId: string, h: Record<string, string>): Policy {
  return {
    roomId,
    minLevel: Number(h.ml ?? 0),
    slowModeMs: Number(h.sm ?? 0),
    chatClosed: h.cc === '1',
    version: h.v ?? '0',
    updatedAt: h.ut ? new Date(Number(h.ut)) : undefined,
    updatedBy: h.ub ?? '0',
  };
}

function throwFirst(results: Array<[Error | null, unknown]> | null): void {
  for (const [err] of results ?? []) if (err) throw err;
}

/** The list keeps the seq in front of the bytes (the admit script assigns it after encoding), so the encoded event leaves it out. */
const withoutSeq = (event: ChatEvent): Uint8Array => encodeEvent(event.seq === '0' ? event : { ...event, seq: '0' });
