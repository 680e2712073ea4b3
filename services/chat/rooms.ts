import { VersionedCache } from '../../kit/versioned-cache.js';
import { roomNotFound } from './errors.js';
import { checkRoomId, type RoomInfo } from './model.js';

/** Where room facts come from (the Room service); undefined when the room does not exist. */
export interface RoomSource {
  fetch(roomId: string): Promise<RoomInfo | undefined>;
}

/**
 * Room facts for every message and like, held in memory: a hot room's chat must not become a
 * Room RPC per message. Entries live a few seconds, concurrent misses share one fetch, and room
 * change events replace entries at once so ownership and live status are rarely stale.
 */
export class RoomDirectory {
  private readonly cache: VersionedCache<RoomInfo>;

  constructor(source: RoomSource, opts: { ttlMs: number; max: number }) {
    this.cache = new VersionedCache((roomId) => source.fetch(roomId), opts);
  }

  /** The room, or NOT_FOUND (Chat's own reason) when it does not exist. */
  async get(roomId: string): Promise<RoomInfo> {
    checkRoomId(roomId);
    const room = await this.cache.get(roomId);
    if (!room) throw roomNotFound(roomId);
    return room;
  }

  /** A room change event: a newer version replaces what is cached. */
  changed(room: RoomInfo): void {
    this.cache.offer(room.roomId, room);
  }
}
