/**
 * Room's public face: what other services (and the BFF) may use of Room. A typed promise client,
 * the `room.changed` events every consumer decodes the same way, and the cached room directory
 * Gift and Chat read room facts through. Nothing else of services/room is imported from outside it.
 */
import { status as Code } from '@grpc/grpc-js';
import { RoomChangedEvent, RoomServiceClient, RoomStatus, type Room } from '../../gen/ts/livemesh/room/v1/room.js';
import { promiseClient, type PromiseClient } from '../../kit/clients.js';
import type { MeshCredentials } from '../../kit/credentials.js';
import { GrpcCallError } from '../../kit/grpc-errors.js';
import type { Logger } from '../../kit/logger.js';
import { subject, type NatsConnection } from '../../kit/nats.js';
import { receiveInSpan } from '../../kit/tracing-nats.js';
import { VersionedCache } from '../../kit/versioned-cache.js';

export type RoomClient = PromiseClient<RoomServiceClient>;

/** A Room client over lb/ (P2C over every replica `target` names, this process's token, mTLS when configured). */
export const roomClient = (target: string, credentials: MeshCredentials): RoomClient => promiseClient(RoomServiceClient, target, credentials);

/** Subject for a room's change events: `room.changed.<room_id>` (plus the configured prefix). */
export const roomChangedSubject = (prefix: string, roomId: string) => subject(prefix, `room.changed.${roomId}`);

/** Every room's change events. */
export const roomChangesSubject = (prefix: string) => subject(prefix, 'room.changed.>');

/** The facts about a room other services act on; a change event or GetRoom carries all of them. */
export interface RoomFacts {
  roomId: string;
  streamerId: string;
  live: boolean;
  giftGroupId: string;
  liveStartedAt: Date | null;
  /** Room's version; a change event only replaces an older copy. */
  version: string;
}

export const roomFacts = (r: Room): RoomFacts => ({
  roomId: r.roomId,
  streamerId: r.streamerId,
  live: r.status === RoomStatus.ROOM_STATUS_LIVE,
  giftGroupId: r.giftGroupId,
  liveStartedAt: r.liveStartTime ?? null,
  version: r.version,
});

/** The fields RoomFacts is made of, so GetRoom answers no more than a directory keeps. */
const FACTS_MASK = ['room_id', 'streamer_id', 'status', 'gift_group_id', 'live_start_time', 'version'];

/** A change event's room, undefined when the event carries none; throws on bytes that are not one. */
export function decodeRoomChange(data: Uint8Array): Room | undefined {
  return RoomChangedEvent.decode(data).room;
}

/**
 * Every replica hears every change (plain subscription, no queue group; Room publishes through
 * JetStream, which core subscribers receive too). `project` turns the event's room into what the
 * consumer keeps: RoomFacts unless told otherwise (Room itself keeps its whole record). An
 * undecodable event is logged and skipped: a missed change costs one cache TTL of staleness.
 */
export function watchRoomChanges(nc: NatsConnection, prefix: string, onRoom: (room: RoomFacts) => void, log: Logger): { stop(): void };
export function watchRoomChanges<T>(nc: NatsConnection, prefix: string, onRoom: (room: T) => void, log: Logger, project: (room: Room) => T): { stop(): void };
export function watchRoomChanges<T>(nc: NatsConnection, prefix: string, onRoom: (room: T) => void, log: Logger, project?: (room: Room) => T): { stop(): void } {
  // Without a projection the first overload applies, where T is RoomFacts.
  const toT = project ?? (roomFacts as unknown as (room: Room) => T);
  const sub = nc.subscribe(roomChangesSubject(prefix), {
    callback: (err, msg) => {
      if (err) return log.warn({ err: err.message }, 'room change subscription error');
      let room: Room | undefined;
      try {
        room = decodeRoomChange(msg.data);
      } catch (e) {
        return log.warn({ err: (e as Error).message, subject: msg.subject }, 'undecodable room change event ignored');
      }
      if (room) receiveInSpan(msg, () => onRoom(toT(room)));
    },
  });
  return { stop: () => sub.unsubscribe() };
}

/**
 * Rooms as another service sees them: a few seconds in memory, filled from GetRoom (which Room
 * answers from its own cache) with one call per room however many requests arrive at once, and
 * replaced as soon as a change event (`changed`) brings a newer version, so a room that stops
 * being live is seen as such within milliseconds rather than at the end of a TTL. A room Room
 * does not have is remembered as absent for the TTL too. `project` narrows what is kept to what
 * the consumer reads.
 */
export class CachedRoomDirectory<T extends { roomId: string; version: string }> {
  private readonly cache: VersionedCache<T>;

  constructor(client: RoomClient, project: (facts: RoomFacts) => T, opts: { max: number; ttlMs: number; deadlineMs: number }) {
    this.cache = new VersionedCache(async (roomId) => {
      try {
        const res = await client.getRoom({ roomId, readMask: FACTS_MASK }, { deadlineMs: opts.deadlineMs });
        return res.room ? project(roomFacts(res.room)) : undefined;
      } catch (err) {
        if (GrpcCallError.is(err) && err.code === Code.NOT_FOUND) return undefined;
        throw err;
      }
    }, opts);
  }

  /** The room, or undefined when Room says it does not exist. */
  get(roomId: string): Promise<T | undefined> {
    return this.cache.get(roomId);
  }

  /** A change event's room: kept when newer than the cached copy. */
  changed(room: T): void {
    this.cache.offer(room.roomId, room);
  }
}
