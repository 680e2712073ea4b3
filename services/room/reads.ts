import { invalidField, Violations } from '../../kit/domain-error.js';
import { isPositiveInt64 } from '../../kit/identity.js';
import type { VersionedCache } from '../../kit/versioned-cache.js';
import { roomNotFound } from './errors.js';
import { checkRoomId, LIMITS, pageSize, type Cursor, type IdPage, type PartialRoom, type RoomCache, type RoomRecord } from './rooms.js';

export interface BatchResult {
  /** Found rooms in request order, duplicates answered once; partial when fields were given. */
  rooms: PartialRoom[];
  missing: string[];
}

export interface RoomPage {
  rooms: RoomRecord[];
  /** Opaque token for the next page, '' at the end. */
  nextPageToken: string;
}

/**
 * Viewer reads: the replica's in-process cache first, then Redis, and never MySQL. Redis holds
 * every room, so a room it does not have is NOT_FOUND rather than a reason to ask the database;
 * that is what keeps a crowd of viewers (or a flood of made-up ids) off MySQL. The local cache
 * reads a hot room from Redis once per TTL per replica however many viewers arrive.
 */
export class RoomReader {
  constructor(
    private readonly local: VersionedCache<RoomRecord>,
    private readonly cache: RoomCache,
  ) {}

  async get(roomId: string): Promise<RoomRecord> {
    checkRoomId(roomId);
    const room = await this.local.get(roomId);
    if (!room) throw roomNotFound(roomId);
    return room;
  }

  /**
   * Rooms the local cache has are answered from memory; the rest come from Redis in one
   * pipeline, and with `fields` only those fields travel.
   */
  async batchGet(roomIds: string[], fields?: ReadonlyArray<keyof RoomRecord>): Promise<BatchResult> {
    const v = new Violations();
    v.check(roomIds.length > 0, 'room_ids', `must name 1 to ${LIMITS.batch} rooms`);
    v.check(roomIds.length <= LIMITS.batch, 'room_ids', `must name at most ${LIMITS.batch} rooms (got ${roomIds.length})`);
    roomIds.forEach((id, i) => v.check(isPositiveInt64(id), `room_ids[${i}]`, 'must be a positive 64-bit integer'));
    v.throwIfAny();

    const unique = [...new Set(roomIds)];
    const found = new Map<string, PartialRoom>();
    const absent = new Set<string>();
    const toFetch: string[] = [];
    for (const id of unique) {
      const cached = this.local.peek(id);
      if (cached === null) toFetch.push(id);
      else if (cached === undefined) absent.add(id);
      else found.set(id, cached);
    }
    if (toFetch.length > 0) {
      const fetched = await this.cache.getMany(toFetch, fields);
      toFetch.forEach((id, i) => {
        const room = fetched[i];
        if (!room) return absent.add(id);
        found.set(id, room);
        if (!fields) this.local.offer(id, room as RoomRecord);
      });
    }
    return { rooms: unique.flatMap((id) => found.get(id) ?? []), missing: unique.filter((id) => absent.has(id)) };
  }

  /** Live rooms, newest live first, optionally in one category. */
  async listLive(category: string, size: number | undefined, token: string): Promise<RoomPage> {
    if (category !== '' && !/^[a-z0-9-]{1,32}$/.test(category)) throw invalidField('category', 'must be lowercase letters, digits and dashes, at most 32');
    const page = await this.cache.liveIds(category, pageSize(size), decodeToken(token));
    // The index can briefly lead or trail the room hash during a write; the room itself decides.
    return this.pageOf(page, (room) => room.status === 'live' && (category === '' || room.category === category));
  }

  /** A streamer's rooms, newest first. Public: a streamer's profile lists them. */
  async listByStreamer(streamerId: string, size: number | undefined, token: string): Promise<RoomPage> {
    if (!isPositiveInt64(streamerId)) throw invalidField('streamer_id', 'must be a positive 64-bit integer');
    const page = await this.cache.streamerIds(streamerId, pageSize(size), decodeToken(token));
    return this.pageOf(page, (room) => room.streamerId === streamerId);
  }

  private async pageOf(page: IdPage, keep: (room: RoomRecord) => boolean): Promise<RoomPage> {
    const rooms = page.ids.length === 0 ? [] : (await this.batchGet(page.ids)).rooms as RoomRecord[];
    return { rooms: rooms.filter(keep), nextPageToken: page.next ? encodeToken(page.next) : '' };
  }
}

/** Page tokens are opaque to clients: base64url of "score:id". */
function encodeToken(c: Cursor): string {
  return Buffer.from(`${c.score}:${c.id}`).toString('base64url');
}

function decodeToken(token: string, field = 'page.page_token'): Cursor | undefined {
  if (token === '') return undefined;
  const m = /^(-?\d{1,16}):(\d{1,20})$/.exec(Buffer.from(token, 'base64url').toString());
  if (!m || !isPositiveInt64(m[2] ?? '')) throw invalidField(field, 'is not a token this RPC returned; pass next_page_token back unchanged');
  return { score: Number(m[1]), id: m[2] ?? '' };
}
