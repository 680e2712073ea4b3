import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { ChatEvent } from '../events.js';
import { decodeEvent, encodeEvent } from '../mapping.js';
import type { Policy } from '../model.js';
import type { Admission, AdmitInput, ChatStore, HistoryLimits, HistoryRead, MuteRecord, StreamPosition } from '../ports.js';

/**
 * Chat's Redis layout (every key also carries REDIS_PREFIX):
 *
 *   {c:<room>}:m        hash, the room's stream: o last offset handed out, e epoch; never expires
 *   {c:<room>}:x        stream, the room's history: entry id "<offset>-0", fields d (RoomEvent
 *                       protobuf without its seq) and t (ms); capped at CHAT_HISTORY_SIZE entries,
 *                       expires CHAT_HISTORY_TTL_MS after the last append
 *   {c:<room>}:r        list, the room's last published chat events, newest first, each
 *                       "<offset>|<RoomEvent protobuf without its seq>"
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
  // A room's stream keys share the hash tag {c:<room>}: the scripts that touch them stay in one cluster slot.
  meta: (room: string) => `{c:${room}}:m`,
  history: (room: string) => `{c:${room}}:x`,
  recent: (room: string) => `{c:${room}}:r`,
  online: 'c:o',
  onlineTurn: 'c:ol',
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
 * mutes, the token bucket, slow mode, then the flood merge. A refused message consumes nothing; a
 * retry (same client_message_id) is answered before any limit. KEYS[7] is the merge-count key
 * prefix as ioredis prefixed it, so the script can reach the count of a message id it only learns
 * from the flood key. A new message then takes its offset in APPEND.
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
  local n = redis.call('INCR', KEYS[7] .. id)
  redis.call('SET', KEYS[1], ARGV[2] .. '|' .. id, 'PX', ARGV[8])
  return {'merged', id, tostring(n)}
end
id = ARGV[3]
local window = tonumber(ARGV[7])
if window > 0 then
  redis.call('SET', KEYS[6], id, 'PX', window)
  redis.call('SET', KEYS[7] .. id, '1', 'PX', window + 60000)
end
redis.call('SET', KEYS[1], ARGV[2] .. '|' .. id, 'PX', ARGV[8])
return {'new', id}`;

/** Closes a merge window: the final count, 0 when nothing merged. */
const CLOSE_MERGE = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
redis.call('DEL', KEYS[1])
if n < 2 then return 0 end
return n`;

const FLUSH_LIKES = `
local total = redis.call('HINCRBY', KEYS[1], 'n', ARGV[1])
redis.call('HSET', KEYS[1], 't', ARGV[2])
return total`;

/**
 * The start of every stream script (KEYS[1] meta, KEYS[2] history, KEYS[3] recent list; ARGV[1]
 * an epoch to use if there is none): a room without a stream hash gets one, with a new epoch, and
 * whatever history and recent list survived the hash (evicted, lost in a failover) go with it, so
 * offsets restarting at 1 never meet an older history.
 */
const ENSURE_EPOCH = `
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)
end`;

/**
 * Appends an event to its room's stream: the next offset, the event in the capped history (whose
 * TTL restarts) and, for chat (ARGV[5] = '1'), in the recent list. ARGV[2] is the event without
 * its seq, ARGV[3] the time, ARGV[4] the history size, ARGV[6] its TTL. Answers {offset, epoch}.
 */
const APPEND = `${ENSURE_EPOCH}
local o = redis.call('HINCRBY', KEYS[1], 'o', 1)
local id = string.format('%d-0', o)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], id, 'd', ARGV[2], 't', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
if ARGV[5] == '1' then
  redis.call('LPUSH', KEYS[3], string.format('%d|', o) .. ARGV[2])
  redis.call('LTRIM', KEYS[3], 0, ${RECENT_KEPT - 1})
