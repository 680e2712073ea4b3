import { createHash } from 'node:crypto';
import { idempotencyKeyReused, invalidField, Violations } from '../../kit/domain-error.js';
import { isPositiveInt64, requireCaller, type Caller } from '../../kit/identity.js';
import { giftGroupNotFound, notOwnStreamerId, notRoomOwner, roomNotFound, versionConflict, writeNotAllowed, writeNotVisible } from './errors.js';
import { describeMaskPaths, maskPathTarget } from '../../kit/field-mask.js';
import {
  checkRoomId,
  checkText,
  CONTROL_CHARS,
  LIMITS,
  type GiftGroups,
  type GuardedWrite,
  type NewRoom,
  type RoomCache,
  type RoomChange,
  type RoomEvents,
  type RoomRecord,
  type RoomStore,
  type RoomText,
} from './rooms.js';

/** Paths UpdateRoom accepts in its mask (proto names; JSON's lowerCamelCase is accepted too), mapped to the domain field. */
const UPDATABLE_PATHS: Record<string, keyof RoomText> = {
  title: 'title',
  category: 'category',
  cover_key: 'coverKey',
  notice: 'notice',
};

export interface RoomUpdate {
  roomId: string;
  text: RoomText;
  paths: string[];
  expectedVersion: string;
}

/**
 * Streamer and admin writes. Each goes to MySQL first (the truth, which bumps the version), then
 * to this region's Redis and out as a change event. The event is also what every region's
 * refresher applies, this one included, so when one of the two follow-ups fails the other still
 * makes the write visible; only when both fail does the caller get UNAVAILABLE, and the room
 * appears at the next write or backfill.
 */
