import type { BoardRef, Contribution } from './boards.js';

/**
 * What Ranking's reads, updates and rebuilds need from the board store (Redis in production,
 * store/redis-boards.ts). Declared here so the use cases can be read without the Lua scripts.
 */

/** One place on a board. */
export interface Entry {
  userId: string;
  /** Exact total, COIN minor units (decimal string). */
  score: string;
  reachAt: Date;
  name: string;
}

export interface Top {
  entries: Entry[];
  total: number;
}

export interface Around {
  total: number;
  /** 0-based rank of the user, or -1 when they are not on the board. */
  rank: number;
  /** Entries from rank `first` on, the user included. */
  first: number;
  entries: Entry[];
}

/** Everything a rebuild writes for one board. */
export interface BoardContent {
  board: BoardRef;
  entries: Array<Entry & { orders: string[] }>;
}

/** What a rebuild holds so the live consumer puts back events for it: a room, or a whole week. */
export type RebuildLock = { room: string } | { week: string };

export interface BoardStore {
  /**
   * Adds one order to every board it touches, once: boards that already counted it are skipped.
   * Returns how many boards changed, or 'locked' while a rebuild holds the room or week.
   */
  apply(
    order: { orderId: string; roomId: string; amountMinor: string; reachMs: number; liveStartMs: number; weekId: string },
    contributions: Contribution[],
    liveStartTtlMs: number,
  ): Promise<number | 'locked'>;
  top(board: string, n: number): Promise<Top>;
  around(board: string, userId: string, n: number): Promise<Around>;
  /** The room's latest broadcast start known, or undefined. */
  liveStart(roomId: string): Promise<Date | undefined>;
  /** Every stored total on a board, by user. */
  scores(board: string): Promise<Map<string, string>>;
  /** Replaces boards wholesale: content, counted orders and expiry. */
  replace(boards: BoardContent[]): Promise<void>;
  /** Takes rebuild locks, all or none; they lapse after `ttlMs` if the rebuilder dies. */
  lock(locks: RebuildLock[], ttlMs: number): Promise<boolean>;
  isLocked(lock: RebuildLock): Promise<boolean>;
  unlock(locks: RebuildLock[]): Promise<void>;
}
