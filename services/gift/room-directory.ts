import { Metadata, status as Code, type ServiceError } from '@grpc/grpc-js';
import { RoomStatus, type Room, type RoomServiceClient } from '../../gen/ts/livemesh/room/v1/room.js';
import { VersionedCache } from '../../kit/versioned-cache.js';
import type { RoomFacts } from './model.js';
import type { RoomDirectory } from './ports.js';

const facts = (r: Room): RoomFacts => ({
  roomId: r.roomId,
  streamerId: r.streamerId,
  live: r.status === RoomStatus.ROOM_STATUS_LIVE,
  giftGroupId: r.giftGroupId,
  liveStartedAt: r.liveStartTime ?? null,
  version: r.version,
});

const READ_MASK = ['room_id', 'streamer_id', 'status', 'gift_group_id', 'live_start_time', 'version'];

/**
 * Rooms as Gift sees them: a few seconds in memory, filled from the Room service (which answers
 * from its own cache) with one call per room however many sends arrive at once, and replaced as
 * soon as a `room.changed` event says the room changed — a room that stops being live stops
 * taking gifts within milliseconds, not at the end of a TTL.
 */
export class CachedRoomDirectory implements RoomDirectory {
  private readonly cache: VersionedCache<RoomFacts>;

  constructor(
    private readonly room: RoomServiceClient,
    opts: { max: number; ttlMs: number; deadlineMs: number },
  ) {
    this.cache = new VersionedCache(
      (roomId) =>
        new Promise<RoomFacts | undefined>((resolve, reject) =>
          this.room.getRoom({ roomId, readMask: READ_MASK }, new Metadata(), { deadline: Date.now() + opts.deadlineMs }, (err: ServiceError | null, res) => {
            if (err?.code === Code.NOT_FOUND) resolve(undefined);
            else if (err) reject(err);
            else resolve(res.room ? facts(res.room) : undefined);
          }),
        ),
      opts,
    );
  }

  get(roomId: string): Promise<RoomFacts | undefined> {
    return this.cache.get(roomId);
  }

  /** A change event carries the whole room: keep the newer version. */
  changed(room: Room): void {
    this.cache.offer(room.roomId, facts(room));
  }
}
