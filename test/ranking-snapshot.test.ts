/**
 * The per-replica board snapshot (services/ranking/reads.ts), against an in-memory store: never
 * older than about two intervals when served, and a new broadcast shows at once.
 */
import { describe, expect, it } from 'vitest';
import { Boards } from '../services/ranking/boards.js';
import { Calendar } from '../services/ranking/calendar.js';
import type { BoardStore, Entry } from '../services/ranking/ports.js';
import { RankingReader } from '../services/ranking/reads.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Just what the reader uses: top() and liveStart(), with a settable board and a slow Redis. */
class FakeStore {
  entries: Entry[] = [];
  start: Date | undefined;
  topDelayMs = 0;
  tops = 0;
  async top(_board: string, n: number) {
    this.tops++;
    const entries = this.entries.slice(0, n);
    if (this.topDelayMs > 0) await sleep(this.topDelayMs);
    return { entries, total: entries.length };
  }
  liveStart(): Promise<Date | undefined> {
    return Promise.resolve(this.start);
  }
}

const entry = (userId: string, score: string): Entry => ({ userId, score, reachAt: new Date(0), name: `u${userId}` });

function reader(store: FakeStore, snapshotMs: number) {
  return new RankingReader(new Boards(new Calendar('UTC')), store as unknown as BoardStore, { snapshotMs, max: 100 });
}

describe('ranking snapshots', () => {
  it('serves one snapshot per interval, and the previous one while a refresh is in flight', async () => {
    const store = new FakeStore();
    const r = reader(store, 200);
    store.entries = [entry('1', '10')];
    expect((await r.roomTop('5', 'day', 10)).entries.map((e) => e.score)).toEqual(['10']);
    store.entries = [entry('1', '20')];
    await Promise.all(Array.from({ length: 20 }, () => r.roomTop('5', 'day', 10)));
    expect(store.tops).toBe(1);
    await sleep(250);
    store.topDelayMs = 100;
    // Just past the interval: the refresh starts and the reader is answered from the snapshot it has.
    expect((await r.roomTop('5', 'day', 10)).entries.map((e) => e.score)).toEqual(['10']);
    await sleep(150);
    expect((await r.roomTop('5', 'day', 10)).entries.map((e) => e.score)).toEqual(['20']);
  });

  it('a board nobody read for a while is read afresh, never from its old snapshot', async () => {
    const store = new FakeStore();
    const r = reader(store, 100);
    store.entries = [entry('1', '10')];
    const first = await r.roomTop('6', 'week', 10);
    store.entries = [entry('1', '30')];
    store.topDelayMs = 50;
    await sleep(600);
    const later = await r.roomTop('6', 'week', 10);
    expect(later.entries.map((e) => e.score)).toEqual(['30']);
    expect(Date.now() - later.snapshotAt.getTime()).toBeLessThanOrEqual(200 + 100);
    expect(later.snapshotAt.getTime()).toBeGreaterThan(first.snapshotAt.getTime());
  });

  it('a new broadcast shows at once, though the previous one was read a moment ago', async () => {
    const store = new FakeStore();
    const r = reader(store, 10_000);
    const old = new Date(Date.now() - 3_600_000);
    store.start = old;
    store.entries = [entry('1', '99')];
    expect((await r.roomTop('7', 'live', 10)).periodStart).toEqual(old);
    // A room change brought a later start (recorded in the store first); the new board is empty.
    const now = new Date();
    store.start = now;
    store.entries = [];
    r.newBroadcast('7', now);
    const after = await r.roomTop('7', 'live', 10);
    expect(after.periodStart).toEqual(now);
    expect(after.entries).toEqual([]);
    // The same start again (any other room change) keeps the snapshot.
    const tops = store.tops;
    r.newBroadcast('7', now);
    await r.roomTop('7', 'live', 10);
    expect(store.tops).toBe(tops);
  });
});
