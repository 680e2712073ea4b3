import { describe, expect, it } from 'vitest';
import { failed, GroupCommit, ok, type Outcome } from '../kit/group-commit.js';

/** A batch runner that records what it was given and finishes when the test says so. */
function recorder<T>() {
  const batches: T[][] = [];
  const open: Array<() => void> = [];
  const run = (items: T[]) =>
    new Promise<Array<Outcome<string>>>((resolve) => {
      batches.push(items);
      open.push(() => resolve(items.map((i) => ok(`done ${String(i)}`))));
    });
  const finishNext = () => open.shift()?.();
  return { batches, run, finishNext };
}

/** A few turns of the event loop: enough for a finished batch's bookkeeping and the next batch's start. */
const turn = async () => {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
};

describe('GroupCommit', () => {
  it('sends everything submitted in one turn of the event loop as one batch, at once on an idle system', async () => {
    const r = recorder<number>();
    const gc = new GroupCommit(r.run, { maxBatch: 100, concurrency: 2 });
    const outs = Array.from({ length: 10 }, (_, i) => gc.submit(i));
    await turn();
    expect(r.batches).toEqual([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]);
    r.finishNext();
    expect(await Promise.all(outs)).toEqual(Array.from({ length: 10 }, (_, i) => `done ${i}`));
  });

  it('queues what arrives while every batch is running and sends it together when one finishes, never more than maxBatch at a time', async () => {
    const r = recorder<number>();
    const gc = new GroupCommit(r.run, { maxBatch: 3, concurrency: 1 });
    const first = gc.submit(0);
    await turn();
    const later = [1, 2, 3, 4, 5].map((i) => gc.submit(i));
    await turn();
    expect(r.batches).toEqual([[0]]);
    expect(gc.pending).toBe(5);
    r.finishNext();
    await first;
    await turn();
    expect(r.batches).toEqual([[0], [1, 2, 3]]);
    r.finishNext();
    await Promise.all(later.slice(0, 3));
    await turn();
    expect(r.batches).toEqual([[0], [1, 2, 3], [4, 5]]);
    r.finishNext();
    expect(await Promise.all(later)).toEqual(['done 1', 'done 2', 'done 3', 'done 4', 'done 5']);
  });

  it("gives each item its own outcome; a batch that throws fails its items, one that answers too few fails with a clear error", async () => {
    const mixed = new GroupCommit<number, number>((items) => Promise.resolve(items.map((i) => (i % 2 ? failed(new Error(`odd ${i}`)) : ok(i * 10)))), { maxBatch: 10, concurrency: 1 });
    const results = await Promise.allSettled([1, 2, 3, 4].map((i) => mixed.submit(i)));
    expect(results.map((x) => (x.status === 'fulfilled' ? x.value : (x.reason as Error).message))).toEqual(['odd 1', 20, 'odd 3', 40]);

    const broken = new GroupCommit<number, number>(() => Promise.reject(new Error('connection lost')), { maxBatch: 10, concurrency: 1 });
    const lost = await Promise.allSettled([1, 2].map((i) => broken.submit(i)));
    expect(lost.map((x) => x.status === 'rejected' && (x.reason as Error).message)).toEqual(['connection lost', 'connection lost']);

    const short = new GroupCommit<number, number>(() => Promise.resolve([ok(1)]), { maxBatch: 10, concurrency: 1 });
    const answered = await Promise.allSettled([1, 2].map((i) => short.submit(i)));
    expect(answered[0]).toEqual({ status: 'fulfilled', value: 1 });
    expect(answered[1]?.status === 'rejected' && (answered[1].reason as Error).message).toMatch(/returned 1 outcomes for 2 items/);
  });
});
