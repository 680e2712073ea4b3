import { createHash } from 'node:crypto';
import { DomainError, idempotencyKeyReused, Violations } from '../../kit/domain-error.js';
import { isPositiveInt64, requireCaller, type Caller } from '../../kit/identity.js';
import { giftDisabled, giftNotFound, giftNotInRoom, insufficientFunds, orderFailed, paymentPending, priceChanged, roomNotFound, roomNotLive, selfGift } from './errors.js';
import { failed, GroupCommit, ok, type Outcome } from '../../kit/group-commit.js';
import { CONTROL_CHARS as CONTROL } from '../../kit/contract-rules.js';
import { LIMITS, type OrderRecord, type RoomFacts, type SendRequest } from './model.js';
import type { CatalogView, CrashPoint, NewOrder, OrderStore, Payments, RoomDirectory } from './ports.js';

export interface SendResult {
  order: OrderRecord;
  replayed: boolean;
}

/** The idempotency key's documented charset (SendGiftRequest.idempotency_key). */
const KEY_PATTERN = /^[A-Za-z0-9._:-]+$/;

/** One send on its way into a batch: validated and priced, waiting for its order row. */
interface Pending {
  order: NewOrder;
  req: SendRequest;
}

export interface SendBatching {
  /** Most sends one batch takes. */
  maxBatch: number;
  /** Batches in flight at once; sends arriving while all are busy wait for the next. */
  concurrency: number;
}

/**
 * SendGift, a forward-only saga: validate, record the order (CREATED), move the money through the
 * Ledger with a transfer id derived from the order, then PAID with the combo and the outbox event
 * in one transaction. Once paid, nothing is refunded; effects are pushed through by consumers.
 *
 * Sends are group-committed: those arriving while earlier batches are in flight go together, so
 * a batch costs one INSERT for all its orders, one CreateTransfers call for all its payments and
 * one transaction for all its PAID transitions, while each send keeps its own outcome. An idle
 * service sends a lone request at once; batches only form under load.
 *
 * Every step can die: a CREATED order whose payment outcome is unknown is settled by the recovery
 * worker (the transfer exists → PAID, otherwise the id is voided → FAILED), and a retry with the
 * same idempotency key returns the order wherever it is.
 */
export class GiftSender {
  private readonly batches: GroupCommit<Pending, SendResult>;

  constructor(
    private readonly rooms: RoomDirectory,
    private readonly catalog: CatalogView,
    private readonly orders: OrderStore,
    private readonly payments: Payments,
    private readonly crash: CrashPoint,
    private readonly onPaid: () => void,
    batching: SendBatching = { maxBatch: 200, concurrency: 4 },
    private readonly clock: () => Date = () => new Date(),
  ) {
    this.batches = new GroupCommit((items) => this.sendBatch(items), batching);
  }

  async send(callerOrNone: Caller | undefined, input: Omit<SendRequest, 'senderId'>): Promise<SendResult> {
    const caller = requireCaller(callerOrNone);
    const req: SendRequest = { ...input, senderId: caller.userId, senderName: input.senderName.trim() };
    validate(req);
    let sendable: { room: RoomFacts; unitPrice: string };
    try {
      sendable = await this.checkSendable(req);
    } catch (err) {
      // A retry finds its order first, whatever has changed since (the room stopped, the price
      // moved, the gift was disabled): it was valid when first sent, and it must not look failed.
      // Looked up only on this refusal path, so a first send pays nothing for it.
      if (!(err instanceof DomainError)) throw err;
      const prior = await this.orders.findByKey(req.senderId, req.idempotencyKey);
      if (!prior) throw err;
      if (!sameRequest(prior.requestHash, req)) throw idempotencyKeyReused(req.idempotencyKey, 'idempotency_key');
      return this.replay(prior.order);
    }
    const { room, unitPrice } = sendable;
    const amount = (BigInt(unitPrice) * BigInt(req.count)).toString();
    return this.batches.submit({
      req,
      order: { ...req, requestHash: requestHash(req), streamerId: room.streamerId, unitPriceMinor: unitPrice, amountMinor: amount, liveStartedAt: room.liveStartedAt },
    });
  }

