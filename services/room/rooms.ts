import { createHash } from 'node:crypto';
import { idempotencyKeyReused, invalidField, Violations } from '../kit/domain-error.js';
import { isPositiveInt64, requireCaller, type Caller } from '../kit/identity.js';
import { notOwnStreamerId, roomNotFound, writeNotAllowed } from './errors.js';

export type RoomStatus = 'offline' | 'live';

/** A room as the domain sees it. Ids and versions are decimal strings (int64 end to end). */
export interface RoomRecord {
  roomId: string;
  streamerId: string;
  title: string;
  category: string;
  coverKey: string;
  notice: string;
  status: RoomStatus;
  giftGroupId: string;
  version: string;
  createdAt: Date;
  updatedAt: Date;
  liveStartedAt: Date | null;
}

export interface NewRoom {
  streamerId: string;
  title: string;
  category: string;
  coverKey: string;
  notice: string;
  requestId: string;
}

/** MySQL, the source of truth: only streamer and admin writes come here. */
export interface RoomStore {
  /**
   * Inserts the room, or returns the room an earlier call with the same (streamer, request id)
   * created, together with the hash of the fields that call used.
   */
  insertOnce(room: NewRoom, requestHash: string, now: Date): Promise<{ room: RoomRecord; requestHash: string }>;
}

/** Redis, which holds every room in full and serves all reads. */
export interface RoomCache {
  /** Stores the room unless the cache already has the same or a newer version. */
  put(room: RoomRecord): Promise<void>;
  get(roomId: string): Promise<RoomRecord | undefined>;
}

/** Where change events go (NATS), so other replicas and regions can refresh. */
export interface RoomEvents {
  changed(room: RoomRecord): Promise<void>;
}

export const LIMITS = { title: 100, category: 32, coverKey: 200, notice: 200, requestId: 64 } as const;

const chars = (s: string) => [...s].length;
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Room use cases. Writes go MySQL first, then Redis, then an event; reads come from Redis only.
 * A Redis failure after the MySQL write surfaces as an error, and the client's retry with the same
 * request id finds the row and writes Redis again, so a room is never stuck invisible.
 */
export class Rooms {
  constructor(
    private readonly store: RoomStore,
    private readonly cache: RoomCache,
    private readonly events: RoomEvents,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async create(callerOrNone: Caller | undefined, input: NewRoom): Promise<RoomRecord> {
    const caller = requireCaller(callerOrNone);
    if (caller.role !== 'streamer' && caller.role !== 'admin') throw writeNotAllowed(caller.role);
    const title = input.title.trim();
    const v = new Violations();
    if (caller.role === 'admin') {
      v.check(isPositiveInt64(input.streamerId), 'streamer_id', 'admins must name the streamer who will own the room (a positive 64-bit integer)');
    } else if (input.streamerId !== '0' && input.streamerId !== '' && input.streamerId !== caller.userId) {
      throw notOwnStreamerId(input.streamerId);
    }
    v.check(title.length > 0, 'title', 'must not be empty');
    v.check(chars(title) <= LIMITS.title, 'title', `must be at most ${LIMITS.title} characters`);
    v.check(!CONTROL.test(title), 'title', 'must not contain control characters');
    v.check(input.category === '' || /^[a-z0-9-]+$/.test(input.category), 'category', 'must be lowercase letters, digits and dashes');
    v.check(input.category.length <= LIMITS.category, 'category', `must be at most ${LIMITS.category} characters`);
    v.check(chars(input.coverKey) <= LIMITS.coverKey, 'cover_key', `must be at most ${LIMITS.coverKey} characters`);
    v.check(chars(input.notice) <= LIMITS.notice, 'notice', `must be at most ${LIMITS.notice} characters`);
    v.check(input.requestId.length > 0, 'request_id', 'is required: a client-chosen idempotency key');
    v.check(input.requestId.length <= LIMITS.requestId, 'request_id', `must be at most ${LIMITS.requestId} characters`);
    v.check(!CONTROL.test(input.requestId), 'request_id', 'must not contain control characters');
    v.throwIfAny();

    const room: NewRoom = { ...input, title, streamerId: caller.role === 'admin' ? input.streamerId : caller.userId };
    const hash = requestHash(room);
    const { room: stored, requestHash: storedHash } = await this.store.insertOnce(room, hash, this.clock());
    if (storedHash !== hash) throw idempotencyKeyReused(room.requestId);
    await this.cache.put(stored);
    await this.events.changed(stored);
    return stored;
  }

  async get(roomId: string): Promise<RoomRecord> {
    if (!isPositiveInt64(roomId)) throw invalidField('room_id', 'must be a positive 64-bit integer');
    const room = await this.cache.get(roomId);
    if (!room) throw roomNotFound(roomId);
    return room;
  }
}

/** Hash of the fields a CreateRoom call was made with, to tell a retry from a reused key. */
function requestHash(room: NewRoom): string {
  return createHash('sha256')
    .update(JSON.stringify([room.streamerId, room.title, room.category, room.coverKey, room.notice]))
    .digest('hex');
}
