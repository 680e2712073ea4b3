import { LRUCache } from 'lru-cache';
import type { Caller } from '../../kit/identity.js';
import { untilCurrent } from '../../kit/lru-fetch.js';

/** A viewer's level, derived by the Ledger from their EXP. */
export interface LevelSource {
  levelOf(caller: Pick<Caller, 'userId' | 'role'>): Promise<number>;
}

/**
 * Levels change only when a viewer earns EXP (by sending gifts), so a level read a little while
 * ago is good enough to let someone speak: caching it keeps the Ledger out of the chat hot path
 * except for each viewer's first message in a level-gated room.
 */
export class CachedLevels {
  private readonly cache: LRUCache<string, number, Pick<Caller, 'userId' | 'role'>>;

  constructor(source: LevelSource, opts: { ttlMs: number; max: number }) {
    this.cache = new LRUCache<string, number, Pick<Caller, 'userId' | 'role'>>({
      max: opts.max,
      ttl: opts.ttlMs,
      fetchMethod: (_userId, _stale, { context }) => source.levelOf(context),
    });
  }

  async levelOf(caller: Pick<Caller, 'userId' | 'role'>): Promise<number> {
    return (await untilCurrent(() => this.cache.fetch(caller.userId, { context: caller }))) ?? 0;
  }

  /** The level if it is cached, else 0 ("unknown"), without asking the Ledger: for barrages. */
  known(userId: string): number {
    return this.cache.get(userId) ?? 0;
  }
}
