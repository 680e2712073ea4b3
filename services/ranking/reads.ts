import { LRUCache } from 'lru-cache';
import { invalidField } from '../../kit/domain-error.js';
import { isPositiveInt64, requireCaller, type Caller } from '../../kit/identity.js';
import { RANKING_CONTRACT } from '../../kit/contract-rules.js';
import { untilCurrent } from '../../kit/lru-fetch.js';
import type { BoardRef, Boards, Period } from './boards.js';
import { periodNotSupported } from './errors.js';
import type { BoardStore, Entry } from './ports.js';

export const LIMITS = { ...RANKING_CONTRACT, defaultTop: 10, neighbours: 10 } as const;

export interface RankedEntry extends Entry {
  /** 1-based; 0 when the user is not on the board. */
  rank: number;
}

export interface BoardView {
  entries: RankedEntry[];
  total: number;
  /** Undefined for a LIVE board of a room with no broadcast on record. */
  periodStart: Date | undefined;
  snapshotAt: Date;
}

export interface UserRankView {
  entry: RankedEntry;
  above: RankedEntry[];
  below: RankedEntry[];
  gapToAbove: string;
  total: number;
  periodStart: Date | undefined;
  snapshotAt: Date;
}

/** Which board a snapshot holds: a room's (roomId set) or the streamer board's. */
interface BoardSpec {
  roomId: string | undefined;
  period: Period;
}

interface Snapshot {
  top: Entry[];
  total: number;
  periodStart: Date | undefined;
  at: Date;
}

const liveKey = (roomId: string) => `live:${roomId}`;

const ranked = (entries: Entry[], first: number): RankedEntry[] => entries.map((e, i) => ({ ...e, rank: first + i + 1 }));

/** A period the request must name (UNSPECIFIED or an unknown number maps to undefined). */
function requirePeriod(period: Period | undefined): Period {
  if (!period) throw invalidField('period', 'must be LIVE, DAY or WEEK');
  return period;
}

function checkLimit(limit: number): number {
  const n = limit === 0 ? LIMITS.defaultTop : limit;
  if (!Number.isInteger(n) || n < 1 || n > LIMITS.top) throw invalidField('limit', `must be between 1 and ${LIMITS.top} (0 means ${LIMITS.defaultTop})`);
  return n;
}

/**
 * Board reads. The top of each board read is kept per replica and refreshed at most every
 * `snapshotMs`: during a big event every viewer's client polls the same few boards, and each
 * replica then costs Redis one read per board per interval, whatever the number of viewers.
 * While a refresh is in flight, callers get the previous snapshot (its time is in the answer),
 * but only while it is younger than two intervals (1 s at the default 500 ms, the proto's "about
 * every second"): the first read of a board nobody read for a while waits for a fresh one rather
 * than showing a snapshot minutes old. A new broadcast drops the room's LIVE snapshot
 * (`newBroadcast`), so the next read shows the new session at once.
 * GetUserRank is per user and goes to Redis (one script call).
 */
export class RankingReader {
  private readonly snapshots: LRUCache<string, Snapshot, BoardSpec>;
  /** The oldest snapshot served while a refresh is in flight. */
  private readonly maxStaleMs: number;

  constructor(
    private readonly boards: Boards,
    private readonly store: BoardStore,
    opts: { snapshotMs: number; max: number },
    private readonly clock: () => number = Date.now,
  ) {
    this.maxStaleMs = 2 * opts.snapshotMs;
    this.snapshots = new LRUCache<string, Snapshot, BoardSpec>({
      max: opts.max,
      ttl: opts.snapshotMs,
      allowStale: true,
      fetchMethod: (_key, _stale, { context }) => this.load(context),
    });
  }

  async roomTop(roomId: string, periodOrNone: Period | undefined, limit: number): Promise<BoardView> {
    if (!isPositiveInt64(roomId)) throw invalidField('room_id', 'must be a positive 64-bit integer');
    const period = requirePeriod(periodOrNone);
    const n = checkLimit(limit);
    return this.view(period === 'live' ? liveKey(roomId) : this.boards.room(roomId, period, this.clock()).key, { roomId, period }, n);
  }

