import { createHash } from 'node:crypto';
import { idempotencyKeyReused, invalidField, Violations } from '../../kit/domain-error.js';
import { isPositiveInt64, requireCaller, type Caller } from '../../kit/identity.js';
import { chatClosed, levelTooLow, muted, rateLimited, slowMode } from './errors.js';
import type { ChatEvent, ChatLine, MessageIds } from './events.js';
import type { CachedLevels } from './levels.js';
import { checkMessage, checkRoomId, isRoomManager, LIMITS } from './model.js';
import type { Policies } from './policies.js';
import type { RoomDirectory } from './rooms.js';
import type { ChatStore, StreamPosition } from './ports.js';
import type { RoomPublisher } from './stream.js';

export interface MessageSettings {
  /** Token bucket per user, across rooms: this many messages at once… */
  rateBurst: number;
  /** …refilled at this many per second. */
  ratePerSecond: number;
  /** Identical texts in one room within this window become one message; 0 turns merging off. */
  mergeWindowMs: number;
  /** How long a client_message_id is remembered for retries. */
  dedupeMs: number;
}

export type SendOutcome = 'published' | 'merged' | 'duplicate';

export interface Sent {
  messageId: string;
  outcome: SendOutcome;
  /** The published message's offset and time; only for 'published'. */
  seq: string | undefined;
  sentAt: Date | undefined;
}

export interface SendInput {
  roomId: string;
  text: string;
  clientMessageId: string;
  senderName: string;
}

interface OpenWindow {
  dueAt: number;
  roomId: string;
  message: ChatLine;
}

/** How often ended merge windows are closed, and how long after its end a window is closed, so a send merged in its last millisecond is counted. */
const SWEEP_MS = 100;
const MERGE_GRACE_MS = 100;

const hash = (s: string) => createHash('sha1').update(s).digest('base64url').slice(0, 16);

/**
 * SendMessage and the recent-message history. Checks that need no shared state (the text, the
 * policy's closed flag and level) run in the replica; everything that must hold across replicas
 * (retries, mutes, rate limit, slow mode, the flood merge) is two Redis scripts, the user's step
 * and the room's (each in one Cluster slot); a new message is appended to the room's stream
 * (offset and history, see stream.ts) by the room's script itself, so it costs no third trip.
 *
 * A flood of one text is published once, at once, with merged_count 1; when its merge window
 * closes, the replica that published it publishes one update with the final count (same
 * message_id), so gateways replace the line instead of showing a thousand copies. Windows are
 * closed in batches (one pipeline per sweep), not with a timer and a round trip per message.
 */
export class Messages {
  /** Open merge windows of messages this replica published, oldest first. */
  private readonly windows: OpenWindow[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly rooms: RoomDirectory,
    private readonly policies: Policies,
    private readonly levels: CachedLevels,
    private readonly store: ChatStore,
    private readonly stream: RoomPublisher,
    private readonly ids: MessageIds,
    private readonly settings: MessageSettings,
    private readonly onError: (err: unknown, what: string) => void,
    private readonly clock: () => number = Date.now,
  ) {}

  async send(callerOrNone: Caller | undefined, input: SendInput): Promise<Sent> {
    const caller = requireCaller(callerOrNone);
    checkRoomId(input.roomId);
    const v = new Violations();
    const text = checkMessage(v, input);
    v.throwIfAny();

    const room = await this.rooms.get(input.roomId);
    const policy = await this.policies.get(room.roomId);
    const manager = isRoomManager(caller, room);
    if (!manager && policy.chatClosed) throw chatClosed(room.roomId);
    let level = this.levels.known(caller.userId);
    if (!manager && policy.minLevel > 0) {
      level = await this.levels.levelOf(caller);
      if (level < policy.minLevel) throw levelTooLow(policy.minLevel, level);
    }

    const now = this.clock();
    const message: ChatLine = {
      messageId: this.ids.next(now),
      senderId: caller.userId,
      senderName: input.senderName,
      senderLevel: level,
      text,
      mergedCount: 1,
      senderRole: caller.role,
    };
    const pending = this.stream.prepare(room.roomId, { chat: message }, new Date(now));
    const admission = await this.store.admit({
      roomId: room.roomId,
      userId: caller.userId,
      clientMessageId: input.clientMessageId,
      fingerprint: hash(`${room.roomId}\n${text}`),
      textHash: hash(text),
      candidateId: message.messageId,
      nowMs: now,
      burst: this.settings.rateBurst,
      perSecond: this.settings.ratePerSecond,
      slowModeMs: manager ? 0 : policy.slowModeMs,
      mergeWindowMs: this.settings.mergeWindowMs,
      dedupeMs: this.settings.dedupeMs,
      append: pending,
    });
    switch (admission.kind) {
      case 'duplicate': {
        const line = await this.placed(room.roomId, admission.messageId);
        return { messageId: admission.messageId, outcome: 'duplicate', seq: line?.seq, sentAt: line?.at };
      }
      case 'reused':
        throw idempotencyKeyReused(input.clientMessageId, 'client_message_id');
      case 'muted':
        throw muted(room.roomId, admission.until);
      case 'rate_limited':
        throw rateLimited(admission.retryAfterMs);
      case 'slow_mode':
        throw slowMode(admission.retryAfterMs);
      case 'merged':
        return { messageId: admission.messageId, outcome: 'merged', seq: undefined, sentAt: undefined };
      case 'new': {
        const published = admission.position ? this.stream.announce(pending.event, admission.position.offset) : await this.stream.publish(room.roomId, { chat: message }, new Date(now));
        if (this.settings.mergeWindowMs > 0) this.windows.push({ dueAt: now + this.settings.mergeWindowMs + MERGE_GRACE_MS, roomId: room.roomId, message });
        return { messageId: admission.messageId, outcome: 'published', seq: published.seq, sentAt: published.at };
      }
    }
  }