export class RoomWriter {
  constructor(
    private readonly store: RoomStore,
    private readonly cache: RoomCache,
    private readonly events: RoomEvents,
    /** Undefined when no Gift address is configured: AssignGiftGroup then stores any id unchecked. */
    private readonly giftGroups: GiftGroups | undefined,
    private readonly onPublishError: (err: unknown, roomId: string) => void,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async create(callerOrNone: Caller | undefined, input: NewRoom): Promise<RoomRecord> {
    const caller = writer(callerOrNone);
    const v = new Violations();
    if (caller.role === 'admin') {
      v.check(isPositiveInt64(input.streamerId), 'streamer_id', 'admins must name the streamer who will own the room (a positive 64-bit integer)');
    } else if (input.streamerId !== '0' && input.streamerId !== '' && input.streamerId !== caller.userId) {
      throw notOwnStreamerId(input.streamerId);
    }
    const title = input.title.trim();
    checkText(v, { title, category: input.category, coverKey: input.coverKey, notice: input.notice });
    v.check(input.requestId.length > 0, 'request_id', 'is required: a client-chosen idempotency key');
    v.check(input.requestId.length <= LIMITS.requestId, 'request_id', `must be at most ${LIMITS.requestId} characters`);
    v.check(!CONTROL_CHARS.test(input.requestId), 'request_id', 'must not contain control characters');
    v.throwIfAny();

    const room: NewRoom = { ...input, title, streamerId: caller.role === 'admin' ? input.streamerId : caller.userId };
    const hash = requestHash(room);
    const { room: stored, requestHash: storedHash } = await this.store.insertOnce(room, hash, this.clock());
    if (storedHash !== hash) throw idempotencyKeyReused(room.requestId);
    await this.publish(stored);
    return stored;
  }

  async update(callerOrNone: Caller | undefined, input: RoomUpdate): Promise<RoomRecord> {
    const caller = writer(callerOrNone);
    checkRoomId(input.roomId);
    const v = new Violations();
    v.check(input.paths.length > 0, 'update_mask', `must name at least one of: ${describeMaskPaths(Object.keys(UPDATABLE_PATHS))}`);
    const fields: Partial<RoomText> = {};
    for (const path of input.paths) {
      const key = maskPathTarget(UPDATABLE_PATHS, path);
      if (!key) v.add('update_mask', `unknown or read-only path ${JSON.stringify(path)}; updatable paths: ${describeMaskPaths(Object.keys(UPDATABLE_PATHS))}`);
      else fields[key] = key === 'title' ? input.text.title.trim() : input.text[key];
    }
    checkText(v, fields, 'room.');
    v.check(input.expectedVersion === '0' || input.expectedVersion === '' || isPositiveInt64(input.expectedVersion), 'expected_version', 'must be 0 (no check) or a positive version');
    v.throwIfAny();
    const expected = input.expectedVersion === '0' || input.expectedVersion === '' ? undefined : input.expectedVersion;
    return this.apply(caller, input.roomId, { kind: 'text', fields }, expected);
  }

  async startLive(caller: Caller | undefined, roomId: string): Promise<RoomRecord> {
    const who = writer(caller);
    checkRoomId(roomId);
    return this.apply(who, roomId, { kind: 'live', at: this.clock() });
  }

  async stopLive(caller: Caller | undefined, roomId: string): Promise<RoomRecord> {
    const who = writer(caller);
    checkRoomId(roomId);
    return this.apply(who, roomId, { kind: 'offline' });
  }

  /**
   * Admin only: which gift catalog a room shows is an operations decision, not the streamer's. The
   * group is checked with Gift first, since a room pointing at a missing group shows no gifts and
   * refuses every send with nothing to tell the admin why.
   */
  async assignGiftGroup(callerOrNone: Caller | undefined, roomId: string, giftGroupId: string): Promise<RoomRecord> {
    const caller = requireCaller(callerOrNone);
    if (caller.role !== 'admin') throw writeNotAllowed(caller.role, 'only admins assign gift groups');
    checkRoomId(roomId);
    if (giftGroupId !== '0' && !isPositiveInt64(giftGroupId)) throw invalidField('gift_group_id', 'must be 0 (the default group) or a positive 64-bit integer');
    if (giftGroupId !== '0' && this.giftGroups && !(await this.giftGroups.exists(giftGroupId))) throw giftGroupNotFound(giftGroupId);
    return this.apply(caller, roomId, { kind: 'gift_group', giftGroupId });
  }

  private async apply(caller: Caller, roomId: string, change: RoomChange, expectedVersion?: string): Promise<RoomRecord> {
    const guard = { ownerId: caller.role === 'admin' ? undefined : caller.userId, expectedVersion };
    const result: GuardedWrite = await this.store.applyChange(roomId, guard, change, this.clock());
    switch (result.outcome) {
      case 'not_found':
        throw roomNotFound(roomId);
      case 'not_owner':
        throw notRoomOwner(roomId);
      case 'version_conflict':
        throw versionConflict(roomId, expectedVersion ?? '0', result.room.version);
      case 'unchanged':
        return result.room;
      case 'changed':
        await this.publish(result.room);
        return result.room;
    }
  }

  /** Redis of this region and the change event; either one is enough for the write to show. */
  private async publish(room: RoomRecord): Promise<void> {
    const [cached, announced] = await Promise.allSettled([this.cache.put(room), this.events.changed(room)]);
    if (cached.status === 'rejected') this.onPublishError(cached.reason, room.roomId);
    if (announced.status === 'rejected') this.onPublishError(announced.reason, room.roomId);
    if (cached.status === 'rejected' && announced.status === 'rejected') throw writeNotVisible(room.roomId, room.version);
  }
}

function writer(caller: Caller | undefined): Caller {
  const who = requireCaller(caller);
  if (who.role !== 'streamer' && who.role !== 'admin') throw writeNotAllowed(who.role);
  return who;
}

/** Hash of the fields a CreateRoom call was made with, to tell a retry from a reused key. */
function requestHash(room: NewRoom): string {
  return createHash('sha256')
    .update(JSON.stringify([room.streamerId, room.title, room.category, room.coverKey, room.notice]))
    .digest('hex');
}
