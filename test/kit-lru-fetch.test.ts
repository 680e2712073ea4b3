import { LRUCache } from 'lru-cache';
import { describe, expect, it } from 'vitest';
import { fetchCurrent, untilCurrent } from '../kit/lru-fetch.js';

/**
 * Found by `npm run fuzz` (GetGiftGroup beside UpsertGiftGroup): a catalog change that dropped an
 * entry while it was being read made lru-cache reject the reader with "deleted", which reached
 * the client as INTERNAL. The reader reads again and gets the new state.
 */
describe('catalog reads racing a catalog change', () => {
  it('a fetch whose entry is deleted mid-read is read again and returns the new value', async () => {
    let version = 0;
    let release: (() => void) | undefined;
    const cache = new LRUCache<string, { version: number }>({
      max: 10,
      fetchMethod: async () => {
        const seen = ++version;
        if (seen === 1) await new Promise<void>((resolve) => (release = resolve));
        return { version: seen };
      },
    });
    const reading = fetchCurrent(cache, 'group:1');
    await new Promise((r) => setImmediate(r));
    cache.delete('group:1');
    release?.();
    expect(await reading).toEqual({ version: 2 });
    // Without the retry the same race is a rejection.
    version = 0;
    const plain = cache.fetch('group:2');
    await new Promise((r) => setImmediate(r));
    cache.delete('group:2');
    release?.();
    await expect(plain).rejects.toThrow('deleted');
  });

  it("a fetch whose entry is replaced mid-read (a versioned cache's offer) is read again too", async () => {
    let release: (() => void) | undefined;
    let calls = 0;
    const cache = new LRUCache<string, { v: number }>({
      max: 10,
      fetchMethod: async () => {
        if (++calls === 1) await new Promise<void>((resolve) => (release = resolve));
        return { v: calls };
      },
    });
    const reading = fetchCurrent(cache, 'room:1');
    await new Promise((r) => setImmediate(r));
    cache.set('room:1', { v: 99 });
    release?.();
    expect(await reading).toEqual({ v: 99 });
  });

  it('a fetch with a context (untilCurrent) is read again too', async () => {
    let release: (() => void) | undefined;
    let calls = 0;
    const cache = new LRUCache<string, { by: string }, { userId: string }>({
      max: 10,
      fetchMethod: async (_key, _stale, { context }) => {
        if (++calls === 1) await new Promise<void>((resolve) => (release = resolve));
        return { by: context.userId };
      },
    });
    const reading = untilCurrent(() => cache.fetch('u:1', { context: { userId: '7' } }));
    await new Promise((r) => setImmediate(r));
    cache.set('u:1', { by: 'event' });
    release?.();
    expect(await reading).toEqual({ by: 'event' });
  });

  it('other failures still reach the caller', async () => {
    const cache = new LRUCache<string, { v: number }>({ max: 10, fetchMethod: async () => Promise.reject(new Error('ECONNREFUSED')) });
    await expect(fetchCurrent(cache, 'x')).rejects.toThrow('ECONNREFUSED');
  });
});
