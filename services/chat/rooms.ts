import { LRUCache } from 'lru-cache';
import { roomNotFound } from './errors.js';
import { checkRoomId, type RoomInfo } from './model.js';

/** Where room facts come from (the Room service); undefined when the room does not exist. */
export interface RoomSource {
  fetch(roomId: string): Promise<RoomInfo | undefined>;
}

const ABSENT = { absent: true } as const;
type Entry = RoomInfo | typeof ABSENT;

/**
 * Room facts for every message and like, held in memory: a hot room's chat must not become a
 * Room RPC per message. Entries live a few seconds, concurrent misses share one fetch
 * (lru-cache's fetch does the single flight), and room change events replace entries at once so
 * ownership and live status are rarely stale.
 */
export class RoomDirectory {
  private readonly cache: LRUCache<string, Entry>;

  constructor(source: RoomSource, opts: { ttlMs: number; max: number }) {
    this.cache = new LRUCache<string, Entry>({
      max: opts.max,
      ttl: opts.ttlMs,
      fetchMethod: async (roomId) => (await source.fetch(roomId)) ?? ABSENT,
    });
  }

  /** The room, or NOT_FOUND (Chat's own reason) when it does not exist. */
  async get(roomId: string): Promise<RoomInfo> {
    checkRoomId(roomId);
    const entry = await this.cache.fetch(roomId);
    if (!entry || 'absent' in entry) throw roomNotFound(roomId);
    return entry;
  }

  /** A room change event: a newer version replaces what is cached. */
  changed(room: RoomInfo): void {
    const cur = this.cache.peek(room.roomId);
    if (cur && !('absent' in cur) && BigInt(cur.version) >= BigInt(room.version)) return;
    this.cache.set(room.roomId, room);
  }
}
