import { Room, RoomStatus } from '../../gen/ts/livemesh/room/v1/room.js';
import { invalidField } from '../../kit/domain-error.js';
import { describeMaskPaths, maskPathTarget } from '../../kit/field-mask.js';
import type { PartialRoom, RoomRecord } from './rooms.js';

/** A room's zero values, under whatever a partial (masked) read did not fetch. */
const EMPTY: RoomRecord = {
  roomId: '0',
  streamerId: '0',
  title: '',
  category: '',
  coverKey: '',
  notice: '',
  status: 'offline',
  giftGroupId: '0',
  version: '0',
  createdAt: new Date(0),
  updatedAt: new Date(0),
  liveStartedAt: null,
};

/** Domain room (possibly partial) -> wire room. */
export function toProtoRoom(partial: RoomRecord | PartialRoom): Room {
  const r: RoomRecord = { ...EMPTY, ...partial };
  return {
    roomId: r.roomId,
    streamerId: r.streamerId,
    title: r.title,
    category: r.category,
    coverKey: r.coverKey,
    notice: r.notice,
    status: r.status === 'live' ? RoomStatus.ROOM_STATUS_LIVE : RoomStatus.ROOM_STATUS_OFFLINE,
    giftGroupId: r.giftGroupId,
    version: r.version,
    createTime: r.createdAt,
    updateTime: r.updatedAt,
    liveStartTime: r.liveStartedAt ?? undefined,
  };
}

/** Wire room -> domain room, for change events. */
export function fromProtoRoom(p: Room): RoomRecord {
  return {
    roomId: p.roomId,
    streamerId: p.streamerId,
    title: p.title,
    category: p.category,
    coverKey: p.coverKey,
    notice: p.notice,
    status: p.status === RoomStatus.ROOM_STATUS_LIVE ? 'live' : 'offline',
    giftGroupId: p.giftGroupId,
    version: p.version,
    createdAt: p.createTime ?? new Date(0),
    updatedAt: p.updateTime ?? new Date(0),
    liveStartedAt: p.liveStartTime ?? null,
  };
}

/** Wire property -> domain field, so a read mask can say which Redis fields to fetch. */
const RECORD_FIELD: Record<keyof Room, keyof RoomRecord> = {
  roomId: 'roomId',
  streamerId: 'streamerId',
  title: 'title',
  category: 'category',
  coverKey: 'coverKey',
  notice: 'notice',
  status: 'status',
  giftGroupId: 'giftGroupId',
  version: 'version',
  createTime: 'createdAt',
  updateTime: 'updatedAt',
  liveStartTime: 'liveStartedAt',
};

export function recordFields(keep: Array<keyof Room>): Array<keyof RoomRecord> {
  return keep.map((k) => RECORD_FIELD[k]);
}

/** Room field names as they appear in a FieldMask (proto names; the JSON spelling is accepted too, see field-mask.ts), mapped to the TypeScript property. */
const ROOM_MASK_PATHS: Record<string, keyof Room> = {
  room_id: 'roomId',
  streamer_id: 'streamerId',
  title: 'title',
  category: 'category',
  cover_key: 'coverKey',
  notice: 'notice',
  status: 'status',
  gift_group_id: 'giftGroupId',
  version: 'version',
  create_time: 'createTime',
  update_time: 'updateTime',
  live_start_time: 'liveStartTime',
};

/**
 * Validates a read mask and returns the properties to keep, or undefined for "all fields". Paths
 * may be written as in the .proto or as JSON names them (see field-mask.ts).
 * An unknown path is a client bug worth reporting, not something to ignore.
 */
export function parseReadMask(paths: string[] | undefined, field = 'read_mask'): Array<keyof Room> | undefined {
  if (!paths || paths.length === 0) return undefined;
  const keep = new Set<keyof Room>();
  for (const p of paths) {
    const prop = maskPathTarget(ROOM_MASK_PATHS, p);
    if (!prop) throw invalidField(field, `unknown path ${JSON.stringify(p)}; valid paths: ${describeMaskPaths(Object.keys(ROOM_MASK_PATHS))}`);
    keep.add(prop);
  }
  return [...keep];
}

/** Keeps only the masked properties; the rest take their proto default. */
export function applyMask(room: Room, keep: Array<keyof Room> | undefined): Room {
  if (!keep) return room;
  const out = Room.fromPartial({});
  for (const k of keep) (out as unknown as Record<string, unknown>)[k] = room[k];
  return out;
}
