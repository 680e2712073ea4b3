import { randomBytes } from 'node:crypto';
import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { retrying, rowsOf, Statements, withConnection, withTransaction } from '../../../kit/mysql.js';
import { currentTraceparent } from '../../../kit/tracing.js';
import { giftErrorReasonFromJSON, GiftPaidEvent } from '../../../gen/ts/livemesh/gift/v1/gift.js';
import { giftReason } from '../errors.js';
import { EFFECTS, LIMITS, type ComboRecord, type Effect, type EffectRecord, type OrderRecord, type OrderState } from '../model.js';
import type { CreateResult, NewOrder, OrderQuery, OrderStore } from '../ports.js';

const STATE_CODE: Record<OrderState, number> = { created: 1, paid: 2, done: 3, failed: 4 };
const STATE_OF = ['', 'created', 'paid', 'done', 'failed'] as const;
const EFFECT_CODE: Record<Effect, number> = { exp: 1, barrage: 2, ranking: 3, combo: 4 };
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
  create_token: string;
}

interface HeadRow extends RowDataPacket {
  sender_id: string;
  room_id: string;
  gift_id: string;
  combo_id: string;
  last_send_at: Date;
  combo_count: string | null;
  amount_minor: string | null;
}

/** A combo as a paying batch leaves it: an open one it extends (comboId known), or one it opens (openedBy). */
interface BatchCombo {
  comboId: string | undefined;
  openedBy: OrderRecord | undefined;
  count: bigint;
  amount: bigint;
  /** What this batch adds. */
  added: bigint;
  addedAmount: bigint;
  sends: number;
}

interface Head {
  combo: BatchCombo | undefined;
}

const headKey = (o: Pick<OrderRecord, 'senderId' | 'roomId' | 'giftId'>) => `${o.senderId}/${o.roomId}/${o.giftId}`;

const compareIds = (a: string, b: string) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0);

