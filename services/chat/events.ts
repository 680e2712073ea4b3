import { EventPriority, RoomNoticeKind, type ChatMessage, type GiftBarrage, type LikeBurst, type RoomEvent, type RoomNotice } from '../../gen/ts/livemesh/chat/v1/chat.js';

/**
 * RoomEvent (the protobuf envelope) is Chat's domain object as much as a wire format: it is what
 * gateways receive from NATS, what Redis keeps, and what Subscribe streams, so the domain builds
 * it directly rather than translating from a parallel type.
 */
export type Payload = { chat: ChatMessage } | { gift: GiftBarrage } | { likes: LikeBurst } | { notice: RoomNotice };

/** Where events go out and come back from (NATS core subjects, one per room). */
export interface EventBus {
  /** Publishes and returns the encoded bytes (kept in Redis for chat messages). */
  publish(event: RoomEvent): Uint8Array;
  /** `ready` settles once the server has the subscription: events published after it are delivered. */
  subscribe(roomId: string, onEvent: (event: RoomEvent) => void): { stop(): void; ready: Promise<void> };
}

/** The priority each kind of payload travels with (gifts before chat; notices never sampled). */
export function priorityOf(payload: Payload): EventPriority {
  if ('gift' in payload) return EventPriority.EVENT_PRIORITY_HIGH;
  if ('likes' in payload) return EventPriority.EVENT_PRIORITY_LOW;
  if ('chat' in payload) return EventPriority.EVENT_PRIORITY_NORMAL;
  return payload.notice.kind === RoomNoticeKind.ROOM_NOTICE_KIND_ONLINE_COUNT ? EventPriority.EVENT_PRIORITY_LOW : EventPriority.EVENT_PRIORITY_CRITICAL;
}

export function roomEvent(roomId: string, seq: string, payload: Payload, at: Date): RoomEvent {
  return { seq, priority: priorityOf(payload), eventTime: at, roomId, ...payload };
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