  /**
   * Room live, gift in the room's group and active, price as the client expected; throws otherwise.
   * The room's state comes first: a room that is not live answers ROOM_NOT_LIVE whatever the gift,
   * since no gift could be sent there now (an offline room may even have no gift group).
   */
  private async checkSendable(req: SendRequest) {
    const room = await this.rooms.get(req.roomId);
    if (!room) throw roomNotFound(req.roomId);
    if (room.streamerId === req.senderId) throw selfGift(req.roomId);
    if (!room.live) throw roomNotLive(req.roomId);
    const [gift, group] = await Promise.all([this.catalog.gift(req.giftId), this.catalog.group(room.giftGroupId)]);
    if (!gift) throw giftNotFound(req.giftId);
    if (!group || !group.giftIds.includes(req.giftId)) throw giftNotInRoom(req.giftId, req.roomId, group?.giftGroupId ?? room.giftGroupId);
    if (gift.status !== 'active') throw giftDisabled(req.giftId);
    if (req.expectedUnitPriceMinor !== '0' && req.expectedUnitPriceMinor !== '' && req.expectedUnitPriceMinor !== gift.priceMinor) {
      throw priceChanged(req.giftId, req.expectedUnitPriceMinor, gift.priceMinor);
    }
    return { room, unitPrice: gift.priceMinor };
  }

  /**
   * One batch of the saga. The same (sender, key) can arrive more than once in a batch (a phone
   * retrying while its first attempt is still queued): only the first goes to the store, which
   * would otherwise see one row and report it created to each copy and pay it as many times over;
   * every later copy gets the first's outcome as a retry would (replayed, or the same refusal).
   */
  private async sendBatch(items: Pending[]): Promise<Array<Outcome<SendResult>>> {
    const firstOf = new Map<string, number>();
    const unique: Pending[] = [];
    const slot = items.map((item) => {
      const key = `${item.req.senderId}/${item.req.idempotencyKey}`;
      let at = firstOf.get(key);
      if (at === undefined) {
        at = unique.push(item) - 1;
        firstOf.set(key, at);
      }
      return at;
    });
    if (unique.length === items.length) return this.sendUnique(items);
    const outcomes = await this.sendUnique(unique);
    return items.map((item, i) => {
      const at = slot[i]!;
      const first = outcomes[at]!;
      if (unique[at] === item) return first;
      if (unique[at]!.order.requestHash !== item.order.requestHash) return failed(idempotencyKeyReused(item.req.idempotencyKey, 'idempotency_key'));
      return first.ok ? ok({ order: first.value.order, replayed: true }) : first;
    });
  }

  /** Orders with distinct keys: every order CREATED (durably) before any money moves, then paid together. */
  private async sendUnique(items: Pending[]): Promise<Array<Outcome<SendResult>>> {
    const created = await this.orders.createMany(
      items.map((i) => i.order),
      this.clock(),
    );
    const out = new Array<Outcome<SendResult>>(items.length);
    const fresh: number[] = [];
    created.forEach((c, i) => {
      const item = items[i]!;
      if (!sameRequest(c.requestHash, item.req)) out[i] = failed(idempotencyKeyReused(item.req.idempotencyKey, 'idempotency_key'));
      else if (!c.created) out[i] = attempt(() => this.replay(c.order));
      else fresh.push(i);
    });
    if (fresh.length === 0) return out;
    this.crash('after_created');
    try {
      await this.pay(
        fresh.map((i) => created[i]!.order),
        (k, outcome) => (out[fresh[k]!] = outcome),
      );
    } catch (err) {
      // MySQL failed after the Ledger answered: the orders stay CREATED and recovery settles them.
      for (const i of fresh) out[i] ??= failed(err);
    }
    return out;
  }

