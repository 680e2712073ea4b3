import { DomainError, invalidField } from '../../kit/domain-error.js';
import { failed, ok, type Outcome } from '../../kit/group-commit.js';
import { isPositiveInt64, requireCaller, requireRole, type Caller } from '../../kit/identity.js';
import { orderNotFound } from './errors.js';
import { LIMITS, type ComboRecord, type Effect, type OrderRecord, type OrderState } from './model.js';
import type { OrderStore } from './ports.js';
import type { Recovery } from './recovery.js';

/** Orders not DONE this long after creation are shown to a person (ListStuckOrders). */
const STUCK_AFTER_MS = 10 * 60 * 1000;
/** The shortest age ListStuckOrders accepts: anything younger is a saga still running. */
const MIN_STUCK_AGE_MS = 60 * 1000;
/** Acks one AckOrderEffects call may carry. */
const MAX_ACKS = 1000;

export interface Page<T> {
  items: T[];
  next: string;
}

function pageSize(n: number | undefined, fallback: number = LIMITS.defaultPageSize, max: number = LIMITS.pageSize): number {
  const size = n ?? 0;
  if (size === 0) return fallback;
  if (!Number.isInteger(size) || size < 0 || size > max) throw invalidField('page.page_size', `must be between 1 and ${max} (0 means ${fallback})`);
  return size;
}

/** ListOrders pages are larger: Ranking's rebuild reads a day of paid orders through it. */
const ORDER_PAGE = { fallback: 100, max: 1000 };

function cursor(token: string): string {
  if (token === '') return '0';
  const id = Buffer.from(token, 'base64url').toString();
  if (!isPositiveInt64(id)) throw invalidField('page.page_token', 'is not a token this RPC returned; pass next_page_token back unchanged');
  return id;
}

const token = (id: string | undefined) => (id ? Buffer.from(id).toString('base64url') : '');

/**
 * Reading orders and the saga tooling around them. Orders are visible to their sender and their
 * streamer; listings across users, stuck orders, retries and effect acknowledgements are for
 * admins (internal services and operators).
 */
