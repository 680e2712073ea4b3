import { randomBytes } from 'node:crypto';
import type { ChainableCommander } from 'ioredis';
import { pipelineByOwner, type RedisClient } from '../../../kit/redis.js';
import type { ChatEvent } from '../events.js';
import { decodeEvent, encodeEvent } from '../mapping.js';
import type { Policy } from '../model.js';
import type { Admission, AdmitInput, ChatStore, HistoryLimits, HistoryRead, MuteRecord, StreamPosition } from '../ports.js';

/**
 * Chat's Redis layout (every key also carries REDIS_PREFIX). A room's keys carry the hash tag
 * {c:<room>} and a user's {u:<user>}, so on a Redis Cluster every script stays in one slot and
 * rooms and users spread over every primary:
 *
 *   {c:<room>}:m          hash, the room's stream: o last offset handed out, e epoch; never expires
 *   {c:<room>}:x          stream, the room's history: entry id "<offset>-0", fields d (RoomEvent
 *                         protobuf without its seq) and t (ms); capped at CHAT_HISTORY_SIZE
 *                         entries, expires CHAT_HISTORY_TTL_MS after the last append
 *   {c:<room>}:r          list, the room's last published chat events, newest first, each
 *                         "<offset>|<RoomEvent protobuf without its seq>"
 *   {c:<room>}:p          hash, the room's policy; never expires
 *   {c:<room>}:u:<user>   hash, a mute in the room; expires when the mute ends
 *   {u:<user>}:c:u        hash, a platform-wide mute (room 0); expires when the mute ends
 *   {u:<user>}:c:d:<cmid> dedupe of client_message_id: "<fingerprint>|<message id>", 10 minutes
 *   {u:<user>}:c:r        hash, the user's token bucket (t tokens, a last update in ms)
 *   {c:<room>}:s:<user>   slow-mode marker, expires when the user may speak again
 *   {c:<room>}:f:<hash>   the message a flood of this text merges into, for the merge window
 *   {c:<room>}:n:<id>     how many sends a merged message counts
 *   {c:<room>}:l          hash, n like total, t last flush (ms)
 *   {c:<room>}:rs         hash, last room version, status and texts seen (for notices), 30 days
 *   {c:<room>}:o          online count last announced, 30 days
 *   c:g:<order>           a gift barrage being published (claimed, seconds) or published (done, 1 day)
 *   c:w                   replica counter: a starting replica takes the next message-id worker
 *   c:ol                  the online announcer's turn
 */
const k = {
  meta: (room: string) => `{c:${room}}:m`,
  history: (room: string) => `{c:${room}}:x`,
  recent: (room: string) => `{c:${room}}:r`,
  online: (room: string) => `{c:${room}}:o`,
  onlineTurn: 'c:ol',
  policy: (room: string) => `{c:${room}}:p`,
  mute: (room: string, user: string) => (room === '0' ? `{u:${user}}:c:u` : `{c:${room}}:u:${user}`),
  dedupe: (user: string, cmid: string) => `{u:${user}}:c:d:${cmid}`,
  rate: (user: string) => `{u:${user}}:c:r`,
  slow: (room: string, user: string) => `{c:${room}}:s:${user}`,
  flood: (room: string, hash: string) => `{c:${room}}:f:${hash}`,
  mergeCount: (room: string, id: string) => `{c:${room}}:n:${id}`,
  mergeCountPrefix: (room: string) => `{c:${room}}:n:`,
  likes: (room: string) => `{c:${room}}:l`,
  barrage: (order: string) => `c:g:${order}`,
  roomStatus: (room: string) => `{c:${room}}:rs`,
  worker: 'c:w',
};

/** Raw chat events kept per room: updates of merged messages take slots too, so keep twice the limit. */
const RECENT_KEPT = 200;

/**
 * What SendMessage decides in Redis, in two atomic steps, one per owner (a Cluster keeps a script
 * in one slot). The user's step first: the retry check (a retry is answered before any limit), the
 * platform-wide mute and the token bucket; it takes a token and records the client_message_id
 * with the candidate id. ARGV: now, fingerprint, candidate id, burst, per second, dedupe ms.
 */
