import type { Role } from '../../kit/identity.js';
import type { Policy } from './model.js';

/**
 * Chat's events as the domain sees them. The protobuf RoomEvent is their wire form only:
 * mapping.ts translates, store/ encodes for NATS and the Redis recent list, handlers.ts for
 * Subscribe. Keeping the use cases on this type lets their rules be read and tested without the
 * generated code, and keeps contract details (enum numbers, field defaults) in one place.
 */

/** Lowest first: a subscriber's minimum admits its own priority and every one after it. */
const PRIORITIES = ['low', 'normal', 'high', 'critical'] as const;
export type Priority = (typeof PRIORITIES)[number];

/** Whether `p` is at or above `min` (the order of PRIORITIES). */
export const atLeast = (p: Priority, min: Priority): boolean => PRIORITIES.indexOf(p) >= PRIORITIES.indexOf(min);

export interface ChatLine {
  messageId: string;
  senderId: string;
  senderName: string;
  senderLevel: number;
  text: string;
  /** How many identical sends this line stands for; an update repeats the message id with a higher count. */
  mergedCount: number;
  /** Undefined only on an event from elsewhere that named no role. */
  senderRole: Role | undefined;
}

export interface GiftLine {
  orderId: string;
  senderId: string;
  senderName: string;
  senderLevel: number;
  giftId: string;
  count: number;
  comboCount: string;
  amountMinor: string;
}

export interface LikeBurst {
  /** Likes in this flush (one replica's sum), as a decimal int64. */
  likeCount: string;
  /** The room's total after it. */
  totalLikeCount: string;
}

export type Notice =
  | { kind: 'live_started' | 'live_stopped' }
  | { kind: 'online_count'; online: string }
  | { kind: 'policy_changed'; policy: Policy }
  /** Published by operators' tooling (and the tests' probes), never by Chat itself; Subscribe passes it on. */
  | { kind: 'announcement'; text: string };

/** A streamer's edit of the room's title or notice, pushed to viewers. */
export interface RoomEdit {
  title: string;
  notice: string;
  version: string;
}

export type Payload = { chat: ChatLine } | { gift: GiftLine } | { likes: LikeBurst } | { notice: Notice } | { room: RoomEdit };

export interface ChatEvent {
  roomId: string;
  /** The event's offset in the room's stream (one counter per room, every kind); '0' until the history assigns it. */
  seq: string;
  priority: Priority;
  /** Undefined only on an event from elsewhere that carried no time. */
  at: Date | undefined;
  payload: Payload;
}

/** Where events go out and come back from (NATS core subjects, one per room). */
export interface EventBus {
  publish(event: ChatEvent): void;
  /** `ready` settles once the server has the subscription: events published after it are delivered. */
  subscribe(roomId: string, onEvent: (event: ChatEvent) => void): { stop(): void; ready: Promise<void> };
}

/** The priority each kind of payload travels with (gifts before chat; notices never sampled). */
function priorityOf(payload: Payload): Priority {
  if ('gift' in payload) return 'high';
  if ('likes' in payload) return 'low';
  if ('chat' in payload) return 'normal';
  if ('room' in payload) return 'critical';
  return payload.notice.kind === 'online_count' ? 'low' : 'critical';
}

export function roomEvent(roomId: string, seq: string, payload: Payload, at: Date): ChatEvent {
  return { roomId, seq, priority: priorityOf(payload), at, payload };
}

/** Time-ordered 64-bit ids: milliseconds since 2024, a 10-bit worker, a 12-bit counter (snowflake layout). */
export class MessageIds {
  private static readonly EPOCH = Date.UTC(2024, 0, 1);
  private lastMs = 0;
  private counter = 0;

  constructor(private readonly worker: number) {}

  next(nowMs = Date.now()): string {
    let ms = Math.max(nowMs, this.lastMs);
    if (ms === this.lastMs) {
      this.counter = (this.counter + 1) & 0xfff;
      // 4096 ids in one millisecond: borrow the next millisecond rather than repeat an id.
      if (this.counter === 0) ms++;
    } else {
      this.counter = 0;
    }
    this.lastMs = ms;
    return ((BigInt(ms - MessageIds.EPOCH) << 22n) | (BigInt(this.worker) << 12n) | BigInt(this.counter)).toString();
  }
}
