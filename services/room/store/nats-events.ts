import { RoomChangedEvent } from '../../../gen/ts/livemesh/room/v1/room.js';
import { subject, type NatsConnection } from '../../kit/nats.js';
import { toProtoRoom } from '../mapping.js';
import type { RoomEvents, RoomRecord } from '../rooms.js';

/** Subject for a room's change events: `room.changed.<room_id>` (plus the configured prefix). */
export const roomChangedSubject = (prefix: string, roomId: string) => subject(prefix, `room.changed.${roomId}`);

/**
 * Publishes the whole room after each write, as protobuf, so subscribers (every replica's local
 * cache, each region's Redis refresher) act on the event alone, without reading MySQL.
 */
export class NatsRoomEvents implements RoomEvents {
  constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
    private readonly region: string,
  ) {}

  async changed(room: RoomRecord): Promise<void> {
    const event = RoomChangedEvent.encode({ room: toProtoRoom(room), originRegion: this.region }).finish();
    this.nc.publish(roomChangedSubject(this.prefix, room.roomId), event);
  }
}
