import type { Calendar, Span } from './calendar.js';

export type Period = 'live' | 'day' | 'week';

/** How long boards outlive their period (and so how far back a rebuild may reach). */
export const RETENTION = {
  /** A day board is kept this long after its day ends. */
  dayMs: 7 * 86_400_000,
  /** A week board is kept this long after its week ends. */
  weekMs: 35 * 86_400_000,
  /** A live board is kept this long after its last gift: the last session stays visible while offline. */
  liveMs: 3 * 86_400_000,
} as const;

/** One leaderboard in Redis. */
export interface BoardRef {
  key: string;
  period: Period;
  /** The period's start (for LIVE, the broadcast's start). */
  start: Date;
  /** Redis drops the board at this instant (epoch ms). */
  expireAt: number;
}

/** A paid gift as the boards see it (from a GiftPaidEvent, or from an order during a rebuild). */
export interface PaidGift {
  orderId: string;
  roomId: string;
  streamerId: string;
  senderId: string;
  senderName: string;
  /** COIN minor units, exact (decimal string). */
  amountMinor: string;
  paidAt: Date;
  /** The broadcast the gift was sent in; undefined if the room was not live (no LIVE board). */
  liveStartAt: Date | undefined;
}

/** One board a gift adds to, and whose score it raises. */
export interface Contribution {
  board: BoardRef;
  userId: string;
  /** Shown on room boards; streamer boards carry no names. */
  name: string;
}

/**
 * Which boards exist and which ones a gift touches: room boards rank the room's senders, the
 * streamer boards rank streamers by what they received. Keys (under REDIS_PREFIX):
 *
 *   k:{rk:<room>}:L:<live start ms>   k:{rk:<room>}:D:<yyyyMMdd>   k:{rk:<room>}:W:<yyyy>W<ww>
 *   k:{rk:s}:D:<yyyyMMdd>             k:{rk:s}:W:<yyyy>W<ww>
 *
 * The hash tag puts a room's boards in one Redis Cluster slot (a gift updates them in one script)
 * and the streamer boards in another: rooms spread over the Cluster, and a gift costs two scripts.
 */
export class Boards {
  constructor(readonly calendar: Calendar) {}

  live(roomId: string, liveStart: Date, lastGiftAt: number): BoardRef {
    return { key: `k:{rk:${roomId}}:L:${liveStart.getTime()}`, period: 'live', start: liveStart, expireAt: lastGiftAt + RETENTION.liveMs };
  }

  room(roomId: string, period: 'day' | 'week', at: Date | number): BoardRef {
    const span = this.span(period, at);
    return { key: `k:{rk:${roomId}}:${period === 'day' ? 'D' : 'W'}:${span.id}`, period, start: span.start, expireAt: expiry(period, span) };
  }

  streamer(period: 'day' | 'week', at: Date | number): BoardRef {
    const span = this.span(period, at);
    return { key: `k:{rk:s}:${period === 'day' ? 'D' : 'W'}:${span.id}`, period, start: span.start, expireAt: expiry(period, span) };
  }

  /** Every board a gift adds to. */
  forGift(g: PaidGift): Contribution[] {
    const viewer = (board: BoardRef): Contribution => ({ board, userId: g.senderId, name: g.senderName });
    const streamer = (board: BoardRef): Contribution => ({ board, userId: g.streamerId, name: '' });
    const out = [viewer(this.room(g.roomId, 'day', g.paidAt)), viewer(this.room(g.roomId, 'week', g.paidAt)), streamer(this.streamer('day', g.paidAt)), streamer(this.streamer('week', g.paidAt))];
    if (g.liveStartAt) out.unshift(viewer(this.live(g.roomId, g.liveStartAt, g.paidAt.getTime())));
    return out;
  }

  private span(period: 'day' | 'week', at: Date | number): Span {
    return period === 'day' ? this.calendar.day(at) : this.calendar.week(at);
  }
}

function expiry(period: 'day' | 'week', span: Span): number {
  return span.end.getTime() + (period === 'day' ? RETENTION.dayMs : RETENTION.weekMs);
}
