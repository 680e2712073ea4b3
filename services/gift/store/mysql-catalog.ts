import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { withTransaction } from '../../../kit/mysql.js';
import type { GiftRecord, GroupRecord } from '../model.js';
import type { CatalogStore, Upserted } from '../ports.js';

interface GiftRow extends RowDataPacket {
  gift_id: string;
  name: string;
  price_minor: string;
  icon_key: string;
  effect_key: string;
  status: number;
  version: string;
  updated_at: Date;
}

interface GroupRow extends RowDataPacket {
  gift_group_id: string;
  name: string;
  gift_ids: string | string[];
  is_default: number | null;
  version: string;
  updated_at: Date;
}

const giftFromRow = (r: GiftRow): GiftRecord => ({
  giftId: String(r.gift_id),
  name: r.name,
  priceMinor: String(r.price_minor),
  iconKey: r.icon_key,
  effectKey: r.effect_key,
  status: r.status === 2 ? 'disabled' : 'active',
  version: String(r.version),
  updatedAt: r.updated_at,
});

const groupFromRow = (r: GroupRow): GroupRecord => ({
  giftGroupId: String(r.gift_group_id),
  name: r.name,
  // MariaDB returns JSON columns as text, MySQL 8 as parsed values.
  giftIds: (typeof r.gift_ids === 'string' ? (JSON.parse(r.gift_ids) as string[]) : r.gift_ids).map(String),
  isDefault: r.is_default === 1,
  version: String(r.version),
  updatedAt: r.updated_at,
});

export type { Upserted } from '../ports.js';

/** The catalog tables. Written only by admin upserts; read on cache misses. */
export class MysqlCatalogStore implements CatalogStore {
  constructor(private readonly pool: Pool) {}

  async gift(giftId: string): Promise<GiftRecord | undefined> {
    const [rows] = await this.pool.execute<GiftRow[]>('SELECT * FROM gifts WHERE gift_id = ?', [giftId]);
    return rows[0] ? giftFromRow(rows[0]) : undefined;
  }

  async gifts(giftIds: string[]): Promise<GiftRecord[]> {
    if (giftIds.length === 0) return [];
    const [rows] = await this.pool.query<GiftRow[]>('SELECT * FROM gifts WHERE gift_id IN (?)', [giftIds]);
    return rows.map(giftFromRow);
  }

  /** '0' is the default group. */
  async group(groupId: string): Promise<GroupRecord | undefined> {
    const [rows] =
      groupId === '0'
        ? await this.pool.execute<GroupRow[]>('SELECT * FROM gift_groups WHERE is_default = 1')
        : await this.pool.execute<GroupRow[]>('SELECT * FROM gift_groups WHERE gift_group_id = ?', [groupId]);
    return rows[0] ? groupFromRow(rows[0]) : undefined;
  }

  /** Groups listing a gift: the ones whose cached lists a change to it invalidates. */
  async groupsWithGift(giftId: string): Promise<string[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>('SELECT gift_group_id FROM gift_groups WHERE JSON_CONTAINS(gift_ids, JSON_QUOTE(?))', [giftId]);
    return rows.map((r) => String((r as { gift_group_id: string }).gift_group_id));
  }

  async upsertGift(g: Omit<GiftRecord, 'version' | 'updatedAt'>, expectedVersion: string | undefined, now: Date): Promise<Upserted<GiftRecord>> {
    return withTransaction(this.pool, async (conn) => {
      const status = g.status === 'disabled' ? 2 : 1;
      if (g.giftId === '0') {
        const [res] = await conn.execute<ResultSetHeader>('INSERT INTO gifts (name, price_minor, icon_key, effect_key, status, updated_at) VALUES (?, ?, ?, ?, ?, ?)', [
          g.name, g.priceMinor, g.iconKey, g.effectKey, status, now,
        ]);
        return { outcome: 'ok', record: await this.mustGift(conn, String(res.insertId)), created: true };
      }
      const [rows] = await conn.execute<GiftRow[]>('SELECT version FROM gifts WHERE gift_id = ? FOR UPDATE', [g.giftId]);
      const cur = rows[0];
      if (!cur) return { outcome: 'not_found' };
      if (expectedVersion !== undefined && String(cur.version) !== expectedVersion) return { outcome: 'version_conflict', current: String(cur.version) };
      await conn.execute('UPDATE gifts SET name = ?, price_minor = ?, icon_key = ?, effect_key = ?, status = ?, version = version + 1, updated_at = ? WHERE gift_id = ?', [
        g.name, g.priceMinor, g.iconKey, g.effectKey, status, now, g.giftId,
      ]);
      return { outcome: 'ok', record: await this.mustGift(conn, g.giftId), created: false };
    });
  }

  async upsertGroup(g: Omit<GroupRecord, 'version' | 'updatedAt'>, expectedVersion: string | undefined, now: Date): Promise<Upserted<GroupRecord>> {
    return withTransaction(this.pool, async (conn) => {
      // Making this group the default takes the flag from whichever group had it.
      if (g.isDefault) await conn.execute('UPDATE gift_groups SET is_default = NULL WHERE is_default = 1 AND gift_group_id <> ?', [g.giftGroupId]);
      const ids = JSON.stringify(g.giftIds);
      if (g.giftGroupId === '0') {
        const [res] = await conn.execute<ResultSetHeader>('INSERT INTO gift_groups (name, gift_ids, is_default, updated_at) VALUES (?, ?, ?, ?)', [
          g.name, ids, g.isDefault ? 1 : null, now,
        ]);
        return { outcome: 'ok', record: await this.mustGroup(conn, String(res.insertId)), created: true };
      }
      const [rows] = await conn.execute<GroupRow[]>('SELECT version FROM gift_groups WHERE gift_group_id = ? FOR UPDATE', [g.giftGroupId]);
      const cur = rows[0];
      if (!cur) return { outcome: 'not_found' };
      if (expectedVersion !== undefined && String(cur.version) !== expectedVersion) return { outcome: 'version_conflict', current: String(cur.version) };
      await conn.execute('UPDATE gift_groups SET name = ?, gift_ids = ?, is_default = ?, version = version + 1, updated_at = ? WHERE gift_group_id = ?', [
        g.name, ids, g.isDefault ? 1 : null, now, g.giftGroupId,
      ]);
      return { outcome: 'ok', record: await this.mustGroup(conn, g.giftGroupId), created: false };
    });
  }

  private async mustGift(conn: PoolConnection, id: string): Promise<GiftRecord> {
    const [rows] = await conn.execute<GiftRow[]>('SELECT * FROM gifts WHERE gift_id = ?', [id]);
    if (!rows[0]) throw new Error(`gift ${id} vanished inside its own transaction`);
    return giftFromRow(rows[0]);
  }

  private async mustGroup(conn: PoolConnection, id: string): Promise<GroupRecord> {
    const [rows] = await conn.execute<GroupRow[]>('SELECT * FROM gift_groups WHERE gift_group_id = ?', [id]);
    if (!rows[0]) throw new Error(`gift group ${id} vanished inside its own transaction`);
    return groupFromRow(rows[0]);
  }
}
