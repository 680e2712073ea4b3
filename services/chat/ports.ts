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
  | { kind: 'new'; messageId: string; seq: string };

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
  /** The event a new message becomes; the store keeps it, without its seq, in the recent list. */
  event: ChatEvent;
}

export interface MuteRecord {
  endMs: number;
  by: string;
  reason: string;
}

export interface ChatStore {
  /** One round trip for everything a message must pass across replicas: retries, mutes, rate, slow mode, the flood merge, the seq. */
  admit(a: AdmitInput): Promise<Admission>;
  /** Closes merge windows: for each message, its merged count and a seq for its update, or undefined when nothing merged. */
  closeMerges(open: Array<{ roomId: string; messageId: string }>): Promise<Array<{ count: number; seq: string } | undefined>>;
  nextSeq(roomId: string): Promise<number>;
  /** Keeps a published chat event under `seq` (its own seq is not kept) for ListRecentMessages. */
  remember(roomId: string, seq: string, event: ChatEvent): Promise<void>;
  /** Kept chat events, oldest first, each with the seq it was kept under. */
  recent(roomId: string): Promise<ChatEvent[]>;
  flushLikes(roomId: string, count: number, nowMs: number): Promise<{ total: string; seq: string }>;
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
  /** Seq for a live-started/stopped notice, or undefined when another replica announced it or nothing changed. */
  roomStatusChanged(roomId: string, version: string, status: 'live' | 'offline'): Promise<string | undefined>;
  /** True for the one replica whose turn it is to announce online counts, for `ms`. */
  takeOnlineTurn(ms: number): Promise<boolean>;
  /** A seq for each count that moved enough to announce. */
  onlineChanges(counts: Array<{ roomId: string; online: number }>, minChangePct: number): Promise<Array<string | undefined>>;
}
