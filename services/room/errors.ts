import { RoomErrorReason, roomErrorReasonToJSON } from '../../gen/ts/livemesh/room/v1/room.js';
import { DomainError, reasonName, type ErrorKind } from '../../kit/domain-error.js';

/** ErrorInfo.domain for every Room-specific reason. */
const ROOM_DOMAIN = 'livemesh.room';

function roomError(kind: ErrorKind, reason: RoomErrorReason, message: string, metadata: Record<string, string> = {}): DomainError {
  return new DomainError(kind, reasonName(roomErrorReasonToJSON, reason), message, { domain: ROOM_DOMAIN, metadata });
}

export const roomNotFound = (roomId: string) =>
  roomError('not_found', RoomErrorReason.ROOM_ERROR_REASON_ROOM_NOT_FOUND, `room ${roomId} not found`, { room_id: roomId });

export const writeNotAllowed = (role: string, why = 'only streamers and admins may') =>
  roomError('permission_denied', RoomErrorReason.ROOM_ERROR_REASON_WRITE_NOT_ALLOWED, `role ${role} may not write rooms; ${why}`, { role });

export const notOwnStreamerId = (streamerId: string) =>
  roomError('permission_denied', RoomErrorReason.ROOM_ERROR_REASON_NOT_ROOM_OWNER, `streamers create rooms only for themselves; streamer_id ${streamerId} is someone else`, {
    streamer_id: streamerId,
  });

export const notRoomOwner = (roomId: string) =>
  roomError('permission_denied', RoomErrorReason.ROOM_ERROR_REASON_NOT_ROOM_OWNER, `room ${roomId} belongs to another streamer`, { room_id: roomId });

export const versionConflict = (roomId: string, expected: string, actual: string) =>
  roomError('aborted', RoomErrorReason.ROOM_ERROR_REASON_VERSION_CONFLICT, `room ${roomId} is at version ${actual}, not ${expected}; read it again and retry`, {
    room_id: roomId,
    expected_version: expected,
    current_version: actual,
  });

/** The write is in MySQL but neither Redis nor NATS took it; retrying (or any later write) repairs it. */
export const writeNotVisible = (roomId: string, version: string) =>
  new DomainError('unavailable', 'DEPENDENCY_UNAVAILABLE', `room ${roomId} version ${version} was saved but could not be published to Redis or NATS; retry`, {
    metadata: { room_id: roomId, version },
  });

export const giftGroupNotFound = (giftGroupId: string) =>
  roomError('not_found', RoomErrorReason.ROOM_ERROR_REASON_GIFT_GROUP_NOT_FOUND, `gift group ${giftGroupId} does not exist in the Gift service`, {
    gift_group_id: giftGroupId,
  });

/** Gift could not say whether a group exists; nothing was written, so a retry is safe. */
export const giftServiceUnavailable = (giftGroupId: string, why: string) =>
  new DomainError('unavailable', 'DEPENDENCY_UNAVAILABLE', `the Gift service could not confirm that gift group ${giftGroupId} exists (${why}); nothing was changed, retry`, {
    metadata: { gift_group_id: giftGroupId },
  });
