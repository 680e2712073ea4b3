import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { withTransaction } from '../../kit/mysql.js';
import { GiftErrorReason, giftErrorReasonFromJSON, GiftPaidEvent } from '../../../gen/ts/livemesh/gift/v1/gift.js';
import { giftReason } from '../errors.js';
import { EFFECTS, LIMITS, type ComboRecord, type Effect, type EffectRecord, type OrderRecord, type OrderState } from '../model.js';
import type { NewOrder, OrderQuery, OrderStore } from '../ports.js';

const STATE_CODE: Record<OrderState, number> = { created: 1, paid: 2, done: 3, failed: 4 };
const STATE_OF = ['', 'created', 'paid', 'done', 'failed'] as const;
export const EFFECT_CODE: Record<Effect, number> = { exp: 1, barrage: 2, ranking: 3, combo: 4 };
const EFFECT_OF: Record<number, Effect> = { 1: 'exp', 2: 'barrage', 3: 'ranking', 4: 'combo' };

interface OrderRow extends RowDataPacket {
  order_id: string;
  sender_id: string;
  idempotency_key: string;
  request_hash: string;
  sender_name: string;
  room_id: string;
  streamer_id: string;
  gift_id: string;
  count: number;
  unit_price_minor: string;
  amount_minor: string;
  income_minor: string;
  exp_minor: string;
  state: number;
  failure_reason: number;
  combo_id: string;
  combo_count: string;
  sender_balance_after: string | null;
  live_started_at: Date | null;
  created_at: Date;
  paid_at: Date | null;
  ended_at: Date | null;
}

interface EffectRow extends RowDataPacket {
  order_id: string;
  effect: number;
  done_at: Date | null;
  attempts: number;
  last_error: string;
}

interface ComboRow extends RowDataPacket {
  combo_id: string;
  sender_id: string;
  sender_name: string;
  streamer_id: string;
  room_id: string;
  gift_id: string;
  combo_count: string;
  send_count: string;
  amount_minor: string;
  first_send_at: Date;
  last_send_at: Date;
}

function fromRow(r: OrderRow, effects: EffectRecord[]): OrderRecord {
  return {
    orderId: String(r.order_id),
    idempotencyKey: r.idempotency_key,
    senderId: String(r.sender_id),
    senderName: r.sender_name,
    roomId: String(r.room_id),
    streamerId: String(r.streamer_id),
    giftId: String(r.gift_id),
    count: Number(r.count),
    unitPriceMinor: String(r.unit_price_minor),
    amountMinor: String(r.amount_minor),
    incomeMinor: String(r.income_minor),
    expMinor: String(r.exp_minor),
    state: STATE_OF[r.state] || 'created',
    failureReason: r.failure_reason ? giftReason(r.failure_reason as GiftErrorReason) : '',
    comboId: String(r.combo_id),
    comboCount: String(r.combo_count),
    senderBalanceAfter: r.sender_balance_after === null ? null : String(r.sender_balance_after),
    liveStartedAt: r.live_started_at,
    createdAt: r.created_at,
    paidAt: r.paid_at,
    endedAt: r.ended_at,
    effects,
  };
}

function comboFromRow(r: ComboRow): ComboRecord {
  return {
    comboId: String(r.combo_id),
    senderId: String(r.sender_id),
    senderName: r.sender_name,
    streamerId: String(r.streamer_id),
    roomId: String(r.room_id),
    giftId: String(r.gift_id),
    comboCount: String(r.combo_count),
    sendCount: String(r.send_count),
    amountMinor: String(r.amount_minor),
    firstSendAt: r.first_send_at,
    lastSendAt: r.last_send_at,
  };
}

type Db = Pool | PoolConnection;