  async streamerTop(periodOrNone: Period | undefined, limit: number): Promise<BoardView> {
    const period = requirePeriod(periodOrNone);
    if (period === 'live') throw periodNotSupported('the streamer board has DAY and WEEK only');
    const n = checkLimit(limit);
    return this.view(this.boards.streamer(period, this.clock()).key, { roomId: undefined, period }, n);
  }

  async userRank(callerOrNone: Caller | undefined, input: { roomId: string; period: Period | undefined; userId: string; neighbours: number }): Promise<UserRankView> {
    const period = requirePeriod(input.period);
    if (input.roomId !== '0' && !isPositiveInt64(input.roomId)) throw invalidField('room_id', 'must be 0 (the streamer board) or a positive 64-bit integer');
    if (input.roomId === '0' && period === 'live') throw periodNotSupported('the streamer board has DAY and WEEK only');
    if (input.userId !== '0' && !isPositiveInt64(input.userId)) throw invalidField('user_id', 'must be 0 (the caller) or a positive 64-bit integer');
    if (!Number.isInteger(input.neighbours) || input.neighbours < 0 || input.neighbours > LIMITS.neighbours) throw invalidField('neighbours', `must be between 0 and ${LIMITS.neighbours}`);
    const userId = input.userId === '0' ? requireCaller(callerOrNone).userId : input.userId;

    const board = await this.resolve(input.roomId === '0' ? undefined : input.roomId, period);
    const snapshotAt = new Date(this.clock());
    const empty: RankedEntry = { userId, score: '0', reachAt: new Date(0), name: '', rank: 0 };
    if (!board) return { entry: empty, above: [], below: [], gapToAbove: '0', total: 0, periodStart: undefined, snapshotAt };
    const around = await this.store.around(board.key, userId, input.neighbours);
    if (around.rank < 0) return { entry: empty, above: [], below: [], gapToAbove: '0', total: around.total, periodStart: board.start, snapshotAt };
    const all = ranked(around.entries, around.first);
    const at = around.rank - around.first;
    const entry = all[at] ?? empty;
    const above = all.slice(0, at);
    const next = above[above.length - 1];
    return {
      entry,
      above,
      below: all.slice(at + 1),
      gapToAbove: next ? String(BigInt(next.score) - BigInt(entry.score) + 1n) : '0',
      total: around.total,
      periodStart: board.start,
      snapshotAt,
    };
  }

  /**
   * A room went live with a new broadcast (a room change carried its start, already recorded in
   * the store): a LIVE snapshot of the room that shows an older session, or is still being
   * taken (it may have read the old start), is dropped.
   */
  newBroadcast(roomId: string, start: Date): void {
    const held = this.snapshots.peek(liveKey(roomId), { allowStale: true });
    if (!held || (held.periodStart?.getTime() ?? 0) < start.getTime()) this.snapshots.delete(liveKey(roomId));
  }

  /** `key` names the snapshot: the board's key, or live:<room> (the board changes with each broadcast). */
  private async view(key: string, spec: BoardSpec, n: number): Promise<BoardView> {
    const read = () => {
      // A stale snapshot is served during its refresh only while it is recent enough.
      const held = this.snapshots.peek(key, { allowStale: true });
      const recent = held !== undefined && this.clock() - held.at.getTime() <= this.maxStaleMs;
      return this.snapshots.fetch(key, { context: spec, allowStale: recent });
    };
    const snap = (await untilCurrent(read)) as Snapshot;
    return { entries: ranked(snap.top.slice(0, n), 0), total: snap.total, periodStart: snap.periodStart, snapshotAt: snap.at };
  }

  /** The board a read means now; undefined for LIVE when the room has no broadcast on record. */
  private async resolve(roomId: string | undefined, period: Period): Promise<BoardRef | undefined> {
    const now = this.clock();
    if (roomId === undefined) return this.boards.streamer(period === 'week' ? 'week' : 'day', now);
    if (period !== 'live') return this.boards.room(roomId, period, now);
    const start = await this.store.liveStart(roomId);
    return start ? this.boards.live(roomId, start, now) : undefined;
  }

  private async load(spec: BoardSpec): Promise<Snapshot> {
    const at = new Date(this.clock());
    const board = await this.resolve(spec.roomId, spec.period);
    if (!board) return { top: [], total: 0, periodStart: undefined, at };
    const { entries, total } = await this.store.top(board.key, LIMITS.top);
    return { top: entries, total, periodStart: board.start, at };
  }
}
