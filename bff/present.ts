/**
 * Upstream messages → the JSON mobile clients get: only the fields a screen shows (every byte is
 * paid for once per viewer, seed 003), enums as lower-case words, int64 values as strings (ts-proto
 * already gives strings), times as ISO strings.
 */
import { EventPriority, RoomNoticeKind, type RoomEvent } from '../gen/ts/livemesh/chat/v1/chat.js';
import { Asset, Role } from '../gen/ts/livemesh/common/v1/common.js';
import { GiftStatus, OrderState, type Gift, type Order } from '../gen/ts/livemesh/gift/v1/gift.js';
import type { Balance, LevelInfo } from '../gen/ts/livemesh/ledger/v1/ledger.js';
import type { RankEntry } from '../gen/ts/livemesh/ranking/v1/ranking.js';
import { RoomStatus, type Room } from '../gen/ts/livemesh/room/v1/room.js';

/** The Room fields a screen needs; also the read mask, so nothing else leaves Room's Redis. */
export const ROOM_FIELDS = ['room_id', 'streamer_id', 'title', 'category', 'cover_key', 'status', 'notice', 'live_start_time', 'version'];

const iso = (d: Date | undefined) => d?.toISOString() ?? null;

export function presentRoom(r: Room) {
  return {
    id: r.roomId,
    streamerId: r.streamerId,
    title: r.title,
    category: r.category,
    coverKey: r.coverKey,
    notice: r.notice,
    live: r.status === RoomStatus.ROOM_STATUS_LIVE,
    liveSince: r.status === RoomStatus.ROOM_STATUS_LIVE ? iso(r.liveStartTime) : null,
    version: r.version,
  };
}

function presentGift(g: Gift) {
  return { id: g.giftId, name: g.name, priceMinor: g.priceMinor, iconKey: g.iconKey, effectKey: g.effectKey };
}

/** Only active gifts appear on the gift bar. */
export function presentGifts(gifts: Gift[]) {
  return gifts.filter((g) => g.status !== GiftStatus.GIFT_STATUS_DISABLED).map(presentGift);
}

export function presentRank(e: RankEntry) {
  return { rank: e.rank, userId: e.userId, name: e.userName, scoreMinor: e.scoreMinor };
}

const ORDER_STATES: Record<number, string> = {
  [OrderState.ORDER_STATE_CREATED]: 'created',
  [OrderState.ORDER_STATE_PAID]: 'paid',
  [OrderState.ORDER_STATE_DONE]: 'done',
  [OrderState.ORDER_STATE_FAILED]: 'failed',
};

export function presentOrder(o: Order) {
  return {
    id: o.orderId,
    state: ORDER_STATES[o.state] ?? 'unknown',
    roomId: o.roomId,
    senderId: o.senderId,
    giftId: o.giftId,
    count: o.count,
    amountMinor: o.amountMinor,
    comboCount: o.comboCount,
    createdAt: iso(o.createTime),
    paidAt: iso(o.paidTime),
  };
}

export function presentWallet(balances: Balance[], level: LevelInfo | undefined) {
  const coin = balances.find((b) => b.asset === Asset.ASSET_COIN);
  return {
    coinMinor: coin?.amountMinor ?? '0',
    level: level ? { level: level.level, expMinor: level.expMinor, levelStartExpMinor: level.levelStartExpMinor, nextLevelExpMinor: level.nextLevelExpMinor } : null,
  };
}

const PRIORITY: Record<number, string> = {
  [EventPriority.EVENT_PRIORITY_LOW]: 'low',
  [EventPriority.EVENT_PRIORITY_NORMAL]: 'normal',
  [EventPriority.EVENT_PRIORITY_HIGH]: 'high',
  [EventPriority.EVENT_PRIORITY_CRITICAL]: 'critical',
};

const NOTICE: Record<number, string> = {
  [RoomNoticeKind.ROOM_NOTICE_KIND_LIVE_STARTED]: 'live_started',
  [RoomNoticeKind.ROOM_NOTICE_KIND_LIVE_STOPPED]: 'live_stopped',
  [RoomNoticeKind.ROOM_NOTICE_KIND_ONLINE_COUNT]: 'online_count',
  [RoomNoticeKind.ROOM_NOTICE_KIND_POLICY_CHANGED]: 'policy_changed',
  [RoomNoticeKind.ROOM_NOTICE_KIND_ANNOUNCEMENT]: 'announcement',
};

const ROLE: Record<number, string> = {
  [Role.ROLE_VIEWER]: 'viewer',
  [Role.ROLE_STREAMER]: 'streamer',
  [Role.ROLE_ADMIN]: 'admin',
};

/** A room event as JSON (for the room screen's messages and for WebSocket clients that chose JSON). */
export function presentEvent(e: RoomEvent) {
  const base = { seq: e.seq, at: iso(e.eventTime), priority: PRIORITY[e.priority] ?? 'normal' };
  if (e.chat) {
    const c = e.chat;
    return { ...base, type: 'chat' as const, chat: { id: c.messageId, senderId: c.senderId, senderName: c.senderName, senderLevel: c.senderLevel, senderRole: ROLE[c.senderRole] ?? null, text: c.text, mergedCount: c.mergedCount } };
  }
  if (e.gift) {
    const g = e.gift;
    return { ...base, type: 'gift' as const, gift: { orderId: g.orderId, senderId: g.senderId, senderName: g.senderName, senderLevel: g.senderLevel, giftId: g.giftId, count: g.count, comboCount: g.comboCount, amountMinor: g.amountMinor } };
  }
  if (e.likes) return { ...base, type: 'likes' as const, likes: { count: e.likes.likeCount, total: e.likes.totalLikeCount } };
  if (e.room) return { ...base, type: 'room' as const, room: { title: e.room.title, notice: e.room.notice, version: e.room.version } };
  if (e.notice) return { ...base, type: 'notice' as const, notice: { kind: NOTICE[e.notice.kind] ?? 'unknown', onlineCount: e.notice.onlineCount, text: e.notice.text } };
  return { ...base, type: 'unknown' as const };
}
