import type { Pool, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import type { NewRoom, RoomRecord, RoomStore } from '../rooms.js';

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

  private async mustGet(roomId: string): Promise<RoomRecord> {
    const [rows] = await this.pool.execute<RoomRow[]>(`SELECT ${COLUMNS} FROM rooms WHERE room_id = ?`, [roomId]);
    const row = rows[0];
    if (!row) throw new Error(`room ${roomId} vanished right after insert`);
    return fromRow(row);
  }
}
