import { invalidField, Violations } from '../../kit/domain-error.js';
import { isPositiveInt64 } from '../../kit/identity.js';
import { chars, CONTROL_CHARS as CONTROL, ROOM_CONTRACT } from '../../kit/contract-rules.js';

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

/** The fields a streamer edits; UpdateRoom's mask picks a subset of them. */
export interface RoomText {
  title: string;
  category: string;
  coverKey: string;
  notice: string;
}

export interface NewRoom extends RoomText {
  streamerId: string;
  requestId: string;
}

/** A change computed by the domain and applied by the store inside one MySQL transaction. */
export type RoomChange =
  | { kind: 'text'; fields: Partial<RoomText> }
  | { kind: 'live'; at: Date }
  | { kind: 'offline' }
  | { kind: 'gift_group'; giftGroupId: string };

/** Which room may be changed by whom, and at which version. */
export interface WriteGuard {
  /** Set for streamers: the row must belong to them. Admins pass undefined. */
  ownerId: string | undefined;
  /** Optimistic lock: the row must still be at this version. */
  expectedVersion: string | undefined;
}

export type GuardedWrite =
  | { outcome: 'changed'; room: RoomRecord }
  | { outcome: 'unchanged'; room: RoomRecord }
  | { outcome: 'not_found' }
  | { outcome: 'not_owner'; room: RoomRecord }
  | { outcome: 'version_conflict'; room: RoomRecord };

/** MySQL, the source of truth: only streamer and admin writes come here. */
export interface RoomStore {
  /**
   * Inserts the room, or returns the room an earlier call with the same (streamer, request id)
   * created, together with the hash of the fields that call used.
   */
  insertOnce(room: NewRoom, requestHash: string, now: Date): Promise<{ room: RoomRecord; requestHash: string }>;
  /**
   * Locks the row, checks the guard, and applies `change` with a version bump unless the change
   * would not alter the room (StartLive on a live room), all in one transaction.
   */
  applyChange(roomId: string, guard: WriteGuard, change: RoomChange, now: Date): Promise<GuardedWrite>;
  /** Rooms in id order after `afterId`, for backfilling Redis. */
  scan(afterId: string, limit: number): Promise<RoomRecord[]>;
  /** How many rooms there are and the sum of their versions: Redis keeps the same two figures. */
  checksum(): Promise<RoomChecksum>;
}

export interface RoomChecksum {
  rooms: number;
  versionSum: string;
}

/** A position in one of Redis's room indexes: the last entry's score and id. */
export interface Cursor {
  score: number;
  id: string;
}

/** A page of ids from one of Redis's room indexes, newest first. */
export interface IdPage {
  ids: string[];
  /** Where the next page starts, or undefined at the end. */
  next: Cursor | undefined;
}

/** Only the fields a masked read asks for; room_id is always known from the key. */
export type PartialRoom = Partial<RoomRecord> & { roomId: string; version: string };

/**
 * Redis: holds every room in full, with no expiry, plus the indexes the list RPCs page through.
 * It is the read path's only store; a room missing here does not exist for viewers.
 */
export interface RoomCache {
  /** Stores the room and its index entries unless the cache already has the same or a newer version. */
  put(room: RoomRecord): Promise<boolean>;
  get(roomId: string): Promise<RoomRecord | undefined>;
  /** One pipeline for all ids; with `fields`, only those fields leave Redis. */
  getMany(roomIds: string[], fields?: ReadonlyArray<keyof RoomRecord>): Promise<Array<PartialRoom | undefined>>;
  /** Live rooms, newest live first; category '' means all. */
  liveIds(category: string, size: number, after: Cursor | undefined): Promise<IdPage>;
  /** A streamer's rooms, newest first. */
  streamerIds(streamerId: string, size: number, after: Cursor | undefined): Promise<IdPage>;
  checksum(): Promise<RoomChecksum>;
}

/**
 * The Gift service's gift groups, as far as Room needs them. Gift owns the groups and Room only
 * stores which one a room shows, so Room asks before storing an id no one could resolve: a room
 * pointing at a missing group would show no gifts and refuse every send.
 */
export interface GiftGroups {
  /** Whether the group exists; rejects (UNAVAILABLE) when the Gift service cannot answer. */
  exists(giftGroupId: string): Promise<boolean>;
}

/** Where change events go (NATS), so other replicas and regions can refresh. */
export interface RoomEvents {
  changed(room: RoomRecord): Promise<void>;
}

export const LIMITS = {
  ...ROOM_CONTRACT,
  sessionId: 64,
  batch: 500,
  defaultPageSize: 20,
} as const;

/** Validates the editable text fields that are present; `prefix` makes paths like `room.title`. */
export function checkText(v: Violations, text: Partial<RoomText>, prefix = ''): void {
  if (text.title !== undefined) {
    const title = text.title;
    v.check(title.length > 0, `${prefix}title`, 'must not be empty');
    v.check(chars(title) <= LIMITS.title, `${prefix}title`, `must be at most ${LIMITS.title} characters`);
    v.check(!CONTROL.test(title), `${prefix}title`, 'must not contain control characters');
  }
  if (text.category !== undefined) {
    v.check(text.category === '' || /^[a-z0-9-]+$/.test(text.category), `${prefix}category`, 'must be lowercase letters, digits and dashes');
    v.check(text.category.length <= LIMITS.category, `${prefix}category`, `must be at most ${LIMITS.category} characters`);
  }
  if (text.coverKey !== undefined) {
    v.check(text.coverKey.length <= LIMITS.coverKey, `${prefix}cover_key`, `must be at most ${LIMITS.coverKey} characters`);
    v.check(/^[\x21-\x7e]*$/.test(text.coverKey), `${prefix}cover_key`, 'must be a media-store key: printable ASCII without spaces');
  }
  if (text.notice !== undefined) {
    v.check(chars(text.notice) <= LIMITS.notice, `${prefix}notice`, `must be at most ${LIMITS.notice} characters`);
  }
}

/** A required room id: a positive 64-bit integer. */
export function checkRoomId(roomId: string, field = 'room_id'): void {
  if (!isPositiveInt64(roomId)) throw invalidField(field, 'must be a positive 64-bit integer');
}

/** Page size with the RPC default, rejecting what the contract calls out of range. */
export function pageSize(requested: number | undefined, field = 'page.page_size'): number {
  const n = requested ?? 0;
  if (n === 0) return LIMITS.defaultPageSize;
  if (!Number.isInteger(n) || n < 0 || n > LIMITS.pageSize) throw invalidField(field, `must be between 1 and ${LIMITS.pageSize} (0 means ${LIMITS.defaultPageSize})`);
  return n;
}

export { CONTROL as CONTROL_CHARS };
