import { LRUCache } from 'lru-cache';
import { fetchCurrent } from './lru-fetch.js';

const ABSENT = Symbol('absent');

/**
 * Another service's records held in memory for a few seconds: concurrent misses share one load
 * (lru-cache's fetch is the single flight), a record the source does not have is remembered as
 * absent for the TTL too, and change events offer newer versions, which replace older ones at once.
 */
export class VersionedCache<T extends { version: string }> {
  private readonly cache: LRUCache<string, T | typeof ABSENT>;

  constructor(load: (key: string) => Promise<T | undefined>, opts: { max: number; ttlMs: number }) {
    this.cache = new LRUCache<string, T | typeof ABSENT>({
      max: opts.max,
      ttl: opts.ttlMs,
      fetchMethod: async (key) => (await load(key)) ?? ABSENT,
    });
  }

  async get(key: string): Promise<T | undefined> {
    const entry = await fetchCurrent(this.cache, key);
    return entry === ABSENT ? undefined : entry;
  }

  /** A change event's copy: kept unless the cache already has the same or a newer version. */
  offer(key: string, value: T): void {
    const cur = this.cache.peek(key);
    if (cur !== undefined && cur !== ABSENT && BigInt(cur.version) >= BigInt(value.version)) return;
    this.cache.set(key, value);
  }
}
