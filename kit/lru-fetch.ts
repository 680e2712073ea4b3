/**
 * lru-cache's fetch, made safe against the entry changing under it.
 */
import type { LRUCache } from 'lru-cache';

/** Why lru-cache aborts a fetch whose entry changed under it (delete, set, eviction). */
const SUPERSEDED = new Set(['deleted', 'replaced', 'evicted']);

/**
 * `cache.fetch`, read again when the entry was dropped while the fetch ran: lru-cache rejects the
 * waiting callers with the abort reason, and a change arriving mid-read (Gift's catalog forget, a
 * versioned cache's offer) turned reads such as GetGiftGroup or Chat's SendMessage into INTERNAL
 * (found by the fuzzer). The second read sees the change, which is what the caller wants anyway.
 */
export function fetchCurrent<V extends NonNullable<unknown>>(cache: LRUCache<string, V>, key: string, attempts = 5): Promise<V | undefined> {
  return untilCurrent(() => cache.fetch(key), attempts);
}

/**
 * The same for a fetch that needs options (a cache with a fetch context): `read` is the
 * `cache.fetch(key, { context })` call, repeated when the entry changed under it.
 */
export async function untilCurrent<T>(read: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await read();
    } catch (err) {
      if (attempt >= attempts || !(err instanceof Error && SUPERSEDED.has(err.message))) throw err;
    }
  }
}
