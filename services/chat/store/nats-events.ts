import type { Logger } from '../../../kit/logger.js';
import { traceHeaders } from '../../../kit/tracing-nats.js';
import { subject, type NatsConnection } from '../../../kit/nats.js';
import type { ChatEvent, EventBus } from '../events.js';
import { decodeEvent, encodeEvent } from '../mapping.js';

/** `chat.room.<room_id>`: where a room's events go, in binary protobuf. */
export const chatRoomSubject = (prefix: string, roomId: string) => subject(prefix, `chat.room.${roomId}`);

/**
 * Room events on core NATS: at-most-once and fast, which is what chat wants; a gateway that
 * missed some sees a gap in the room's offsets and fills it from the history (GetRoomHistory),
 * which Chat's Redis keeps. Nothing is stored in NATS. A sampled trace's context rides in the
 * headers, so a gift's room frame joins the gift's trace.
 */
export class NatsEventBus implements EventBus {
  constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
    private readonly log: Logger,
  ) {}

  publish(event: ChatEvent): void {
    const headers = traceHeaders();
    this.nc.publish(chatRoomSubject(this.prefix, event.roomId), encodeEvent(event), headers ? { headers } : undefined);
  }

  subscribe(roomId: string, onEvent: (event: ChatEvent) => void): { stop(): void; ready: Promise<void> } {
    const sub = this.nc.subscribe(chatRoomSubject(this.prefix, roomId), {
      callback: (err, msg) => {
        if (err) return this.log.warn({ err: err.message, roomId }, 'room event subscription error');
        try {
          const event = decodeEvent(msg.data);
          if (event) onEvent(event);
          else this.log.warn({ roomId }, 'room event without a payload Chat knows ignored');
        } catch (e) {
          this.log.warn({ err: (e as Error).message, roomId }, 'undecodable room event ignored');
        }
      },
    });
    // A flush round trip: once the server answers, it has processed the SUB before it.
    return { stop: () => sub.unsubscribe(), ready: this.nc.flush() };
  }
}