  private async pay(orders: OrderRecord[], settle: (k: number, outcome: Outcome<SendResult>) => void): Promise<void> {
    const outcomes = await this.payments.payGifts(orders);
    this.crash('after_transfer');
    const now = this.clock();
    const paid: Array<{ k: number; order: OrderRecord; balanceAfter: string | null }> = [];
    await Promise.all(
      outcomes.map(async (outcome, k) => {
        const order = orders[k]!;
        if (!outcome.ok) {
          // The Ledger may or may not have moved the money; the recovery worker will find out. A
          // definite refusal (any other error) leaves the order CREATED too, and recovery fails it.
          const err = outcome.error;
          settle(k, failed(err instanceof DomainError && err.kind === 'unavailable' ? paymentPending(order.orderId) : err));
          return;
        }
        switch (outcome.value.kind) {
          case 'insufficient_funds':
            await this.orders.markFailed(order.orderId, 'INSUFFICIENT_FUNDS', now);
            settle(k, failed(insufficientFunds(order.orderId)));
            return;
          case 'voided': {
            // Recovery settled this order as unpaid while our Transfer was on its way.
            const failedOrder = await this.orders.markFailed(order.orderId, 'ORDER_FAILED', now);
            settle(k, failed(orderFailed(failedOrder.orderId, 'its payment was voided by recovery')));
            return;
          }
          case 'paid':
            paid.push({ k, order, balanceAfter: outcome.value.balanceAfter });
        }
      }),
    );
    if (paid.length === 0) return;
    const records = await this.orders.markPaidMany(paid, now);
    this.onPaid();
    this.crash('after_paid');
    paid.forEach((p, j) => settle(p.k, ok({ order: records[j]!, replayed: false })));
  }

  /** A retry: the order as it is now; a failed one fails the same way again. */
  private replay(order: OrderRecord): SendResult {
    if (order.state === 'failed') {
      throw order.failureReason === 'INSUFFICIENT_FUNDS' ? insufficientFunds(order.orderId) : orderFailed(order.orderId, order.failureReason.toLowerCase());
    }
    if (order.state === 'created') throw paymentPending(order.orderId);
    return { order, replayed: true };
  }
}

function attempt<T>(fn: () => T): Outcome<T> {
  try {
    return ok(fn());
  } catch (err) {
    return failed(err);
  }
}

function validate(req: SendRequest): void {
  const v = new Violations();
  v.check(req.idempotencyKey.length > 0, 'idempotency_key', `is required: a client-chosen key (1 to ${LIMITS.idempotencyKey} characters of A-Z a-z 0-9 . _ : -) so a retry cannot pay twice`);
  v.check(req.idempotencyKey.length <= LIMITS.idempotencyKey, 'idempotency_key', `must be at most ${LIMITS.idempotencyKey} characters`);
  v.check(req.idempotencyKey === '' || KEY_PATTERN.test(req.idempotencyKey), 'idempotency_key', 'may contain only letters A-Z a-z, digits and . _ : -');
  v.check(isPositiveInt64(req.roomId), 'room_id', 'must be a positive 64-bit integer');
  v.check(isPositiveInt64(req.giftId), 'gift_id', 'must be a positive 64-bit integer');
  v.check(Number.isInteger(req.count) && req.count >= 1 && req.count <= LIMITS.maxCount, 'count', `must be between 1 and ${LIMITS.maxCount}`);
  v.check([...req.senderName].length <= LIMITS.senderName, 'sender_name', `must be at most ${LIMITS.senderName} characters`);
  v.check(!CONTROL.test(req.senderName), 'sender_name', 'must not contain control characters');
  v.check(req.expectedUnitPriceMinor === '' || req.expectedUnitPriceMinor === '0' || isPositiveInt64(req.expectedUnitPriceMinor), 'expected_unit_price_minor', 'must be 0 (no check) or a positive amount');
  v.throwIfAny();
}

const sha256 = (fields: unknown[]) => createHash('sha256').update(JSON.stringify(fields)).digest('hex');

/**
 * What makes a retry the same request, as the contract says: sender, room, gift and count. The
 * display name and the expected price are not compared, so a phone that retries after the user
 * renamed themselves, or after it refreshed the price list, gets its order instead of an error
 * (the first attempt already checked the price; the retry can never pay a second time).
 */
function requestHash(req: SendRequest): string {
  return sha256([req.senderId, req.roomId, req.giftId, req.count]);
}

/** Orders created before the hash above also covered the name and the expected price; a retry identical to them still matches. */
function sameRequest(stored: string, req: SendRequest): boolean {
  return stored === requestHash(req) || stored === sha256([req.senderId, req.roomId, req.giftId, req.count, req.senderName, req.expectedUnitPriceMinor]);
}
