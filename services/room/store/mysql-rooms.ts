import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { withTransaction } from '../../../kit/mysql.js';
import type { GuardedWrite, NewRoom, RoomChange, RoomChecksum, RoomRecord, RoomStore, WriteGuard } from '../rooms.js';

interface RoomRow extends RowDataPacket {
  room_id: string;
  streamer_id: string;
  title: string;
  category: string;
  cover_key: string;
  notice: string;
  status: number;
  gift_group_id: string;
  version: string;
  request_hash: string;
  created_at: Date;
  updated_at: Date;
  live_started_at: Date | null;
}

const COLUMNS =
  'room_id, streamer_id, title, category, cover_key, notice, status, gift_group_id, version, request_hash, created_at, updated_at, live_started_at';

function fromRow(r: RoomRow): RoomRecord {
  return {
    roomId: String(r.room_id),
    streamerId: String(r.streamer_id),
    title: r.title,
    category: r.category,
    coverKey: r.cover_key,
    notice: r.notice,
    status: r.status === 2 ? 'live' : 'offline',
    giftGroupId: String(r.gift_group_id),
    version: String(r.version),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    liveStartedAt: r.live_started_at,
  };
}

/** The rooms table. Only streamer and admin writes reach it. */
export class MysqlRoomStore implements RoomStore {
  constructor(private readonly pool: Pool) {}

  async insertOnce(room: NewRoom, requestHash: string, now: Date): Promise<{ room: RoomRecord; requestHash: string }> {
    try {
      const [res] = await this.pool.execute<ResultSetHeader>(
        `INSERT INTO rooms (streamer_id, title, category, cover_key, notice, status, request_id, request_hash, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?)`,
        [room.streamerId, room.title, room.category, room.coverKey, room.notice, room.requestId, requestHash, now, now],
      );
      return { room: await this.mustGet(String(res.insertId)), requestHash };
    } catch (err) {
      if ((err as { code?: string }).code !== 'ER_DUP_ENTRY') throw err;
      // The same (streamer, request id) was used before: hand back that room and its hash.
      const [rows] = await this.pool.execute<RoomRow[]>(`SELECT ${COLUMNS} FROM rooms WHERE streamer_id = ? AND request_id = ?`, [room.streamerId, room.requestId]);
      const row = rows[0];
      if (!row) throw err;
      return { room: fromRow(row), requestHash: row.request_hash };
    }
  }

  applyChange(roomId: string, guard: WriteGuard, change: RoomChange, now: Date): Promise<GuardedWrite> {
    return withTransaction(this.pool, (conn) => this.applyLocked(conn, roomId, guard, change, now));
  }

  async scan(afterId: string, limit: number): Promise<RoomRecord[]> {
    const [rows] = await this.pool.query<RoomRow[]>(`SELECT ${COLUMNS} FROM rooms WHERE room_id > ? ORDER BY room_id LIMIT ?`, [afterId, limit]);
    return rows.map(fromRow);
  }

  async checksum(): Promise<RoomChecksum> {
    const [rows] = await this.pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n, COALESCE(SUM(version), 0) AS sv FROM rooms');
    const row = rows[0];
    return { rooms: Number(row?.n ?? 0), versionSum: String(row?.sv ?? '0') };
  }

  /** Runs inside the transaction: the row lock makes check-then-write safe against other writers. */
  private async applyLocked(conn: PoolConnection, roomId: string, guard: WriteGuard, change: RoomChange, now: Date): Promise<GuardedWrite> {
    const [rows] = await conn.execute<RoomRow[]>(`SELECT ${COLUMNS} FROM rooms WHERE room_id = ? FOR UPDATE`, [roomId]);
    const row = rows[0];
    if (!row) return { outcome: 'not_found' };
    const room = fromRow(row);
    if (guard.ownerId !== undefined && room.streamerId !== guard.ownerId) return { outcome: 'not_owner', room };
    if (guard.expectedVersion !== undefined && room.version !== guard.expectedVersion) return { outcome: 'version_conflict', room };

    const sets: string[] = [];
    const args: Array<string | number | Date> = [];
    const set = (column: string, value: string | number | Date) => {
      sets.push(`${column} = ?`);
      args.push(value);
    };
    switch (change.kind) {
      case 'text':
        if (change.fields.title !== undefined) set('title', change.fields.title);
        if (change.fields.category !== undefined) set('category', change.fields.category);
        if (change.fields.coverKey !== undefined) set('cover_key', change.fields.coverKey);
        if (change.fields.notice !== undefined) set('notice', change.fields.notice);
        break;
      case 'live':
        if (room.status === 'live') return { outcome: 'unchanged', room };
        set('status', 2);
        set('live_started_at', change.at);
        break;
      case 'offline':
        if (room.status === 'offline') return { outcome: 'unchanged', room };
        set('status', 1);
        break;
      case 'gift_group':
        if (room.giftGroupId === change.giftGroupId) return { outcome: 'unchanged', room };
        set('gift_group_id', change.giftGroupId);
        break;
    }
    set('updated_at', now);
    await conn.execute(`UPDATE rooms SET ${sets.join(', ')}, version = version + 1 WHERE room_id = ?`, [...args, roomId]);
    const [after] = await conn.execute<RoomRow[]>(`SELECT ${COLUMNS} FROM rooms WHERE room_id = ?`, [roomId]);
    const updated = after[0];
    if (!updated) throw new Error(`room ${roomId} vanished inside its own transaction`);
    return { outcome: 'changed', room: fromRow(updated) };
  }

  private async mustGet(roomId: string): Promise<RoomRecord> {
    const [rows] = await this.pool.execute<RoomRow[]>(`SELECT ${COLUMNS} FROM rooms WHERE room_id = ?`, [roomId]);
    const row = rows[0];
    if (!row) throw new Error(`room ${roomId} vanished right after insert`);
    return fromRow(row);
  }
}