const ADMIT_USER = `
local now = tonumber(ARGV[1])
local d = redis.call('GET', KEYS[1])
if d then
  local sep = string.find(d, '|', 1, true)
  if string.sub(d, 1, sep - 1) == ARGV[2] then return {'dup', string.sub(d, sep + 1)} end
  return {'reused', ''}
end
local e = redis.call('HGET', KEYS[2], 'e')
if e and tonumber(e) > now then return {'muted', e} end
local burst = tonumber(ARGV[4])
local rate = tonumber(ARGV[5])
local b = redis.call('HMGET', KEYS[3], 't', 'a')
local tokens = burst
if b[1] then tokens = math.min(burst, tonumber(b[1]) + math.max(0, now - tonumber(b[2])) * rate / 1000) end
if tokens < 1 then return {'rate', tostring(math.ceil((1 - tokens) * 1000 / rate))} end
redis.call('HSET', KEYS[3], 't', tostring(tokens - 1), 'a', ARGV[1])
redis.call('PEXPIRE', KEYS[3], math.ceil(burst * 1000 / rate) + 1000)
redis.call('SET', KEYS[1], ARGV[2] .. '|' .. ARGV[3], 'PX', ARGV[6])
return {'ok', ''}`;

/**
 * Then the room's step: the room's mute and slow mode, then the flood merge. KEYS[4] is the room's
 * merge-count key prefix as ioredis prefixed it, so the script can reach the count of a message id
 * it only learns from the flood key. ARGV: now, candidate id, slow ms, merge ms. A new message then
 * takes its offset in APPEND.
 */
const ADMIT_ROOM = `
local now = tonumber(ARGV[1])
local e = redis.call('HGET', KEYS[1], 'e')
if e and tonumber(e) > now then return {'muted', e} end
local slow = tonumber(ARGV[3])
if slow > 0 then
  local left = redis.call('PTTL', KEYS[2])
  if left > 0 then return {'slow', tostring(left)} end
  redis.call('SET', KEYS[2], '1', 'PX', slow)
end
local id = redis.call('GET', KEYS[3])
if id then
  local n = redis.call('INCR', KEYS[4] .. id)
  return {'merged', id, tostring(n)}
end
id = ARGV[2]
local window = tonumber(ARGV[4])
if window > 0 then
  redis.call('SET', KEYS[3], id, 'PX', window)
  redis.call('SET', KEYS[4] .. id, '1', 'PX', window + 60000)
end
return {'new', id}`;

/**
 * A message the room refused consumes nothing: the token goes back (up to the burst) and the
 * client_message_id is forgotten, unless a later send already replaced its record.
 */
const ADMIT_UNDO = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
local t = redis.call('HGET', KEYS[2], 't')
if t then redis.call('HSET', KEYS[2], 't', tostring(math.min(tonumber(ARGV[2]), tonumber(t) + 1))) end
return 1`;

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
 * The start of every stream script (KEYS[1] meta, KEYS[2] history, KEYS[3] recent list, one room,
 * one slot; ARGV[1] an epoch to use if there is none): a room without a stream hash gets one, with
 * a new epoch, and whatever history and recent list survived the hash (evicted, lost in a
 * failover) go with it, so offsets restarting at 1 never meet an older history.
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
 * The room's step and, for a new message, its append (offset, history, recent list) in one call:
 * both touch only the room's keys (one slot), and a message admitted is a message appended, so a
 * published line costs two round trips (the user's step, then this), not three. KEYS 1-4 and
 * ARGV 1-4 are ADMIT_ROOM's; KEYS 5-7 and ARGV 5-10 are APPEND's. Answers ADMIT_ROOM's refusals,
 * or {'new', id, offset, epoch}.
 */
const ADMIT_ROOM_APPEND = `
local function admit(KEYS, ARGV)${ADMIT_ROOM}
end
local function append(KEYS, ARGV)${APPEND}
end
local r = admit({KEYS[1], KEYS[2], KEYS[3], KEYS[4]}, {ARGV[1], ARGV[2], ARGV[3], ARGV[4]})
if r[1] ~= 'new' then return r end
local a = append({KEYS[5], KEYS[6], KEYS[7]}, {ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]})
return {'new', r[2], a[1], a[2]}`;

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
 * An online count worth announcing: 1 when the count moved by at least ARGV[1] percent (and by at
 * least one) since the room's last announcement, else 0. The stored count is updated when
 * announced.
 */
const ONLINE_CHANGE = `
local pct = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local last = tonumber(redis.call('GET', KEYS[1]) or '-1')
if last < 0 or math.abs(n - last) >= math.max(1, last * pct / 100) then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', 2592000000)
  return 1
