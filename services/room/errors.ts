import { RoomErrorReason, roomErrorReasonToJSON } from '../../gen/ts/livemesh/room/v1/room.js';
import { DomainError, reasonName, type ErrorKind } from '../kit/domain-error.js';

/** ErrorInfo.domain for every Room-specific reason. */
export const ROOM_DOMAIN = 'livemesh.room';

function roomError(kind: ErrorKind, reason: RoomErrorReason, message: string, metadata: Record<string, string> = {}): DomainError {
  return new DomainError(kind, reasonName(roomErrorReasonToJSON, reason), message, { domain: ROOM_DOMAIN, metadata });
}

export const roomNotFound = (roomId: string) =>
  roomError('not_found', RoomErrorReason.ROOM_ERROR_REASON_ROOM_NOT_FOUND, `room ${roomId} not found`, { room_id: roomId });

export const writeNotAllowed = (role: string) =>
  roomError('permission_denied', RoomErrorReason.ROOM_ERROR_REASON_WRITE_NOT_ALLOWED, `role ${role} may not write rooms; only streamers and admins may`, { role });

export const notOwnStreamerId = (streamerId: string) =>
  roomError('permission_denied', RoomErrorReason.ROOM_ERROR_REASON_NOT_ROOM_OWNER, `streamers create rooms only for themselves; streamer_id ${streamerId} is someone else`, {
    streamer_id: streamerId,
  });
