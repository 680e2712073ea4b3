import type { RoomChecksum, RoomRecord, RoomStore } from './rooms.js';

/** The part of the Redis store a backfill needs. */
export interface RoomSink {
  putMany(rooms: RoomRecord[]): Promise<number>;
  checksum(): Promise<RoomChecksum>;
}

export interface BackfillProgress {
  /** Called once with the number of rooms MySQL holds, before the first batch. */
  start(total: number): void;
  /** Called after each batch with running totals. */
  batch(scanned: number, written: number): void;
}

export interface BackfillResult {
  scanned: number;
  /** Rooms Redis lacked or held at an older version. */
  written: number;
}

/**
 * Rebuilds Redis from MySQL: every room, in id order, in pipelined batches. Safe while the mesh
 * runs: each put is version-checked, so a room written meanwhile keeps its newer copy, and running
 * it twice (two replicas starting at once) only costs time.
 */
export async function backfill(store: RoomStore, sink: RoomSink, progress: BackfillProgress, batchSize = 500): Promise<BackfillResult> {
  const { rooms: total } = await store.checksum();
  progress.start(total);
  let after = '0';
  let scanned = 0;
  let written = 0;
  for (;;) {
    const rooms = await store.scan(after, batchSize);
    if (rooms.length === 0) break;
    written += await sink.putMany(rooms);
    scanned += rooms.length;
    after = rooms[rooms.length - 1]?.roomId ?? after;
    progress.batch(scanned, written);
  }
  return { scanned, written };
}

export type SyncVerdict = { complete: true; mysql: RoomChecksum } | { complete: false; mysql: RoomChecksum; redis: RoomChecksum };

/**
 * Redis keeps two running figures, the number of rooms and the sum of their versions, updated in
 * the same script that writes a room. If they equal MySQL's, every room is in Redis at its latest
 * version (versions only grow, so a stale copy lowers the sum); if not, a backfill is due.
 */
export async function compare(store: RoomStore, sink: RoomSink): Promise<SyncVerdict> {
  const [mysql, redis] = await Promise.all([store.checksum(), sink.checksum()]);
  if (mysql.rooms === redis.rooms && mysql.versionSum === redis.versionSum) return { complete: true, mysql };
  return { complete: false, mysql, redis };
}