end
return {o, epoch}`;

/**
 * The events after offset ARGV[2], if the history holds every one of them (at most ARGV[3]) and
 * the oldest is younger than ARGV[5] ms at time ARGV[4]. Answers {top offset, epoch, 1 and the
 * events' bytes in order} or {top offset, epoch, 0}.
 */
const HISTORY = `${ENSURE_EPOCH}
local top = tonumber(redis.call('HGET', KEYS[1], 'o'))
local after = tonumber(ARGV[2])
if after == top then return {top, epoch, 1} end
local missed = top - after
if missed < 0 or missed > tonumber(ARGV[3]) then return {top, epoch, 0} end
local entries = redis.call('XRANGE', KEYS[2], string.format('%d-0', after + 1), '+', 'COUNT', missed)
if #entries ~= missed or entries[1][1] ~= string.format('%d-0', after + 1) then return {top, epoch, 0} end
if tonumber(ARGV[4]) - tonumber(entries[1][2][4]) > tonumber(ARGV[5]) then return {top, epoch, 0} end
local out = {top, epoch, 1}
for _, entry in ipairs(entries) do table.insert(out, entry[2][2]) end
return out`;

/** The room's stream position, {offset, epoch}. */
const POSITION = `${ENSURE_EPOCH}
return {tonumber(redis.call('HGET', KEYS[1], 'o')), epoch}`;

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
 * Records a room version's status and title/notice fingerprint (ARGV[3]); answers {status
 * changed, texts changed} as 1/0. Every replica hears every change; only the first to record a
 * version sees it as a change. A room seen for the first time announces going live, not its texts.
 */
const ROOM_CHANGED = `
local cur = redis.call('HMGET', KEYS[1], 'v', 's', 'h')
if cur[1] and tonumber(cur[1]) >= tonumber(ARGV[1]) then return {0, 0} end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 's', ARGV[2], 'h', ARGV[3])
redis.call('PEXPIRE', KEYS[1], 2592000000)
local status = 1
if cur[2] == ARGV[2] or (not cur[2] and ARGV[2] ~= 'live') then status = 0 end
local edit = 0
if cur[3] and cur[3] ~= ARGV[3] then edit = 1 end
return {status, edit}`;

/**
 * Online counts worth announcing: for each (room, count) pair in ARGV, 1 when the count moved by
 * at least ARGV[1] percent (and by at least one) since the last announcement, else 0. The stored
 * counts are updated for the rooms announced.
 */
const ONLINE_CHANGES = `
local pct = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV, 2 do
  local room, n = ARGV[i], tonumber(ARGV[i + 1])
  local last = tonumber(redis.call('HGET', KEYS[1], room) or '-1')
  local moved = 0
  if last < 0 or math.abs(n - last) >= math.max(1, last * pct / 100) then
    redis.call('HSET', KEYS[1], room, n)
    moved = 1
  end
  table.insert(out, moved)
