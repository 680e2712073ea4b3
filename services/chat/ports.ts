import type { ChatEvent } from './events.js';
import type { Policy } from './model.js';

/**
 * What Chat's use cases need from shared state (Redis in production, store/redis-chat.ts): every
 * rule that must hold across replicas is one call here, so the use cases stay readable without the
 * Lua scripts and can be exercised against another implementation.
 */

export type Admission =
  | { kind: 'duplicate'; messageId: string }
  | { kind: 'reused' }
  | { kind: 'muted'; until: Date }
  | { kind: 'rate_limited'; retryAfterMs: number }
  | { kind: 'slow_mode'; retryAfterMs: number }
  | { kind: 'merged'; messageId: string; count: number }
  /** `position`: the message's place in the room stream, when it was appended in the same step. */
  | { kind: 'new'; messageId: string; position: StreamPosition | undefined };

export interface AdmitInput {
  roomId: string;
  userId: string;
  clientMessageId: string;
  /** Same room and text: what makes a retry a retry. */
  fingerprint: string;
  /** Hash of the text alone: what makes a flood a flood. */
  textHash: string;
  candidateId: string;
  nowMs: number;
  burst: number;
  perSecond: number;
  /** 0 when slow mode is off or the sender is exempt. */
  slowModeMs: number;
  mergeWindowMs: number;
  dedupeMs: number;
  /** The message as it is published if it is new: appended to the room's stream in the same step (see ChatStore.append). */
  append?: { event: ChatEvent; limits: HistoryLimits };
}

/** Where a room's stream is: the last offset handed out and the epoch of the history it counts in. */
export interface StreamPosition {
  offset: string;
  epoch: string;
}

/** How much of each room's stream is kept for recovery. */
export interface HistoryLimits {
  /** Events kept per room (the oldest go first). */
  size: number;
  /** Events older than this are gone (and a room quiet for this long loses its history). */
  ttlMs: number;
}

/** What the history holds after an offset: every event up to `position.offset`, or `covered: false` when some are gone. */
export interface HistoryRead {
  position: StreamPosition;
  covered: boolean;
  events: ChatEvent[];
}

export interface MuteRecord {
  endMs: number;
  by: string;
  reason: string;
}

export interface ChatStore {
  /**
   * Everything a message must pass across replicas: retries, mutes, rate, slow mode, the flood
   * merge; a new message with `append` also takes its offset (two round trips: the user's step,
   * then the room's, each in its own Cluster slot).
   */
  admit(a: AdmitInput): Promise<Admission>;
  /** Closes merge windows: for each message, its merged count, or undefined when nothing merged. */
  closeMerges(open: Array<{ roomId: string; messageId: string }>): Promise<Array<number | undefined>>;
  /**
   * Gives the event the room's next offset and keeps it in the room's bounded history (and, for
   * chat, in the recent list), atomically: an event has an offset only once it can be replayed.
   */
  append(event: ChatEvent, limits: HistoryLimits, nowMs: number): Promise<StreamPosition>;
  /** The events after `afterOffset` (at most `limit`), if the history still holds all of them. */
  history(roomId: string, afterOffset: string, limit: number, limits: HistoryLimits, nowMs: number): Promise<HistoryRead>;
  /** Kept chat events, oldest first, each with its offset, and the stream position they were read at. */
  recent(roomId: string): Promise<{ events: ChatEvent[]; position: StreamPosition }>;
  flushLikes(roomId: string, count: number, nowMs: number): Promise<string>;
  likes(roomId: string): Promise<{ total: string; at: Date | undefined }>;
  policy(roomId: string): Promise<Policy | undefined>;
  /** Writes the given policy fields unless the version moved; 'conflict' carries the current version. */
  setPolicy(
    roomId: string,
    fields: Partial<Pick<Policy, 'minLevel' | 'slowModeMs' | 'chatClosed'>>,
    expectedVersion: string,
    by: string,
    nowMs: number,
  ): Promise<{ ok: true; policy: Policy } | { ok: false; version: string }>;
  mute(roomId: string, userId: string, m: MuteRecord): Promise<void>;
  unmute(roomId: string, userId: string): Promise<void>;
  /** 'claimed' (publish it), 'done' (published before) or 'busy' (another replica holds the claim until it lapses). */
  claimBarrage(orderId: string, claimMs: number): Promise<'claimed' | 'done' | 'busy'>;
  markBarrage(orderId: string): Promise<void>;
  /**
   * Records a room version's status and title/notice fingerprint: what this replica is the first
   * to see change (another replica that heard the same change gets nothing).
   */
  roomChanged(roomId: string, version: string, status: 'live' | 'offline', editHash: string): Promise<{ status: boolean; edit: boolean }>;
  /** True for the one replica whose turn it is to announce online counts, for `ms`. */
  takeOnlineTurn(ms: number): Promise<boolean>;
  /** For each count, whether it moved enough to announce. */
  onlineChanges(counts: Array<{ roomId: string; online: number }>, minChangePct: number): Promise<boolean[]>;
}
