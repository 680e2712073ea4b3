import { RoomEvent } from '../../../gen/ts/livemesh/chat/v1/chat.js';
import type { Logger } from '../../../kit/logger.js';
import { subject, type NatsConnection } from '../../../kit/nats.js';
import type { EventBus } from '../events.js';

/** `chat.room.<room_id>`: where a room's events go, in binary protobuf. */
export const chatRoomSubject = (prefix: string, roomId: string) => subject(prefix, `chat.room.${roomId}`);

/**
 * Room events on core NATS: at-most-once and fast, which is what chat wants; a gateway that
 * missed some sees a gap in `seq` and can fetch ListRecentMessages. Nothing is stored in NATS.
 */
export class NatsEventBus implements EventBus {
  constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
    private readonly log: Logger,
  ) {}

  publish(event: RoomEvent): Uint8Array {
    const bytes = RoomEvent.encode(event).finish();
    this.nc.publish(chatRoomSubject(this.prefix, event.roomId), bytes);
    return bytes;
  }

  subscribe(roomId: string, onEvent: (event: RoomEvent) => void): { stop(): void; ready: Promise<void> } {
    const sub = this.nc.subscribe(chatRoomSubject(this.prefix, roomId), {
      callback: (err, msg) => {
        if (err) return this.log.warn({ err: err.message, roomId }, 'room event subscription error');
        try {
          onEvent(RoomEvent.decode(msg.data));
        } catch (e) {
          this.log.warn({ err: (e as Error).message, roomId }, 'undecodable room event ignored');
        }
      },
    });
    // A flush round trip: once the server answers, it has processed the SUB before it.
    return { stop: () => sub.unsubscribe(), ready: this.nc.flush() };
  }
}