export class Orders {
  constructor(
    private readonly store: OrderStore,
    private readonly recovery: Recovery,
    private readonly wakeRelay: () => void,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async get(callerOrNone: Caller | undefined, orderId: string): Promise<OrderRecord> {
    const caller = requireCaller(callerOrNone);
    if (!isPositiveInt64(orderId)) throw invalidField('order_id', 'must be a positive 64-bit integer');
    const order = await this.store.get(orderId);
    // Someone else's order is reported as missing, not as forbidden: order ids are not secrets, but existence need not leak.
    if (!order || (caller.role !== 'admin' && caller.userId !== order.senderId && caller.userId !== order.streamerId)) throw orderNotFound(orderId);
    return order;
  }

  async list(
    caller: Caller | undefined,
    q: { roomId: string; streamerId: string; senderId: string; states: OrderState[]; paidFrom?: Date; paidTo?: Date; pageSize?: number; pageToken: string },
  ): Promise<Page<OrderRecord>> {
    requireRole(caller, ['admin']);
    const given = [q.roomId, q.streamerId, q.senderId].filter((x) => x !== '' && x !== '0');
    if (given.length === 0 && !q.paidFrom && !q.paidTo) {
      throw invalidField('room_id', 'set at least one of room_id, streamer_id, sender_id or a paid time range');
    }
    const limit = pageSize(q.pageSize, ORDER_PAGE.fallback, ORDER_PAGE.max);
    const orders = await this.store.list({
      ...(q.roomId !== '0' && q.roomId !== '' ? { roomId: q.roomId } : {}),
      ...(q.streamerId !== '0' && q.streamerId !== '' ? { streamerId: q.streamerId } : {}),
      ...(q.senderId !== '0' && q.senderId !== '' ? { senderId: q.senderId } : {}),
      states: q.states,
      ...(q.paidFrom ? { paidFrom: q.paidFrom } : {}),
      ...(q.paidTo ? { paidTo: q.paidTo } : {}),
      afterOrderId: cursor(q.pageToken),
      limit: limit + 1,
    });
    return { items: orders.slice(0, limit), next: orders.length > limit ? token(orders[limit - 1]?.orderId) : '' };
  }

  /** A user's consumption records (combos merged), as sender or as the streamer who received them. */
  async consumption(
    callerOrNone: Caller | undefined,
    q: { userId: string; side: 'sent' | 'received'; from?: Date; to?: Date; pageSize?: number; pageToken: string },
  ): Promise<Page<ComboRecord>> {
    const caller = requireCaller(callerOrNone);
    const userId = q.userId === '0' || q.userId === '' ? caller.userId : q.userId;
    if (!isPositiveInt64(userId)) throw invalidField('user_id', 'must be a positive 64-bit integer');
    if (userId !== caller.userId && caller.role !== 'admin') throw new DomainError('permission_denied', 'PERMISSION_DENIED', "only admins read another user's consumption");
    const limit = pageSize(q.pageSize);
    const rows = await this.store.consumption(userId, q.side, q.from, q.to, cursor(q.pageToken), limit + 1);
    return { items: rows.slice(0, limit), next: rows.length > limit ? token(rows[limit - 1]?.comboId) : '' };
  }

  async stuck(caller: Caller | undefined, olderThanMs: number | undefined, pageSizeReq: number | undefined, pageToken: string): Promise<Page<OrderRecord> & { total: number }> {
    requireRole(caller, ['admin']);
    const age = olderThanMs ?? STUCK_AFTER_MS;
    if (age < MIN_STUCK_AGE_MS) throw invalidField('older_than', 'must be at least 1 minute (unset means 10 minutes): younger orders are still in flight, not stuck');
    const limit = pageSize(pageSizeReq);
    const { orders, total } = await this.store.stuck(new Date(this.clock().getTime() - age), cursor(pageToken), limit + 1);
    return { items: orders.slice(0, limit), next: orders.length > limit ? token(orders[limit - 1]?.orderId) : '', total };
  }

  /**
   * Pushes one order: a CREATED one is settled now (as the recovery worker would), a PAID one has
   * its event published again so every pending effect is retried. Ended orders are returned as
   * they are.
   */
  async retry(caller: Caller | undefined, orderId: string): Promise<OrderRecord> {
    requireRole(caller, ['admin']);
    if (!isPositiveInt64(orderId)) throw invalidField('order_id', 'must be a positive 64-bit integer');
    const order = await this.store.get(orderId);
    if (!order) throw orderNotFound(orderId);
    if (order.state === 'created') await this.recovery.settleOne(order);
    if (order.state === 'paid' && (await this.store.requeue(orderId, this.clock()))) this.wakeRelay();
    return (await this.store.get(orderId)) ?? order;
  }

  /** Chat and Ranking report their effect done; the order is DONE once every required effect is. */
  async ackEffect(caller: Caller | undefined, orderId: string, effect: Effect | undefined): Promise<OrderState> {
    const [only] = await this.ackEffects(caller, [{ orderId, effect }], '');
    if (!only!.ok) throw only!.error;
    return only!.value;
  }

  /**
   * AckOrderEffects: each ack checked alone (its fields named under `acks[<index>].` when
   * `fieldPrefix` says so), then every valid one recorded in one transaction.
   */
  async ackEffects(caller: Caller | undefined, acks: Array<{ orderId: string; effect: Effect | undefined }>, fieldPrefix = 'acks'): Promise<Array<Outcome<OrderState>>> {
    requireRole(caller, ['admin']);
    if (fieldPrefix && acks.length === 0) throw invalidField(fieldPrefix, `must hold 1 to ${MAX_ACKS} acks`);
    if (acks.length > MAX_ACKS) throw invalidField(fieldPrefix || 'acks', `must hold at most ${MAX_ACKS} acks (got ${acks.length}); split the batch`);
    const checked = acks.map((a, i): Outcome<{ orderId: string; effect: Effect }> => {
      const at = fieldPrefix ? `${fieldPrefix}[${i}].` : '';
      if (!isPositiveInt64(a.orderId)) return failed(invalidField(`${at}order_id`, 'must be a positive 64-bit integer'));
      if (!a.effect || a.effect === 'exp' || a.effect === 'combo') return failed(invalidField(`${at}effect`, 'must be ORDER_EFFECT_BARRAGE or ORDER_EFFECT_RANKING (Gift applies EXP and COMBO itself)'));
      return ok({ orderId: a.orderId, effect: a.effect });
    });
    const valid = checked.flatMap((c) => (c.ok ? [c.value] : []));
    const states = await this.store.effectsDone(valid, this.clock());
    let next = 0;
    return checked.map((c) => {
      if (!c.ok) return c;
      const state = states[next++];
      return state ? ok(state) : failed(orderNotFound(c.value.orderId));
    });
  }
}