  /**
   * Where a line went, for a retry whose first answer was lost: the app places its own line by
   * the offset, and the retry must tell it the same as the first answer would have. Read from the
   * room's recent messages (its first appearance, not a later merged form) only for duplicates,
   * so the send path writes nothing more; a line already pushed out of them (a very busy room,
   * a late retry) has no place to give, as for a merged line.
   */
  private async placed(roomId: string, messageId: string): Promise<{ seq: string; at: Date | undefined } | undefined> {
    const kept = await this.store.recent(roomId).catch(() => undefined);
    let first: ChatEvent | undefined;
    for (const event of kept?.events ?? []) {
      if (!('chat' in event.payload) || event.payload.chat.messageId !== messageId) continue;
      if (!first || BigInt(event.seq) < BigInt(first.seq)) first = event;
    }
    return first && { seq: first.seq, at: first.at };
  }

  /** The room's recent messages, each in its latest merged form, oldest first, and the stream position they were read at. */
  async recent(roomId: string, limit: number, afterSeq: string): Promise<{ events: ChatEvent[]; position: StreamPosition }> {
    checkRoomId(roomId);
    const n = limit === 0 ? LIMITS.defaultRecent : limit;
    if (!Number.isInteger(n) || n < 1 || n > LIMITS.recent) throw invalidField('limit', `must be between 1 and ${LIMITS.recent} (0 means ${LIMITS.defaultRecent})`);
    if (afterSeq !== '0' && afterSeq !== '' && !isPositiveInt64(afterSeq)) throw invalidField('after_seq', 'must be 0 or a positive sequence number');
    await this.rooms.get(roomId);
    const after = BigInt(afterSeq || '0');
    const latest = new Map<string, ChatEvent>();
    const kept = await this.store.recent(roomId);
    for (const event of kept.events) {
      if (!('chat' in event.payload)) continue;
      const id = event.payload.chat.messageId;
      const seen = latest.get(id);
      if (!seen || BigInt(seen.seq) < BigInt(event.seq)) latest.set(id, event);
    }
    const ordered = [...latest.values()].filter((e) => BigInt(e.seq) > after).sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1));
    return { events: ordered.slice(-n), position: kept.position };
  }

  /** Starts closing merge windows as they end. */
  start(): void {
    this.timer = setInterval(() => void this.closeDue(this.clock()), SWEEP_MS);
    this.timer.unref();
  }

  /** Closes every open merge window now (at shutdown), so their final counts are published. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.closeDue(Infinity);
  }

  /**
   * Closes the windows that have ended, in one Redis pipeline, and publishes one update for each
   * message something merged into. Windows all last the same, so the queue is in deadline order.
   */
  private async closeDue(now: number): Promise<void> {
    let n = 0;
    while (n < this.windows.length && (this.windows[n] as OpenWindow).dueAt <= now) n++;
    if (n === 0) return;
    const due = this.windows.splice(0, n);
    try {
      const counts = await this.store.closeMerges(due.map((w) => ({ roomId: w.roomId, messageId: w.message.messageId })));
      await Promise.all(
        due.map(async (w, i) => {
          const count = counts[i];
          if (count !== undefined) await this.stream.publish(w.roomId, { chat: { ...w.message, mergedCount: count } });
        }),
      );
    } catch (err) {
      this.onError(err, `final counts of ${due.length} merged message(s)`);
    }
  }
}
