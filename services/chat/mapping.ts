import type { Duration } from '../../gen/ts/google/protobuf/duration.js';
import type { RoomPolicy } from '../../gen/ts/livemesh/chat/v1/chat.js';
import { invalidField } from '../../kit/domain-error.js';
import type { Policy } from './model.js';

export function toProtoPolicy(p: Policy): RoomPolicy {
  return {
    roomId: p.roomId,
    minLevel: p.minLevel,
    slowMode: p.slowModeMs > 0 ? { seconds: String(p.slowModeMs / 1000), nanos: 0 } : undefined,
    chatClosed: p.chatClosed,
    version: p.version,
    updateTime: p.updatedAt,
    updatedBy: p.updatedBy,
  };
}

/** A Duration as milliseconds; negative or out-of-range values are the caller's mistake. */
export function durationMs(d: Duration | undefined, field: string): number {
  if (!d) return 0;
  const seconds = Number(d.seconds);
  if (!Number.isSafeInteger(seconds) || seconds < 0 || d.nanos < 0 || d.nanos > 999_999_999) throw invalidField(field, 'must be a non-negative duration');
  return seconds * 1000 + Math.floor(d.nanos / 1e6);
}
