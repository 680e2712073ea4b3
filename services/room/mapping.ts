import { Room, RoomStatus } from '../../gen/ts/livemesh/room/v1/room.js';
import { invalidField } from '../kit/domain-error.js';
import type { RoomRecord } from './rooms.js';

/** Domain room -> wire room. */
export function toProtoRoom(r: RoomRecord): Room {
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

/** Room field names as they appear in a FieldMask (proto names), mapped to the TypeScript property. */
export const ROOM_MASK_PATHS: Record<string, keyof Room> = {
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
 * Validates a read mask and returns the properties to keep, or undefined for "all fields".
 * An unknown path is a client bug worth reporting, not something to ignore.
 */
export function parseReadMask(paths: string[] | undefined, field = 'read_mask'): Array<keyof Room> | undefined {
  if (!paths || paths.length === 0) return undefined;
  return paths.map((p) => {
    const prop = ROOM_MASK_PATHS[p];
    if (!prop) throw invalidField(field, `unknown path ${JSON.stringify(p)}; valid paths: ${Object.keys(ROOM_MASK_PATHS).join(', ')}`);
    return prop;
  });
}

/** Keeps only the masked properties; the rest take their proto default. */
export function applyMask(room: Room, keep: Array<keyof Room> | undefined): Room {
  if (!keep) return room;
  const out = Room.fromPartial({});
  for (const k of keep) (out as unknown as Record<string, unknown>)[k] = room[k];
  return out;
}
