import { DiscardPolicy, jetstream, StorageType } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { RoomChangedEvent } from '../../../gen/ts/livemesh/room/v1/room.js';
import type { Logger } from '../../../kit/logger.js';
import type { NatsConnection } from '../../../kit/nats.js';
import { consumeDurable, ensureStream, startWhenStreamUp, streamName } from '../../../kit/streams.js';
import { traceHeaders } from '../../../kit/tracing-nats.js';
import { decodeRoomChange, roomChangedSubject, roomChangesSubject, watchRoomChanges as watchChanges } from '../client.js';
import { fromProtoRoom, toProtoRoom } from '../mapping.js';
import type { RoomEvents, RoomRecord } from '../rooms.js';

/** The JetStream stream holding change events; NATS_PREFIX keeps test runs apart. */
export const roomStreamName = (prefix: string) => streamName(prefix, 'ROOM_CHANGES');

/**
 * Only a room's latest events matter to a region catching up, so the stream keeps a few messages
 * per room (subject) for a week: it stays about as small as the set of recently changed rooms, and
 * a region whose refresher was down replays what it missed. Not just one per room: two writers
 * can publish versions 6 and 5 in that order, and keeping only the last message would lose 6.
 */
export async function ensureRoomStream(nc: NatsConnection, prefix: string): Promise<void> {
  await ensureStream(nc, {
    name: roomStreamName(prefix),
    subjects: [roomChangesSubject(prefix)],
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_msgs_per_subject: 8,
    max_age: nanos(7 * 24 * 3600 * 1000),
    duplicate_window: nanos(2 * 60 * 1000),
  });
}

/**
 * Publishes the whole room after each write, as protobuf, through JetStream: the publish is
 * acknowledged once stored, so regions can rely on it. The message id (room and version) makes a
 * retried publish harmless.
 */
export class NatsRoomEvents implements RoomEvents {
  private readonly js;

  constructor(
    nc: NatsConnection,
    private readonly prefix: string,
    private readonly region: string,
  ) {
    this.js = jetstream(nc);
  }

  async changed(room: RoomRecord): Promise<void> {
    const event = RoomChangedEvent.encode({ room: toProtoRoom(room), originRegion: this.region }).finish();
    // The writer's trace context rides along (no headers at all when nothing is traced).
    const headers = traceHeaders();
    await this.js.publish(roomChangedSubject(this.prefix, room.roomId), event, { msgID: `${room.roomId}:${room.version}`, ...(headers ? { headers } : {}) });
  }
}

function decode(data: Uint8Array): RoomRecord | undefined {
  const room = decodeRoomChange(data);
  return room ? fromProtoRoom(room) : undefined;
}

/**
 * Room's own replicas hear every change too, as whole records for their local cache; a missed
 * message costs at most one cache TTL of staleness.
 */
export const watchRoomChanges = (nc: NatsConnection, prefix: string, onRoom: (room: RoomRecord) => void, log: Logger) => watchChanges(nc, prefix, onRoom, log, fromProtoRoom);

/**
 * The region refresher: one durable consumer per region, shared by that region's replicas (each
 * event is applied once per region), writing the event's room into the region's Redis. Versions
 * decide, so redeliveries and out-of-order events are harmless. A failed apply is redelivered.
 */
export async function runRegionRefresher(
  nc: NatsConnection,
  prefix: string,
  region: string,
  apply: (room: RoomRecord) => Promise<boolean>,
  log: Logger,
): Promise<{ stop(): Promise<void> }> {
  // The kit's durable-consumer loop, like every other consumer: created or brought up to date,
  // acked after the refresh, redelivered with a backoff when Redis fails. Refreshes are "only if
  // newer" by version, so handling several at once cannot put an older copy over a newer one.
  return startWhenStreamUp(`region refresher ${region}`, () => consumeDurable(nc, roomStreamName(prefix), {
    durable: `room-refresh-${region}`,
    ackWaitMs: 10_000,
    concurrency: 16,
    decode,
    describe: (room) => (room ? { roomId: room.roomId, version: room.version } : {}),
    handle: async (room) => {
      if (room) await apply(room);
      return { ack: true };
    },
    log,
  }), log);
}
