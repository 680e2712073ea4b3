import { LRUCache } from 'lru-cache';
import { fetchCurrent } from './lru-fetch.js';

const ABSENT = Symbol('absent');

/** What a cache did: read figures for /metrics. */
export interface VersionedCacheStats {
  /** Reads answered from memory. */
  hits: number;
  /** Reads that waited for the source. */
  misses: number;
  /** Reads of the source actually made: concurrent misses of one key share one. */
  loads: number;
}

/**
 * Records of another store held in memory for a few seconds (Room's replica cache in front of
 * Redis; Gift's and Chat's room facts): concurrent misses share one load (lru-cache's fetch is the
 * single flight), a record the source does not have is remembered as absent for the TTL too, so a
 * burst of bad ids does not become a burst of reads, and change events offer newer versions,
 * which replace older ones at once.
 *
 * Versions only move forward: an offer replaces the cached copy only when strictly newer (the
 * same version is the same record: every change bumps it, and Redis's put follows the same rule),
 * and a load in flight when an offer lands is read again rather than overwrite it with the older
 * copy it fetched (fetchCurrent).
 */
export class VersionedCache<T extends { version: string }> {
  private readonly cache: LRUCache<string, T | typeof ABSENT>;
  readonly stats: VersionedCacheStats = { hits: 0, misses: 0, loads: 0 };

  constructor(load: (key: string) => Promise<T | undefined>, opts: { max: number; ttlMs: number }) {
    this.cache = new LRUCache<string, T | typeof ABSENT>({
      max: opts.max,
      ttl: opts.ttlMs,
      fetchMethod: async (key) => {
        this.stats.loads++;
        return (await load(key)) ?? ABSENT;
      },
    });
  }

  /** The record, from memory when fresh, else from one shared load. */
  async get(key: string): Promise<T | undefined> {
    if (this.cache.has(key)) this.stats.hits++;
    else this.stats.misses++;
    const entry = await fetchCurrent(this.cache, key);
    return entry === ABSENT ? undefined : entry;
  }

  /**
   * What is cached now, without loading (for batch reads that load the rest at once): the record,
   * undefined when the source is known not to have it, null when nothing fresh is cached.
   */
  peek(key: string): T | undefined | null {
    const entry = this.cache.get(key);
    if (entry === undefined) return null;
    return entry === ABSENT ? undefined : entry;
  }

  /** A copy from a change event or a batch read: kept unless the cache already has the same or a newer version. */
  offer(key: string, value: T): void {
    const cur = this.cache.peek(key);
    if (cur !== undefined && cur !== ABSENT && BigInt(cur.version) >= BigInt(value.version)) return;
    this.cache.set(key, value);
  }

  /** Keys held, fresh or not yet evicted. */
  get size(): number {
    return this.cache.size;
  }
}