end
return out`;

interface ChatScripts {
  chatOnlineChanges(...args: string[]): Promise<number[]>;
  chatAdmit(...args: Array<string | Buffer>): Promise<string[]>;
  chatFlushLikes(...args: string[]): Promise<number>;
  chatSetPolicy(...args: string[]): Promise<string[]>;
  chatRoomChanged(...args: string[]): Promise<[number, number]>;
  chatAppend(...args: Array<string | Buffer>): Promise<[number, string]>;
  chatHistoryBuffer(...args: string[]): Promise<[number, Buffer, number, ...Buffer[]]>;
  chatPosition(...args: string[]): Promise<[number, string]>;
}
type ChatRedis = Redis & ChatScripts;

export type { Admission, AdmitInput, MuteRecord } from '../ports.js';

export class RedisChatStore implements ChatStore {
  private readonly redis: ChatRedis;

  constructor(redis: Redis) {
    if (!('chatAdmit' in redis)) {
      redis.defineCommand('chatAdmit', { numberOfKeys: 7, lua: ADMIT });
      redis.defineCommand('chatCloseMerge', { numberOfKeys: 1, lua: CLOSE_MERGE });
      redis.defineCommand('chatFlushLikes', { numberOfKeys: 1, lua: FLUSH_LIKES });
      redis.defineCommand('chatSetPolicy', { numberOfKeys: 1, lua: SET_POLICY });
      redis.defineCommand('chatRoomChanged', { numberOfKeys: 1, lua: ROOM_CHANGED });
      redis.defineCommand('chatOnlineChanges', { numberOfKeys: 1, lua: ONLINE_CHANGES });
      redis.defineCommand('chatAppend', { numberOfKeys: 3, lua: APPEND });
      redis.defineCommand('chatHistory', { numberOfKeys: 3, lua: HISTORY });
      redis.defineCommand('chatPosition', { numberOfKeys: 3, lua: POSITION });
    }
    this.redis = redis as ChatRedis;
  }

  async admit(a: AdmitInput): Promise<Admission> {
    const [kind, x = '', y = ''] = await this.redis.chatAdmit(
      k.dedupe(a.userId, a.clientMessageId), k.mute(a.roomId, a.userId), k.mute('0', a.userId), k.rate(a.userId),
      k.slow(a.roomId, a.userId), k.flood(a.roomId, a.textHash), k.mergeCountPrefix,
      String(a.nowMs), a.fingerprint, a.candidateId, String(a.burst), String(a.perSecond), String(a.slowModeMs), String(a.mergeWindowMs), String(a.dedupeMs),
    );
    switch (kind) {
      case 'dup': return { kind: 'duplicate', messageId: x };
      case 'reused': return { kind: 'reused' };
      case 'muted': return { kind: 'muted', until: new Date(Number(x)) };
      case 'rate': return { kind: 'rate_limited', retryAfterMs: Number(x) };
      case 'slow': return { kind: 'slow_mode', retryAfterMs: Number(x) };
      case 'merged': return { kind: 'merged', messageId: x, count: Number(y) };
      case 'new': return { kind: 'new', messageId: x };
      default: throw new Error(`unexpected admit answer ${String(kind)}`);
    }
  }

  /** Closes merge windows, in one pipeline: for each message, the merged count, or undefined when nothing merged into it. */
  async closeMerges(open: Array<{ roomId: string; messageId: string }>): Promise<Array<number | undefined>> {
    const p = this.redis.pipeline() as ReturnType<Redis['pipeline']> & { chatCloseMerge(...args: string[]): unknown };
    for (const o of open) p.chatCloseMerge(k.mergeCount(o.messageId));
    const results = (await p.exec()) ?? [];
    return results.map(([err, res]) => {
      if (err) throw err;
      const count = res as number;
      return count > 1 ? count : undefined;
    });
  }

  async append(event: ChatEvent, limits: HistoryLimits, nowMs: number): Promise<StreamPosition> {
    const room = event.roomId;
    const [offset, epoch] = await this.redis.chatAppend(
      k.meta(room), k.history(room), k.recent(room),
      newEpoch(), Buffer.from(withoutSeq(event)), String(nowMs), String(limits.size), 'chat' in event.payload ? '1' : '0', String(limits.ttlMs),
    );
    return { offset: String(offset), epoch };
  }

  async history(roomId: string, afterOffset: string, limit: number, limits: HistoryLimits, nowMs: number): Promise<HistoryRead> {
    const [top, epoch, covered, ...entries] = await this.redis.chatHistoryBuffer(
      k.meta(roomId), k.history(roomId), k.recent(roomId),
      newEpoch(), afterOffset, String(limit), String(nowMs), String(limits.ttlMs),
    );
    const position = { offset: String(top), epoch: epoch.toString() };
    if (covered !== 1) return { position, covered: false, events: [] };
    const first = BigInt(afterOffset) + 1n;
    const events = entries.flatMap((bytes, i) => {
      const event = decodeEvent(bytes);
      // An event this version cannot represent still takes its offset: it is skipped, not renumbered.
      return event ? [{ ...event, seq: String(first + BigInt(i)) }] : [];
    });
    return { position, covered: true, events };
  }

  /** Kept chat events, oldest first, with their offsets (the caller collapses updates of one message), read atomically with the position. */
  async recent(roomId: string): Promise<{ events: ChatEvent[]; position: StreamPosition }> {
    const m = this.redis.multi() as ReturnType<Redis['multi']> & { chatPosition(...args: string[]): unknown };
    m.lrangeBuffer(k.recent(roomId), 0, RECENT_KEPT - 1);
    m.chatPosition(k.meta(roomId), k.history(roomId), k.recent(roomId), newEpoch());
    const results = (await m.exec()) ?? [];
    throwFirst(results);
    const raw = (results[0]?.[1] ?? []) as Buffer[];
    const [offset, epoch] = (results[1]?.[1] ?? [0, '']) as [number, string];
    const events = raw.reverse().flatMap((entry) => {
      const bar = entry.indexOf(0x7c);
      const event = decodeEvent(entry.subarray(bar + 1));
      return event ? [{ ...event, seq: entry.subarray(0, bar).toString() }] : [];
    });
    return { events, position: { offset: String(offset), epoch } };
  }

  async flushLikes(roomId: string, count: number, nowMs: number): Promise<string> {
    return String(await this.redis.chatFlushLikes(k.likes(roomId), String(count), String(nowMs)));
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

  async roomChanged(roomId: string, version: string, status: 'live' | 'offline', editHash: string): Promise<{ status: boolean; edit: boolean }> {
    const [s, e] = await this.redis.chatRoomChanged(k.roomStatus(roomId), version, status, editHash);
    return { status: s === 1, edit: e === 1 };
  }

  /** True for the one replica whose turn it is to announce online counts, for `ms`. */
  async takeOnlineTurn(ms: number): Promise<boolean> {
    return (await this.redis.set(k.onlineTurn, '1', 'PX', ms, 'NX')) === 'OK';
  }

  /** Which of these counts moved enough to announce. */
  async onlineChanges(counts: Array<{ roomId: string; online: number }>, minChangePct: number): Promise<boolean[]> {
    if (counts.length === 0) return [];
    const moved = await this.redis.chatOnlineChanges(k.online, String(minChangePct), ...counts.flatMap((c) => [c.roomId, String(c.online)]));
    return moved.map((m) => m === 1);
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

/** A fresh epoch, used only by the script that finds a room without one: 16 hex digits. */
const newEpoch = (): string => randomBytes(8).toString('hex');

/** History and recent list keep the offset beside the bytes (the append script assigns it after encoding), so the encoded event leaves it out. */
const withoutSeq = (event: ChatEvent): Uint8Array => encodeEvent(event.seq === '0' ? event : { ...event, seq: '0' });