/** The outbox payload for a paid order: what every effect consumer needs, without reading MySQL. */
function paidEvent(order: OrderRecord, combo: { comboId: string; comboCount: string; amountMinor: string }, paidTime: Date, attempt: number): Uint8Array {
  return GiftPaidEvent.encode({
    orderId: order.orderId,
    roomId: order.roomId,
    streamerId: order.streamerId,
    senderId: order.senderId,
    senderName: order.senderName,
    giftId: order.giftId,
    count: order.count,
    unitPriceMinor: order.unitPriceMinor,
    amountMinor: order.amountMinor,
    expMinor: order.expMinor,
    comboId: combo.comboId,
    comboCount: combo.comboCount,
    comboAmountMinor: combo.amountMinor,
    paidTime,
    liveStartTime: order.liveStartedAt ?? undefined,
    attempt,
  }).finish();
}

/**
 * Orders, effects, combos and the outbox in MySQL. State changes are compare-and-set on the
 * state column, so the send path, the recovery worker and a second replica racing on the same
 * order can never apply a transition twice.
 */
export class MysqlOrderStore implements OrderStore {
  private readonly required: number[];

  constructor(
    private readonly pool: Pool,
    requiredEffects: readonly Effect[],
  ) {
    this.required = requiredEffects.map((e) => EFFECT_CODE[e]);
  }

