import { invalidField } from '../../kit/domain-error.js';
import { isPositiveInt64, requireRole, type Caller } from '../../kit/identity.js';
import { RETENTION, type BoardRef, type Boards, type PaidGift } from './boards.js';
import { dayOutOfRange, rebuildInProgress, rebuildSourceUnavailable } from './errors.js';
import type { BoardContent, BoardStore } from './ports.js';

/** Paid orders (PAID or DONE) from the Gift service, page by page. */
export interface OrderSource {
  paidOrders(filter: { roomId?: string; paidFrom: Date; paidTo?: Date }): AsyncIterable<PaidGift[]>;
}

export interface RebuildTarget {
  roomId?: string | undefined;
  day?: string | undefined;
}

export interface RebuildResult {
  ordersScanned: number;
  boardsRebuilt: number;
  entriesChanged: number;
  applied: boolean;
  durationMs: number;
}

/** A rebuild never holds its locks longer than this, even if the replica running it dies. */
const LOCK_MS = 5 * 60_000;

interface Tally {
  board: BoardRef;
  users: Map<string, { score: bigint; reachMs: number; name: string; nameAt: number; orders: string[] }>;
}

/**
 * RebuildRanking: recomputes boards from the Gift service's paid orders and replaces them, to
 * reconcile after an outage (a consumer that lost events beyond the stream's retention, a Redis
 * restored from an old snapshot).
 *
 * Consistency with the live consumer comes from two things. A lock on the room (or, for a day,
 * on its week) makes the consumer put back events for that target while the rebuild reads and
 * replaces, so none is applied to a board about to be overwritten. And each rebuilt board is
 * written with the set of orders it counts, so an event for an order the rebuild already counted
 * is skipped when the consumer gets it, while an order paid after the listing is applied then.
 */
export class Rebuilder {
  constructor(
    private readonly boards: Boards,
    private readonly store: BoardStore,
    private readonly source: OrderSource | undefined,
    private readonly clock: () => number = Date.now,
  ) {}

  async rebuild(caller: Caller | undefined, target: RebuildTarget, dryRun: boolean): Promise<RebuildResult> {
    requireRole(caller, ['admin']);
    const started = this.clock();
    const hasRoom = target.roomId !== undefined;
    const hasDay = target.day !== undefined;
    if (hasRoom === hasDay) throw invalidField('target', 'set exactly one of room_id or day');
    if (hasRoom && !isPositiveInt64(target.roomId ?? '')) throw invalidField('room_id', 'must be a positive 64-bit integer');
    const plan = hasRoom ? await this.roomPlan(target.roomId ?? '', started) : this.dayPlan(target.day ?? '', started);
    if (!this.source) throw rebuildSourceUnavailable();
    const source = this.source;

    if (!(await this.store.lock([plan.lock], LOCK_MS))) throw rebuildInProgress(plan.label);
    try {
      if (plan.alsoBlockedBy && (await this.store.isLocked(plan.alsoBlockedBy))) throw rebuildInProgress(plan.label);
      const tallies = new Map<string, Tally>(plan.always.map((board) => [board.key, { board, users: new Map() }]));
      let scanned = 0;
      for await (const page of source.paidOrders(plan.filter)) {
        for (const gift of page) {
          scanned++;
          for (const c of this.boards.forGift(gift)) {
            if (!plan.wants(c.board)) continue;
            let tally = tallies.get(c.board.key);
            if (!tally) tallies.set(c.board.key, (tally = { board: c.board, users: new Map() }));
            if (c.board.expireAt > tally.board.expireAt) tally.board = c.board;
            const paidMs = gift.paidAt.getTime();
            const u = tally.users.get(c.userId) ?? { score: 0n, reachMs: 0, name: '', nameAt: -1, orders: [] };
            u.score += BigInt(gift.amountMinor);
            u.reachMs = Math.max(u.reachMs, paidMs);
            if (c.name && paidMs >= u.nameAt) Object.assign(u, { name: c.name, nameAt: paidMs });
            u.orders.push(gift.orderId);
            tally.users.set(c.userId, u);
          }
        }
      }
      const contents: BoardContent[] = [...tallies.values()].map(({ board, users }) => ({
        board,
        entries: [...users].map(([userId, u]) => ({ userId, score: u.score.toString(), reachAt: new Date(u.reachMs), name: u.name, orders: u.orders })),
      }));
      let changed = 0;
      for (const { board, entries } of contents) {
        const stored = await this.store.scores(board.key);
        for (const e of entries) {
          if (stored.get(e.userId) !== e.score) changed++;
          stored.delete(e.userId);
        }
        changed += stored.size;
      }
      if (!dryRun) await this.store.replace(contents);
      return { ordersScanned: scanned, boardsRebuilt: contents.length, entriesChanged: changed, applied: !dryRun, durationMs: this.clock() - started };
    } finally {
      await this.store.unlock([plan.lock]);
    }
  }

  /** A room's current boards: its live session's (if any), today's and this week's. */
  private async roomPlan(roomId: string, now: number) {
    const week = this.boards.room(roomId, 'week', now);
    const day = this.boards.room(roomId, 'day', now);
    const liveStart = await this.store.liveStart(roomId);
    const from = new Date(Math.min(week.start.getTime(), liveStart?.getTime() ?? Infinity));
    const live = liveStart ? this.boards.live(roomId, liveStart, now) : undefined;
    return {
      label: `room ${roomId}`,
      lock: { room: roomId },
      alsoBlockedBy: { week: this.boards.calendar.week(now).id },
      filter: { roomId, paidFrom: from },
      always: live ? [live, day, week] : [day, week],
      wants: (b: BoardRef) => b.key === day.key || b.key === week.key || b.key === live?.key,
    };
  }

  /** One day's room and streamer DAY boards, and every WEEK board of its week. */
  private dayPlan(dayText: string, now: number) {
    const day = this.boards.calendar.parseDay(dayText);
    if (!day) throw invalidField('day', 'must be a calendar date YYYY-MM-DD');
    if (day.start.getTime() > now) throw dayOutOfRange(dayText, 'is in the future');
    if (day.end.getTime() + RETENTION.dayMs < now) throw dayOutOfRange(dayText, `is older than day boards are kept (${RETENTION.dayMs / 86_400_000} days after the day)`);
    const week = this.boards.calendar.week(day.start);
    const streamerDay = this.boards.streamer('day', day.start);
    const streamerWeek = this.boards.streamer('week', day.start);
    return {
      label: `day ${dayText}`,
      lock: { week: week.id },
      alsoBlockedBy: undefined,
      filter: { paidFrom: week.start, paidTo: new Date(Math.min(week.end.getTime(), now)) },
      always: [streamerDay, streamerWeek],
      wants: (b: BoardRef) => b.period === 'week' || (b.period === 'day' && b.key.endsWith(`:D:${day.id}`)),
    };
  }
}
