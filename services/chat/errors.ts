import { ChatErrorReason, chatErrorReasonToJSON } from '../../gen/ts/livemesh/chat/v1/chat.js';
import { CommonErrorReason, commonErrorReasonToJSON } from '../../gen/ts/livemesh/common/v1/common.js';
import { DomainError, reasonName, type ErrorKind } from '../../kit/domain-error.js';

/** ErrorInfo.domain for every Chat-specific reason. */
const CHAT_DOMAIN = 'livemesh.chat';

function chatError(kind: ErrorKind, reason: ChatErrorReason, message: string, metadata: Record<string, string> = {}): DomainError {
  return new DomainError(kind, reasonName(chatErrorReasonToJSON, reason), message, { domain: CHAT_DOMAIN, metadata });
}

export const roomNotFound = (roomId: string) =>
  chatError('not_found', ChatErrorReason.CHAT_ERROR_REASON_ROOM_NOT_FOUND, `room ${roomId} not found`, { room_id: roomId });

export const muted = (roomId: string, end: Date) =>
  chatError('permission_denied', ChatErrorReason.CHAT_ERROR_REASON_MUTED, `you are muted in room ${roomId} until ${end.toISOString()}`, {
    room_id: roomId,
    mute_end_time: end.toISOString(),
  });

export const levelTooLow = (minLevel: number, level: number) =>
  chatError('permission_denied', ChatErrorReason.CHAT_ERROR_REASON_LEVEL_TOO_LOW, `this room needs level ${minLevel} to chat; you are level ${level}`, {
    min_level: String(minLevel),
    level: String(level),
  });

export const slowMode = (retryAfterMs: number) =>
  chatError('resource_exhausted', ChatErrorReason.CHAT_ERROR_REASON_SLOW_MODE, `slow mode: you may speak again in ${Math.ceil(retryAfterMs / 1000)} s`, {
    retry_after_ms: String(retryAfterMs),
  });

export const chatClosed = (roomId: string) =>
  chatError('failed_precondition', ChatErrorReason.CHAT_ERROR_REASON_CHAT_CLOSED, `chat in room ${roomId} is closed to viewers`, { room_id: roomId });

export const notRoomOwner = (roomId: string) =>
  chatError('permission_denied', ChatErrorReason.CHAT_ERROR_REASON_NOT_ROOM_OWNER, `only room ${roomId}'s streamer or an admin may do this`, { room_id: roomId });

export const cannotMute = (userId: string, why: string) =>
  chatError('failed_precondition', ChatErrorReason.CHAT_ERROR_REASON_CANNOT_MUTE, `user ${userId} cannot be muted: ${why}`, { user_id: userId });

export const subscriberTooSlow = (buffered: number) =>
  chatError('resource_exhausted', ChatErrorReason.CHAT_ERROR_REASON_SUBSCRIBER_TOO_SLOW, `the stream fell ${buffered} events behind and was ended; subscribe again`, {
    buffered: String(buffered),
  });

export const tooManySubscribers = (limit: number) =>
  chatError('resource_exhausted', ChatErrorReason.CHAT_ERROR_REASON_TOO_MANY_SUBSCRIBERS, `this replica serves its limit of ${limit} streams; retry on another replica`, {
    limit: String(limit),
  });

export const versionConflict = (roomId: string, expected: string, actual: string) =>
  chatError('aborted', ChatErrorReason.CHAT_ERROR_REASON_VERSION_CONFLICT, `room ${roomId}'s policy is at version ${actual}, not ${expected}; read it again and retry`, {
    room_id: roomId,
    expected_version: expected,
    current_version: actual,
  });

/** The common per-user rate limit (domain "livemesh", reason RATE_LIMITED). */
export const rateLimited = (retryAfterMs: number) =>
  new DomainError('resource_exhausted', 'RATE_LIMITED', `too many messages; retry in ${retryAfterMs} ms`, { metadata: { retry_after_ms: String(retryAfterMs) } });

/** A dependency this request needs is not configured or not reachable. */
export const dependencyUnavailable = (what: string) => new DomainError('unavailable', 'DEPENDENCY_UNAVAILABLE', what);

/**
 * This replica is shutting down (common domain "livemesh", reason DRAINING): how its Subscribe
 * streams end, so a consumer reconnects (and reaches another replica) instead of taking an OK end
 * of stream for "no more events".
 */
export const draining = () =>
  new DomainError('unavailable', reasonName(commonErrorReasonToJSON, CommonErrorReason.COMMON_ERROR_REASON_DRAINING), 'this replica is shutting down; subscribe again to continue on another replica');
