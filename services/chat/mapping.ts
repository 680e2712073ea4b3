import type { Duration } from '../../gen/ts/google/protobuf/duration.js';
import { Role as ProtoRole } from '../../gen/ts/livemesh/common/v1/common.js';
import { EventPriority, RoomEvent, RoomNoticeKind, type RoomNotice, type RoomPolicy } from '../../gen/ts/livemesh/chat/v1/chat.js';
import { durationToMs, msToDuration } from '../../kit/contract-rules.js';
import { invalidField } from '../../kit/domain-error.js';
import type { Role } from '../../kit/identity.js';
import type { ChatEvent, Notice, Payload, Priority } from './events.js';
import type { Policy } from './model.js';

export function toProtoPolicy(p: Policy): RoomPolicy {
  return {
    roomId: p.roomId,
    minLevel: p.minLevel,
    slowMode: p.slowModeMs > 0 ? msToDuration(p.slowModeMs) : undefined,
    chatClosed: p.chatClosed,
    version: p.version,
    updateTime: p.updatedAt,
    updatedBy: p.updatedBy,
  };
}

/** The inverse of toProtoPolicy, for policy notices read back from the bus. */
function fromProtoPolicy(p: RoomPolicy): Policy {
  return {
    roomId: p.roomId,
    minLevel: p.minLevel,
    slowModeMs: p.slowMode ? durationToMs(p.slowMode) : 0,
    chatClosed: p.chatClosed,
    version: p.version,
    updatedAt: p.updateTime,
    updatedBy: p.updatedBy,
  };
}

/** A Duration as milliseconds; negative or out-of-range values are the caller's mistake. */
export function durationMs(d: Duration | undefined, field: string): number {
  if (!d) return 0;
  const seconds = Number(d.seconds);
  if (!Number.isSafeInteger(seconds) || seconds < 0 || d.nanos < 0 || d.nanos > 999_999_999) throw invalidField(field, 'must be a non-negative duration');
  return durationToMs(d);
}

const PRIORITY: Record<Priority, EventPriority> = {
  low: EventPriority.EVENT_PRIORITY_LOW,
  normal: EventPriority.EVENT_PRIORITY_NORMAL,
  high: EventPriority.EVENT_PRIORITY_HIGH,
  critical: EventPriority.EVENT_PRIORITY_CRITICAL,
};

const PRIORITY_OF = new Map<EventPriority, Priority>(Object.entries(PRIORITY).map(([d, p]) => [p, d as Priority]));

/**
 * Subscribe's min_priority. An unknown value is not refused here but handed on as 'unknown', so the
 * domain refuses it in its own order of checks (the room id first), as it always has.
 */
export function fromProtoMinPriority(p: EventPriority): Priority | 'all' | 'unknown' {
  if (p === EventPriority.EVENT_PRIORITY_UNSPECIFIED) return 'all';
  return PRIORITY_OF.get(p) ?? 'unknown';
}

const ROLE: Record<Role, ProtoRole> = { viewer: ProtoRole.ROLE_VIEWER, streamer: ProtoRole.ROLE_STREAMER, admin: ProtoRole.ROLE_ADMIN };
const ROLE_OF = new Map<ProtoRole, Role>(Object.entries(ROLE).map(([d, p]) => [p, d as Role]));

const NOTICE_KIND = {
  live_started: RoomNoticeKind.ROOM_NOTICE_KIND_LIVE_STARTED,
  live_stopped: RoomNoticeKind.ROOM_NOTICE_KIND_LIVE_STOPPED,
  online_count: RoomNoticeKind.ROOM_NOTICE_KIND_ONLINE_COUNT,
  policy_changed: RoomNoticeKind.ROOM_NOTICE_KIND_POLICY_CHANGED,
  announcement: RoomNoticeKind.ROOM_NOTICE_KIND_ANNOUNCEMENT,
} as const satisfies Record<Notice['kind'], RoomNoticeKind>;

