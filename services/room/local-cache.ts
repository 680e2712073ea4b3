import { LRUCache } from 'lru-cache';
import type { RoomRecord } from './rooms.js';

/** Cached answer for an id Redis does not know, so a burst of bad ids does not become a burst of reads. */
const ABSENT = Symbol('absent');
type Entry = RoomRecord | typeof ABSENT;

export interface LocalCacheStats {
  hits: number;
  misses: number;
  /** Reads that went to Redis: concurrent misses for one room share one. */
  loads: number;
}

/**
 * The replica's in-process room cache: a bounded LRU whose entries live a few seconds, in front
 * of Redis. A hot room is read from Redis once per TTL per replica however many viewers arrive,
 * and concurrent misses for one room share a single Redis read (single flight).
 *
 * Versions only move forward: a change event installs the room it carries if it is newer, and a
 * Redis read that was already in flight when the event arrived cannot overwrite it with the
 * older copy it fetched.
 */
export class LocalRoomCache {
  private readonly lru: LRUCache<string, Entry>;
  private readonly inflight = new Map<string, Promise<RoomRecord | undefined>>();
  readonly stats: LocalCacheStats = { hits: 0, misses: 0, loads: 0 };

  constructor(
    private readonly load: (roomId: string) => Promise<RoomRecord | undefined>,
    opts: { max: number; ttlMs: number },
  ) {
    this.lru = new LRUCache<string, Entry>({ max: opts.max, ttl: opts.ttlMs, ttlAutopurge: false });
  }

  /** The room, from memory when fresh, else from one shared Redis read. */
  get(roomId: string): Promise<RoomRecord | undefined> {
    const hit = this.lru.get(roomId);
    if (hit !== undefined) {
      this.stats.hits++;
      return Promise.resolve(hit === ABSENT ? undefined : hit);
    }
    this.stats.misses++;
    const pending = this.inflight.get(roomId);
    if (pending) return pending;
    this.stats.loads++;
    const read = this.load(roomId).then(
      (room) => {
        if (this.inflight.get(roomId) === read) {
          this.inflight.delete(roomId);
          this.storeIfNewer(roomId, room ?? ABSENT);
        }
        return room;
      },
      (err: unknown) => {
        if (this.inflight.get(roomId) === read) this.inflight.delete(roomId);
        throw err;
      },
    );
    this.inflight.set(roomId, read);
    return read;
  }

  /** What is cached now, without loading: for batch reads that go to Redis for the rest at once. */
  peek(roomId: string): RoomRecord | undefined | null {
    const hit = this.lru.get(roomId);
    if (hit === undefined) return null;
    return hit === ABSENT ? undefined : hit;
  }

  /** Remembers rooms a batch read fetched in full. */
  remember(room: RoomRecord): void {
    this.storeIfNewer(room.roomId, room);
  }

  /**
   * A change event: the room it carries replaces an older cached copy, and a Redis read in flight
   * is detached so its result (possibly older) is not cached.
   */
  changed(room: RoomRecord): void {
    this.inflight.delete(room.roomId);
    this.storeIfNewer(room.roomId, room);
  }

  get size(): number {
    return this.lru.size;
  }

  private storeIfNewer(roomId: string, next: Entry): void {
    const cur = this.lru.peek(roomId);
    if (cur !== undefined && cur !== ABSENT && (next === ABSENT || BigInt(cur.version) > BigInt(next.version))) return;
    this.lru.set(roomId, next);
  }
}