function compareTuples(a: readonly bigint[], b: readonly bigint[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1;
  return 0;
}

/** `(a = ? AND b = ?) OR …`, `rows` times: a lookup of many composite keys the range optimizer turns into one index dive each. */
function orMatch(columns: string[], rows: number): string {
  const one = `(${columns.map((c) => `${c} = ?`).join(' AND ')})`;
  return Array.from({ length: rows }, () => one).join(' OR ');
}

/** A derived table of `rows` placeholder rows with these column names, to join an UPDATE against. */
function unionRows(columns: string[], rows: number): string {
  const first = `SELECT ${columns.map((c) => `? AS ${c}`).join(', ')}`;
  const rest = `SELECT ${columns.map(() => '?').join(', ')}`;
  return [first, ...Array.from({ length: rows - 1 }, () => rest)].join(' UNION ALL ');
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
    failureReason: r.failure_reason ? giftReason(r.failure_reason) : '',
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

  /** `pool` must be a batching pool (kit createBatchingPool: several statements a round trip, READ COMMITTED). */
  constructor(
    private readonly pool: Pool,
    requiredEffects: readonly Effect[],
  ) {
    this.required = requiredEffects.map((e) => EFFECT_CODE[e]);
  }

  /**
   * One multi-row INSERT for the whole batch, and the rows read back in the same round trip. A
   * key already taken keeps its row (ON DUPLICATE KEY UPDATE changes nothing), and the batch's
   * random token tells the rows this statement inserted from those it found.
   */
  async createMany(orders: NewOrder[], now: Date): Promise<CreateResult[]> {
    if (orders.length === 0) return [];
    const token = randomBytes(8).readBigUInt64BE() | 1n;
    const st = new Statements();
    st.add(
      `INSERT INTO orders (sender_id, idempotency_key, request_hash, sender_name, room_id, streamer_id, gift_id, count,
         unit_price_minor, amount_minor, income_minor, exp_minor, state, live_started_at, created_at, create_token)
       VALUES ? ON DUPLICATE KEY UPDATE create_token = create_token`,
      [
        orders.map((o) => [
          o.senderId, o.idempotencyKey, o.requestHash, o.senderName, o.roomId, o.streamerId, o.giftId, o.count,
          o.unitPriceMinor, o.amountMinor, o.amountMinor, o.amountMinor, STATE_CODE.created, o.liveStartedAt, now, token,
        ]),
      ],
    );
    const keys = orders.map((o) => [o.senderId, o.idempotencyKey]);
    const iRows = st.add(`SELECT * FROM orders WHERE ${orMatch(['sender_id', 'idempotency_key'], keys.length)}`, keys.flat());
    const results = await st.run(this.pool);
    const byKey = new Map(rowsOf<OrderRow>(results[iRows]).map((r) => [`${String(r.sender_id)}/${r.idempotency_key}`, r]));
    const found = [...byKey.values()].filter((r) => BigInt(r.create_token) !== token);
    const effects = found.length > 0 ? await this.effectsOf(this.pool, found.map((r) => String(r.order_id))) : new Map<string, EffectRecord[]>();
    return orders.map((o) => {
      const row = byKey.get(`${o.senderId}/${o.idempotencyKey}`);
      if (!row) throw new Error(`order (${o.senderId}, ${o.idempotencyKey}) was neither inserted nor found`);
      const created = BigInt(row.create_token) === token;
      return { order: fromRow(row, created ? [] : (effects.get(String(row.order_id)) ?? [])), requestHash: row.request_hash, created };
    });
  }

  async findByKey(senderId: string, idempotencyKey: string): Promise<{ order: OrderRecord; requestHash: string } | undefined> {
    const [rows] = await this.pool.execute<OrderRow[]>('SELECT * FROM orders WHERE sender_id = ? AND idempotency_key = ?', [senderId, idempotencyKey]);
    const row = rows[0];
    if (!row) return undefined;
    return { order: fromRow(row, (await this.effectsOf(this.pool, [String(row.order_id)])).get(String(row.order_id)) ?? []), requestHash: row.request_hash };
  }

  async get(orderId: string, db: Db = this.pool): Promise<OrderRecord | undefined> {
    const [rows] = await db.execute<OrderRow[]>('SELECT * FROM orders WHERE order_id = ?', [orderId]);
    const row = rows[0];
    if (!row) return undefined;
    return fromRow(row, (await this.effectsOf(db, [orderId])).get(orderId) ?? []);
  }

  async markPaid(order: OrderRecord, balanceAfter: string | null, now: Date): Promise<OrderRecord> {
    return (await this.markPaidMany([{ order, balanceAfter }], now))[0]!;
  }

  /**
   * CREATED → PAID for a whole batch in one transaction of three round trips: lock the orders
   * and the combo heads they touch (in key order, so concurrent batches cannot deadlock), open
   * or extend every combo, then write the orders, combos, heads, effect rows and outbox events,
   * each kind in one multi-row statement, and commit. Orders no longer CREATED (recovery settled
   * them meanwhile) are left as they are and returned as they are now.
   */
  async markPaidMany(items: Array<{ order: OrderRecord; balanceAfter: string | null }>, now: Date): Promise<OrderRecord[]> {
    if (items.length === 0) return [];
    const paid = await retrying(() => withConnection(this.pool, (conn) => this.payBatch(conn, items, now)));
    return Promise.all(items.map(async ({ order }) => paid.get(order.orderId) ?? (await this.get(order.orderId)) ?? order));
  }

  private async payBatch(conn: PoolConnection, items: Array<{ order: OrderRecord; balanceAfter: string | null }>, now: Date): Promise<Map<string, OrderRecord>> {
    const sorted = [...items].sort((a, b) => compareIds(a.order.orderId, b.order.orderId));
    const headKeys = [...new Map(sorted.map(({ order: o }) => [headKey(o), [BigInt(o.senderId), BigInt(o.roomId), BigInt(o.giftId)] as const])).values()].sort(compareTuples);

    const st1 = new Statements();
    st1.add('START TRANSACTION');
    const iStates = st1.add('SELECT order_id, state FROM orders WHERE order_id IN (?) ORDER BY order_id FOR UPDATE', [sorted.map((i) => BigInt(i.order.orderId))]);
    st1.add('INSERT INTO combo_heads (sender_id, room_id, gift_id, combo_id, last_send_at) VALUES ? ON DUPLICATE KEY UPDATE combo_id = combo_id', [
      headKeys.map((k) => [...k, 0n, now]),
    ]);
    const iHeads = st1.add(
      `SELECT h.sender_id, h.room_id, h.gift_id, h.combo_id, h.last_send_at, c.combo_count, c.amount_minor
         FROM combo_heads h LEFT JOIN combos c ON c.combo_id = h.combo_id
        WHERE ${orMatch(['h.sender_id', 'h.room_id', 'h.gift_id'], headKeys.length)} ORDER BY h.sender_id, h.room_id, h.gift_id FOR UPDATE`,
      headKeys.flat(),
    );
    const r1 = await st1.run(conn);
    const stillCreated = new Set(rowsOf<{ order_id: string; state: number }>(r1[iStates]).filter((r) => r.state === STATE_CODE.created).map((r) => String(r.order_id)));
    const toPay = sorted.filter((i) => stillCreated.has(i.order.orderId));
    if (toPay.length === 0) {
      await conn.query('COMMIT');
      return new Map();
    }

    // Each head as it stands, then every order in id order: a send within the window of the
    // head's last send extends its combo, any other opens a new one (which the batch's later
    // sends of the same gift then extend). Counts only grow, by exactly each order's count.
    const heads = new Map<string, Head>();
    for (const r of rowsOf<HeadRow>(r1[iHeads])) {
      const comboId = String(r.combo_id);
      const open = comboId !== '0' && r.combo_count !== null && now.getTime() - r.last_send_at.getTime() <= LIMITS.comboWindowMs;
      heads.set(`${String(r.sender_id)}/${String(r.room_id)}/${String(r.gift_id)}`, {
        combo: open ? { comboId, openedBy: undefined, count: BigInt(r.combo_count!), amount: BigInt(r.amount_minor!), added: 0n, addedAmount: 0n, sends: 0 } : undefined,
      });
    }
    const placed = toPay.map(({ order, balanceAfter }) => {
      const head = heads.get(headKey(order));
      if (!head) throw new Error(`combo head for order ${order.orderId} was not locked`);
      if (!head.combo) head.combo = { comboId: undefined, openedBy: order, count: 0n, amount: 0n, added: 0n, addedAmount: 0n, sends: 0 };
      const c = head.combo;
      c.count += BigInt(order.count);
      c.amount += BigInt(order.amountMinor);
      c.added += BigInt(order.count);
      c.addedAmount += BigInt(order.amountMinor);
      c.sends++;
      return { order, balanceAfter, combo: c, comboCount: c.count, comboAmount: c.amount };
    });

    const opened = [...heads.values()].flatMap((h) => (h.combo?.openedBy ? [h.combo] : []));
    if (opened.length > 0) {
      const st2 = new Statements();
      st2.add(
        `INSERT INTO combos (sender_id, sender_name, streamer_id, room_id, gift_id, combo_count, send_count, amount_minor, first_send_at, last_send_at, opened_by_order_id) VALUES ?`,
        [
          opened.map((c) => {
            const o = c.openedBy!;
            return [BigInt(o.senderId), o.senderName, BigInt(o.streamerId), BigInt(o.roomId), BigInt(o.giftId), c.count, c.sends, c.amount, now, now, BigInt(o.orderId)];
          }),
        ],
      );
      const iIds = st2.add('SELECT combo_id, opened_by_order_id FROM combos WHERE opened_by_order_id IN (?)', [opened.map((c) => BigInt(c.openedBy!.orderId))]);
      const r2 = await st2.run(conn);
      const ids = new Map(rowsOf<{ combo_id: string; opened_by_order_id: string }>(r2[iIds]).map((r) => [String(r.opened_by_order_id), String(r.combo_id)]));
      for (const c of opened) {
        c.comboId = ids.get(c.openedBy!.orderId);
        if (!c.comboId) throw new Error(`combo opened by order ${c.openedBy!.orderId} not found after its insert`);
      }
    }

    const done = this.required.every((code) => code === EFFECT_CODE.combo);
    const st3 = new Statements();
    const extended = [...heads.values()].flatMap((h) => (h.combo && !h.combo.openedBy && h.combo.sends > 0 ? [h.combo] : []));
    if (extended.length > 0) {
      st3.add(
        `UPDATE combos c JOIN (${unionRows(['id', 'n', 's', 'a'], extended.length)}) v ON c.combo_id = v.id
            SET c.combo_count = c.combo_count + v.n, c.send_count = c.send_count + v.s, c.amount_minor = c.amount_minor + v.a, c.last_send_at = GREATEST(c.last_send_at, ?)`,
        [...extended.flatMap((c) => [BigInt(c.comboId!), c.added, BigInt(c.sends), c.addedAmount]), now],
      );
    }
    const touched = [...heads.entries()].flatMap(([k, h]) => (h.combo && h.combo.sends > 0 ? [[...k.split('/').map(BigInt), BigInt(h.combo.comboId!), now]] : []));
    st3.add('INSERT INTO combo_heads (sender_id, room_id, gift_id, combo_id, last_send_at) VALUES ? ON DUPLICATE KEY UPDATE combo_id = VALUES(combo_id), last_send_at = GREATEST(last_send_at, VALUES(last_send_at))', [touched]);
    st3.add(
      `UPDATE orders o JOIN (${unionRows(['id', 'bal', 'cid', 'cc'], placed.length)}) v ON o.order_id = v.id
          SET o.state = ?, o.paid_at = ?, o.sender_balance_after = v.bal, o.combo_id = v.cid, o.combo_count = v.cc, o.ended_at = ? WHERE o.state = ?`,
      [
        ...placed.flatMap((p) => [BigInt(p.order.orderId), p.balanceAfter === null ? null : BigInt(p.balanceAfter), BigInt(p.combo.comboId!), p.comboCount]),
        done ? STATE_CODE.done : STATE_CODE.paid,
        now,
        done ? now : null,
        STATE_CODE.created,
      ],
    );
    // The combo record is written in this very transaction, so that effect is done at once; if
    // it is the only one required, the order is DONE already.
    st3.add('INSERT INTO order_effects (order_id, effect, done_at) VALUES ?', [
      placed.flatMap((p) => EFFECTS.map((e) => [BigInt(p.order.orderId), EFFECT_CODE[e], e === 'combo' ? now : null])),
    ]);
    const records = placed.map((p): OrderRecord => ({
      ...p.order,
      state: done ? 'done' : 'paid',
      paidAt: now,
      endedAt: done ? now : null,
      senderBalanceAfter: p.balanceAfter,
      comboId: p.combo.comboId!,
      comboCount: String(p.comboCount),
      effects: EFFECTS.map((effect) => ({ effect, doneAt: effect === 'combo' ? now : null, attempts: 0, lastError: '' })),
    }));
    // The trace the PAID transaction runs in goes with each event (under group commit, a batch
    // runs in the trace of the send that opened it).
    const traceparent = currentTraceparent();
    st3.add('INSERT INTO outbox (order_id, subject_room_id, msg_id, payload, created_at, traceparent) VALUES ?', [
      placed.map((p, i) => [
        BigInt(p.order.orderId),
        BigInt(p.order.roomId),
        p.order.orderId,
        Buffer.from(paidEvent(records[i]!, { comboId: p.combo.comboId!, comboCount: String(p.comboCount), amountMinor: String(p.comboAmount) }, now, 1)),
        now,
        traceparent,
      ]),
    ]);
    st3.add('COMMIT');
    await st3.run(conn);
    return new Map(records.map((r) => [r.orderId, r]));
  }

  async markFailed(orderId: string, reason: string, now: Date): Promise<OrderRecord> {
    const code = giftErrorReasonFromJSON(`GIFT_ERROR_REASON_${reason}`);
    await this.pool.execute('UPDATE orders SET state = 4, failure_reason = ?, ended_at = ? WHERE order_id = ? AND state = 1', [code, now, orderId]);
    const order = await this.get(orderId);
    if (!order) throw new Error(`order ${orderId} not found while marking it failed`);
    return order;
  }

  /**
   * Many effect acks in one transaction and one round trip: the orders' rows are locked first, so
   * acks of the same order's other effects committing at the same moment queue behind this one
   * and see its rows (READ COMMITTED), and the DONE decision for every order is then one UPDATE:
   * PAID orders with no required effect left pending become DONE.
   */
  async effectsDone(acks: Array<{ orderId: string; effect: Effect }>, now: Date): Promise<Array<OrderState | undefined>> {
    if (acks.length === 0) return [];
    const ids = [...new Set(acks.map((a) => a.orderId))].sort(compareIds).map(BigInt);
    const st = new Statements();
    st.add('START TRANSACTION');
    st.add('SELECT order_id FROM orders WHERE order_id IN (?) ORDER BY order_id FOR UPDATE', [ids]);
    st.add(`UPDATE order_effects SET done_at = ?, attempts = attempts + 1 WHERE (${orMatch(['order_id', 'effect'], acks.length)}) AND done_at IS NULL`, [
      now,
      ...acks.flatMap((a) => [BigInt(a.orderId), EFFECT_CODE[a.effect]]),
    ]);
    st.add(
      `UPDATE orders o SET o.state = ?, o.ended_at = ? WHERE o.order_id IN (?) AND o.state = ?
          AND NOT EXISTS (SELECT 1 FROM order_effects e WHERE e.order_id = o.order_id AND e.effect IN (?) AND e.done_at IS NULL)`,
      [STATE_CODE.done, now, ids, STATE_CODE.paid, this.required],
    );
    const iStates = st.add('SELECT order_id, state FROM orders WHERE order_id IN (?)', [ids]);
    st.add('COMMIT');
    const results = await retrying(() => withConnection(this.pool, (conn) => st.run(conn)));
    const states = new Map(rowsOf<{ order_id: string; state: number }>(results[iStates]).map((r) => [String(r.order_id), STATE_OF[r.state] || undefined]));
    return acks.map((a) => states.get(a.orderId));
  }

  async effectFailed(orderId: string, effect: Effect, error: string): Promise<void> {
    await this.pool.execute('UPDATE order_effects SET attempts = attempts + 1, last_error = ? WHERE order_id = ? AND effect = ? AND done_at IS NULL', [
      error.slice(0, 300),
      orderId,
      EFFECT_CODE[effect],
    ]);
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
      await conn.execute('INSERT INTO outbox (order_id, subject_room_id, msg_id, payload, created_at, traceparent) VALUES (?, ?, ?, ?, ?, ?)', [
        orderId,
        order.roomId,
        `${orderId}:retry:${now.getTime()}`,
        Buffer.from(event),
        now,
        currentTraceparent(),
      ]);
      return true;
    });
  }

  async republishStalled(before: Date, now: Date, limit: number): Promise<string[]> {
    const [rows] = await this.pool.query<RowDataPacket[]>(
      'SELECT o.order_id FROM orders o WHERE o.state = 2 AND o.created_at < ? AND (o.republished_at IS NULL OR o.republished_at < ?) ' +
        'AND NOT EXISTS (SELECT 1 FROM outbox x WHERE x.order_id = o.order_id) ORDER BY o.order_id LIMIT ?',
      [before, before, limit],
    );
    const done: string[] = [];
    for (const r of rows) {
      const orderId = String(r.order_id);
      const [claim] = await this.pool.execute<ResultSetHeader>(
        'UPDATE orders SET republished_at = ? WHERE order_id = ? AND state = 2 AND (republished_at IS NULL OR republished_at < ?)',
        [now, orderId, before],
      );
      if (claim.affectedRows === 1 && (await this.requeue(orderId, now))) done.push(orderId);
    }
    return done;
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