function toProtoNotice(n: Notice): RoomNotice {
  return {
    kind: NOTICE_KIND[n.kind],
    onlineCount: n.kind === 'online_count' ? n.online : '0',
    text: n.kind === 'announcement' ? n.text : '',
    policy: n.kind === 'policy_changed' ? toProtoPolicy(n.policy) : undefined,
  };
}

function fromProtoNotice(n: RoomNotice): Notice | undefined {
  switch (n.kind) {
    case RoomNoticeKind.ROOM_NOTICE_KIND_LIVE_STARTED:
      return { kind: 'live_started' };
    case RoomNoticeKind.ROOM_NOTICE_KIND_LIVE_STOPPED:
      return { kind: 'live_stopped' };
    case RoomNoticeKind.ROOM_NOTICE_KIND_ONLINE_COUNT:
      return { kind: 'online_count', online: n.onlineCount };
    case RoomNoticeKind.ROOM_NOTICE_KIND_POLICY_CHANGED:
      return n.policy ? { kind: 'policy_changed', policy: fromProtoPolicy(n.policy) } : undefined;
    case RoomNoticeKind.ROOM_NOTICE_KIND_ANNOUNCEMENT:
      return { kind: 'announcement', text: n.text };
    default:
      return undefined;
  }
}

/**
 * One translation per event, however many subscribers it goes to: a room's live events reach
 * every Subscribe stream on the replica as the same object, and the fan-out must stay as cheap as
 * when the bus handed out protobuf directly.
 */
const translated = new WeakMap<ChatEvent, RoomEvent>();

export function toProtoEvent(e: ChatEvent): RoomEvent {
  let out = translated.get(e);
  if (!out) {
    out = { seq: e.seq, priority: PRIORITY[e.priority], eventTime: e.at, roomId: e.roomId, ...toProtoPayload(e.payload) };
    translated.set(e, out);
  }
  return out;
}

function toProtoPayload(p: Payload): Pick<RoomEvent, 'chat' | 'gift' | 'likes' | 'notice' | 'room'> {
  if ('chat' in p) {
    const { senderRole, ...rest } = p.chat;
    return { chat: { ...rest, senderRole: senderRole ? ROLE[senderRole] : ProtoRole.ROLE_UNSPECIFIED } };
  }
  if ('notice' in p) return { notice: toProtoNotice(p.notice) };
  return p;
}

/**
 * The domain form of a RoomEvent, or undefined for one Chat cannot represent (no payload, a notice
 * kind this version does not know). UNSPECIFIED and unknown priorities read as NORMAL, as the
 * contract tells consumers to treat them.
 */
function fromProtoEvent(e: RoomEvent): ChatEvent | undefined {
  const payload = fromProtoPayload(e);
  if (!payload) return undefined;
  return { roomId: e.roomId, seq: e.seq, priority: PRIORITY_OF.get(e.priority) ?? 'normal', at: e.eventTime, payload };
}

function fromProtoPayload(e: RoomEvent): Payload | undefined {
  if (e.chat) return { chat: { ...e.chat, senderRole: ROLE_OF.get(e.chat.senderRole) } };
  if (e.gift) return { gift: e.gift };
  if (e.likes) return { likes: e.likes };
  if (e.room) return { room: e.room };
  if (e.notice) {
    const notice = fromProtoNotice(e.notice);
    return notice && { notice };
  }
  return undefined;
}

/** The bytes that go on `chat.room.<id>` and into the recent list: the RoomEvent the BFF decodes. */
export const encodeEvent = (e: ChatEvent): Uint8Array => RoomEvent.encode(toProtoEvent(e)).finish();

/** Throws on bytes that are not a RoomEvent; undefined for one Chat cannot represent. */
export const decodeEvent = (bytes: Uint8Array): ChatEvent | undefined => fromProtoEvent(RoomEvent.decode(bytes));