  async create(order: NewOrder, now: Date): Promise<{ order: OrderRecord; requestHash: string; created: boolean }> {
    try {
      const [res] = await this.pool.execute<ResultSetHeader>(
        `INSERT INTO orders (sender_id, idempotency_key, request_hash, sender_name, room_id, streamer_id, gift_id, count,
           unit_price_minor, amount_minor, income_minor, exp_minor, state, live_started_at, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
        [
          order.senderId, order.idempotencyKey, order.requestHash, order.senderName, order.roomId, order.streamerId, order.giftId, order.count,
          order.unitPriceMinor, order.amountMinor, order.amountMinor, order.amountMinor, order.liveStartedAt, now,
        ],
      );
      // Built from what was just written rather than read back: one round trip fewer per send.
      const created: OrderRecord = {
        orderId: String(res.insertId),
        idempotencyKey: order.idempotencyKey,
        senderId: order.senderId,
        senderName: order.senderName,
        roomId: order.roomId,
        streamerId: order.streamerId,
        giftId: order.giftId,
        count: order.count,
        unitPriceMinor: order.unitPriceMinor,
        amountMinor: order.amountMinor,
        incomeMinor: order.amountMinor,
        expMinor: order.amountMinor,
        state: 'created',
        failureReason: '',
        comboId: '0',
        comboCount: '0',
        senderBalanceAfter: null,
        liveStartedAt: order.liveStartedAt,
        createdAt: now,
        paidAt: null,
        endedAt: null,
        effects: [],
      };
      return { order: created, requestHash: order.requestHash, created: true };
    } catch (err) {
      if ((err as { code?: string }).code !== 'ER_DUP_ENTRY') throw err;
      const [rows] = await this.pool.execute<OrderRow[]>('SELECT * FROM orders WHERE sender_id = ? AND idempotency_key = ?', [order.senderId, order.idempotencyKey]);
      const row = rows[0];
      if (!row) throw err;
      return { order: fromRow(row, await this.effectsOf(this.pool, [String(row.order_id)]).then((m) => m.get(String(row.order_id)) ?? [])), requestHash: row.request_hash, created: false };
    }
  }

  async get(orderId: string, db: Db = this.pool): Promise<OrderRecord | undefined> {
    const [rows] = await db.execute<OrderRow[]>('SELECT * FROM orders WHERE order_id = ?', [orderId]);
    const row = rows[0];
    if (!row) return undefined;
    return fromRow(row, (await this.effectsOf(db, [orderId])).get(orderId) ?? []);
  }

  async markPaid(orderId: string, balanceAfter: string | null, now: Date): Promise<OrderRecord> {
    return withTransaction(this.pool, async (conn) => {
      const [rows] = await conn.execute<OrderRow[]>('SELECT * FROM orders WHERE order_id = ? FOR UPDATE', [orderId]);
      const row = rows[0];
      if (!row) throw new Error(`order ${orderId} not found while marking it paid`);
      const order = fromRow(row, []);
      if (order.state !== 'created') return (await this.get(orderId, conn)) ?? order;

      const combo = await this.extendCombo(conn, order, now);
      // The combo record is written in this very transaction, so that effect is done at once; if
      // it is the only one required, the order is DONE already.
      const done = this.required.every((code) => code === EFFECT_CODE.combo);
      await conn.execute(
        'UPDATE orders SET state = ?, paid_at = ?, sender_balance_after = ?, combo_id = ?, combo_count = ?, ended_at = ? WHERE order_id = ?',
        [done ? STATE_CODE.done : STATE_CODE.paid, now, balanceAfter, combo.comboId, combo.comboCount, done ? now : null, orderId],
      );
      const effects: EffectRecord[] = EFFECTS.map((effect) => ({ effect, doneAt: effect === 'combo' ? now : null, attempts: 0, lastError: '' }));
      await conn.query('INSERT INTO order_effects (order_id, effect, done_at) VALUES ?', [effects.map((e) => [orderId, EFFECT_CODE[e.effect], e.doneAt])]);
      const event = paidEvent(order, combo, now, 1);
      await conn.execute('INSERT INTO outbox (order_id, subject_room_id, msg_id, payload, created_at) VALUES (?, ?, ?, ?, ?)', [
        orderId,
        order.roomId,
        orderId,
        Buffer.from(event),
        now,
      ]);
      return {
        ...order,
        state: done ? 'done' : 'paid',
        paidAt: now,
        endedAt: done ? now : null,
        senderBalanceAfter: balanceAfter,
        comboId: combo.comboId,
        comboCount: combo.comboCount,
        effects,
      };
    });
  }

  /**
   * The head row for (sender, room, gift) is created if missing and locked, so concurrent sends
   * of one gift by one viewer queue here: each extends the combo the previous one left, none is
   * lost, and the count only grows.
   */
  private async extendCombo(conn: PoolConnection, order: OrderRecord, now: Date): Promise<{ comboId: string; comboCount: string; amountMinor: string }> {
    const key = [order.senderId, order.roomId, order.giftId];
    await conn.execute('INSERT INTO combo_heads (sender_id, room_id, gift_id, combo_id, last_send_at) VALUES (?, ?, ?, 0, ?) ON DUPLICATE KEY UPDATE combo_id = combo_id', [
      ...key,
      now,
    ]);
    const [heads] = await conn.execute<RowDataPacket[]>('SELECT combo_id, last_send_at FROM combo_heads WHERE sender_id = ? AND room_id = ? AND gift_id = ? FOR UPDATE', key);
    const head = heads[0] as { combo_id: string; last_send_at: Date } | undefined;
    const open = head && String(head.combo_id) !== '0' && now.getTime() - head.last_send_at.getTime() <= LIMITS.comboWindowMs;
    let comboId: string;
    if (open) {
      comboId = String(head.combo_id);
      await conn.execute(
        `UPDATE combos SET combo_count = combo_count + ?, send_count = send_count + 1, amount_minor = amount_minor + ?,
           last_send_at = GREATEST(last_send_at, ?) WHERE combo_id = ?`,
        [order.count, order.amountMinor, now, comboId],
      );
    } else {
      const [res] = await conn.execute<ResultSetHeader>(
        `INSERT INTO combos (sender_id, sender_name, streamer_id, room_id, gift_id, combo_count, send_count, amount_minor, first_send_at, last_send_at)
         VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?)`,
        [order.senderId, order.senderName, order.streamerId, order.roomId, order.giftId, order.count, order.amountMinor, now, now],
      );
      comboId = String(res.insertId);
    }
    await conn.execute('UPDATE combo_heads SET combo_id = ?, last_send_at = GREATEST(last_send_at, ?) WHERE sender_id = ? AND room_id = ? AND gift_id = ?', [comboId, now, ...key]);
    const [rows] = await conn.execute<RowDataPacket[]>('SELECT combo_count, amount_minor FROM combos WHERE combo_id = ?', [comboId]);
    const row = rows[0] as { combo_count: string; amount_minor: string };
    return { comboId, comboCount: String(row.combo_count), amountMinor: String(row.amount_minor) };
  }

  async markFailed(orderId: string, reason: string, now: Date): Promise<OrderRecord> {
    const code = giftErrorReasonFromJSON(`GIFT_ERROR_REASON_${reason}`);
    await this.pool.execute('UPDATE orders SET state = 4, failure_reason = ?, ended_at = ? WHERE order_id = ? AND state = 1', [code, now, orderId]);
    const order = await this.get(orderId);
    if (!order) throw new Error(`order ${orderId} not found while marking it failed`);
    return order;
  }

  async effectDone(orderId: string, effect: Effect, now: Date): Promise<OrderState | undefined> {
    return withTransaction(this.pool, async (conn) => {
      // The order row is locked first: effects finishing at the same moment in other transactions
      // would otherwise each see the others still pending, and none would mark the order DONE.
      const [locked] = await conn.execute<RowDataPacket[]>('SELECT state FROM orders WHERE order_id = ? FOR UPDATE', [orderId]);
      const code = (locked[0] as { state?: number } | undefined)?.state;
      if (code === undefined) return undefined;
      await conn.execute('UPDATE order_effects SET done_at = ?, attempts = attempts + 1 WHERE order_id = ? AND effect = ? AND done_at IS NULL', [now, orderId, EFFECT_CODE[effect]]);
      if (code !== STATE_CODE.paid) return STATE_OF[code] || undefined;
      return (await this.finishIfDone(conn, orderId, now)) ? 'done' : 'paid';
    });
  }

  async effectFailed(orderId: string, effect: Effect, error: string): Promise<void> {
    await this.pool.execute('UPDATE order_effects SET attempts = attempts + 1, last_error = ? WHERE order_id = ? AND effect = ? AND done_at IS NULL', [
      error.slice(0, 300),
      orderId,
      EFFECT_CODE[effect],
    ]);
  }

  /** PAID → DONE once no required effect is pending; true when the order is DONE. */
  private async finishIfDone(conn: PoolConnection, orderId: string, now: Date): Promise<boolean> {
    // The caller holds the order row's lock, taken before this transaction's first plain read, so
    // this read's snapshot already includes every effect committed by whoever held it before. A
    // locking read here would also lock the gap where the next orders' effect rows go.
    const [pending] = await conn.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM order_effects WHERE order_id = ? AND effect IN (?) AND done_at IS NULL', [
      orderId,
      this.required,
    ]);
    if (Number((pending[0] as { n: number }).n) !== 0) return false;
    await conn.execute('UPDATE orders SET state = 3, ended_at = ? WHERE order_id = ? AND state = 2', [now, orderId]);
    return true;
  }

  async createdBefore(before: Date, limit: number): Promise<OrderRecord[]> {
    const [rows] = await this.pool.query<OrderRow[]>('SELECT * FROM orders WHERE state = 1 AND created_at < ? ORDER BY created_at LIMIT ?', [before, limit]);
    return this.withEffects(rows);
  }

  async stuck(before: Date, afterOrderId: string, limit: number): Promise<{ orders: OrderRecord[]; total: number }> {
    const [rows] = await this.pool.query<OrderRow[]>('SELECT * FROM orders WHERE state IN (1, 2) AND created_at < ? AND order_id > ? ORDER BY order_id LIMIT ?', [
      before,
      afterOrderId,
      limit,
    ]);
    const [count] = await this.pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM orders WHERE state IN (1, 2) AND created_at < ?', [before]);
    return { orders: await this.withEffects(rows), total: Number((count[0] as { n: number }).n) };
  }

  async list(q: OrderQuery): Promise<OrderRecord[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    const add = (sql: string, value: unknown) => {
      where.push(sql);
      args.push(value);
    };
    if (q.roomId) add('room_id = ?', q.roomId);
    if (q.streamerId) add('streamer_id = ?', q.streamerId);
    if (q.senderId) add('sender_id = ?', q.senderId);
    if (q.states && q.states.length > 0) add('state IN (?)', q.states.map((s) => STATE_CODE[s]));
    if (q.paidFrom) add('paid_at >= ?', q.paidFrom);
    if (q.paidTo) add('paid_at < ?', q.paidTo);
    if (q.afterOrderId) add('order_id > ?', q.afterOrderId);
    const [rows] = await this.pool.query<OrderRow[]>(`SELECT * FROM orders ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY order_id LIMIT ?`, [...args, q.limit]);
    return this.withEffects(rows);
  }

  async consumption(userId: string, side: 'sent' | 'received', from: Date | undefined, to: Date | undefined, afterComboId: string, limit: number): Promise<ComboRecord[]> {
    const who = side === 'sent' ? 'sender_id' : 'streamer_id';
    const args: unknown[] = [userId];
    let sql = `SELECT * FROM combos WHERE ${who} = ?`;
    if (from) {
      sql += ' AND last_send_at >= ?';
      args.push(from);
    }
    if (to) {
      sql += ' AND first_send_at < ?';
      args.push(to);
    }
    if (afterComboId !== '0') {
      sql += ' AND combo_id < ?';
      args.push(afterComboId);
    }
    const [rows] = await this.pool.query<ComboRow[]>(`${sql} ORDER BY combo_id DESC LIMIT ?`, [...args, limit]);
    return rows.map(comboFromRow);
  }

  async requeue(orderId: string, now: Date): Promise<boolean> {
    return withTransaction(this.pool, async (conn) => {
      const [rows] = await conn.execute<RowDataPacket[]>('SELECT payload FROM outbox WHERE order_id = ? LIMIT 1', [orderId]);
      if (rows.length > 0) return true; // still waiting for the relay
      const order = await this.get(orderId, conn);
      if (!order || order.state !== 'paid') return false;
      const [attempts] = await conn.execute<RowDataPacket[]>('SELECT MAX(attempts) AS a FROM order_effects WHERE order_id = ?', [orderId]);
      const attempt = Number((attempts[0] as { a: number | null }).a ?? 0) + 1;
      const event = paidEvent(order, { comboId: order.comboId, comboCount: order.comboCount, amountMinor: '0' }, order.paidAt ?? now, attempt);
      // A new message id: the original is still inside JetStream's duplicate window.
      await conn.execute('INSERT INTO outbox (order_id, subject_room_id, msg_id, payload, created_at) VALUES (?, ?, ?, ?, ?)', [
        orderId,
        order.roomId,
        `${orderId}:retry:${now.getTime()}`,
        Buffer.from(event),
        now,
      ]);
      return true;
    });
  }

  private async withEffects(rows: OrderRow[]): Promise<OrderRecord[]> {
    if (rows.length === 0) return [];
    const effects = await this.effectsOf(this.pool, rows.map((r) => String(r.order_id)));
    return rows.map((r) => fromRow(r, effects.get(String(r.order_id)) ?? []));
  }

  private async effectsOf(db: Db, orderIds: string[]): Promise<Map<string, EffectRecord[]>> {
    const [rows] = await db.query<EffectRow[]>('SELECT * FROM order_effects WHERE order_id IN (?) ORDER BY order_id, effect', [orderIds]);
    const out = new Map<string, EffectRecord[]>();
    for (const r of rows) {
      const list = out.get(String(r.order_id)) ?? [];
      const effect = EFFECT_OF[r.effect];
      if (effect) list.push({ effect, doneAt: r.done_at, attempts: r.attempts, lastError: r.last_error });
      out.set(String(r.order_id), list);
    }
    return out;
  }
}