end
return 0`;

interface ChatScripts {
  chatAdmitUser(...args: string[]): Promise<string[]>;
  chatAdmitRoom(...args: string[]): Promise<string[]>;
  chatAdmitRoomAppend(...args: Array<string | Buffer>): Promise<Array<string | number>>;
  chatAdmitUndo(...args: string[]): Promise<number>;
  chatFlushLikes(...args: string[]): Promise<number>;
  chatSetPolicy(...args: string[]): Promise<string[]>;
  chatRoomChanged(...args: string[]): Promise<[number, number]>;
  chatAppend(...args: Array<string | Buffer>): Promise<[number, string]>;
  chatHistoryBuffer(...args: string[]): Promise<[number, Buffer, number, ...Buffer[]]>;
}
type ChatRedis = RedisClient & ChatScripts;
type ChatPipeline = ChainableCommander & {
  chatCloseMerge(...args: string[]): unknown;
  chatOnlineChange(...args: string[]): unknown;
  chatPosition(...args: string[]): unknown;
};

export type { Admission, AdmitInput, MuteRecord } from '../ports.js';

export class RedisChatStore implements ChatStore {
  private readonly redis: ChatRedis;

  constructor(redis: RedisClient) {
    if (!('chatAdmitUser' in redis)) {
      redis.defineCommand('chatAdmitUser', { numberOfKeys: 3, lua: ADMIT_USER });
      redis.defineCommand('chatAdmitRoom', { numberOfKeys: 4, lua: ADMIT_ROOM });
      redis.defineCommand('chatAdmitRoomAppend', { numberOfKeys: 7, lua: ADMIT_ROOM_APPEND });
      redis.defineCommand('chatAdmitUndo', { numberOfKeys: 2, lua: ADMIT_UNDO });
      redis.defineCommand('chatCloseMerge', { numberOfKeys: 1, lua: CLOSE_MERGE });
      redis.defineCommand('chatFlushLikes', { numberOfKeys: 1, lua: FLUSH_LIKES });
      redis.defineCommand('chatSetPolicy', { numberOfKeys: 1, lua: SET_POLICY });
      redis.defineCommand('chatRoomChanged', { numberOfKeys: 1, lua: ROOM_CHANGED });
      redis.defineCommand('chatOnlineChange', { numberOfKeys: 1, lua: ONLINE_CHANGE });
      redis.defineCommand('chatAppend', { numberOfKeys: 3, lua: APPEND });
      redis.defineCommand('chatHistory', { numberOfKeys: 3, lua: HISTORY });
      redis.defineCommand('chatPosition', { numberOfKeys: 3, lua: POSITION });
    }
    this.redis = redis as ChatRedis;
  }

  /**
   * The user's step, then the room's (see ADMIT_USER and ADMIT_ROOM). When the room refuses, the
   * user's step is undone; when the text merged into an earlier message, the retry record names
   * that message.
   */
  async admit(a: AdmitInput): Promise<Admission> {
    const dedupe = k.dedupe(a.userId, a.clientMessageId);
    const [userKind, ux = ''] = await this.redis.chatAdmitUser(
      dedupe, k.mute('0', a.userId), k.rate(a.userId),
      String(a.nowMs), a.fingerprint, a.candidateId, String(a.burst), String(a.perSecond), String(a.dedupeMs),
    );
    switch (userKind) {
      case 'ok': break;
      case 'dup': return { kind: 'duplicate', messageId: ux };
      case 'reused': return { kind: 'reused' };
      case 'muted': return { kind: 'muted', until: new Date(Number(ux)) };
      case 'rate': return { kind: 'rate_limited', retryAfterMs: Number(ux) };
      default: throw new Error(`unexpected admit answer ${String(userKind)}`);
    }
    const roomKeys = [k.mute(a.roomId, a.userId), k.slow(a.roomId, a.userId), k.flood(a.roomId, a.textHash), k.mergeCountPrefix(a.roomId)];
    const roomArgs = [String(a.nowMs), a.candidateId, String(a.slowModeMs), String(a.mergeWindowMs)];
    const undo = () => this.redis.chatAdmitUndo(dedupe, k.rate(a.userId), `${a.fingerprint}|${a.candidateId}`, String(a.burst));
    let answer: Array<string | number>;
    try {
      answer = a.append
        ? await this.redis.chatAdmitRoomAppend(...roomKeys, k.meta(a.roomId), k.history(a.roomId), k.recent(a.roomId), ...roomArgs, ...appendArgs(a.append.event, a.append.limits, a.nowMs))
        : await this.redis.chatAdmitRoom(...roomKeys, ...roomArgs);
    } catch (err) {
      // The room's step failed, or its answer was lost: give the user's step back, so the client's
      // retry is admitted afresh instead of answered `duplicate` for a line nobody saw (when only
      // the answer was lost, the retry shows the line twice: the lesser harm for chat).
      await undo().catch(() => undefined);
      throw err;
    }
    const [kind, x = '', y = ''] = answer.map(String);
    if (kind === 'muted' || kind === 'slow') await undo();
    switch (kind) {
      case 'muted': return { kind: 'muted', until: new Date(Number(x)) };
      case 'slow': return { kind: 'slow_mode', retryAfterMs: Number(x) };
      case 'merged':
        await this.redis.set(dedupe, `${a.fingerprint}|${x}`, 'PX', a.dedupeMs, 'XX');
        return { kind: 'merged', messageId: x, count: Number(y) };
      case 'new': return { kind: 'new', messageId: x, position: a.append ? { offset: String(answer[2]), epoch: String(answer[3]) } : undefined };
      default: throw new Error(`unexpected admit answer ${String(kind)}`);
    }
  }

  /** Closes merge windows, in one pipeline (one per room on a Cluster): for each message, the merged count, or undefined when nothing merged into it. */
  async closeMerges(open: Array<{ roomId: string; messageId: string }>): Promise<Array<number | undefined>> {
    const results = await pipelineByOwner(this.redis, open, (o) => k.meta(o.roomId), (p, o) => (p as ChatPipeline).chatCloseMerge(k.mergeCount(o.roomId, o.messageId)));
    return results.map(([err, res]) => {
      if (err) throw err;
      const count = res as number;
      return count > 1 ? count : undefined;
    });
  }

  async append(event: ChatEvent, limits: HistoryLimits, nowMs: number): Promise<StreamPosition> {
    const room = event.roomId;
    const [offset, epoch] = await this.redis.chatAppend(k.meta(room), k.history(room), k.recent(room), ...appendArgs(event, limits, nowMs));
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

  /** Kept chat events, oldest first, with their offsets (the caller collapses updates of one message), read atomically with the position (one slot). */
  async recent(roomId: string): Promise<{ events: ChatEvent[]; position: StreamPosition }> {
    const m = this.redis.multi() as ChatPipeline;
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

  /** Which of these counts moved enough to announce (one pipeline, one per room on a Cluster). */
  async onlineChanges(counts: Array<{ roomId: string; online: number }>, minChangePct: number): Promise<boolean[]> {
    const results = await pipelineByOwner(this.redis, counts, (c) => k.online(c.roomId), (p, c) =>
      (p as ChatPipeline).chatOnlineChange(k.online(c.roomId), String(minChangePct), String(c.online)),
    );
    return results.map(([err, moved]) => {
      if (err) throw err;
      return moved === 1;
    });
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

/** APPEND's arguments: an epoch in case the room has none, the event without its seq, the time, the history's size, whether it is chat (kept in the recent list), the history's TTL. */
const appendArgs = (event: ChatEvent, limits: HistoryLimits, nowMs: number): Array<string | Buffer> => [
  newEpoch(),
  Buffer.from(withoutSeq(event)),
  String(nowMs),
  String(limits.size),
  'chat' in event.payload ? '1' : '0',
  String(limits.ttlMs),
];
