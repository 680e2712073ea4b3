import { createHash } from 'node:crypto';
import { DomainError, idempotencyKeyReused, Violations } from '../kit/domain-error.js';
import { isPositiveInt64, requireCaller, type Caller } from '../kit/identity.js';
import { giftDisabled, giftNotFound, giftNotInRoom, insufficientFunds, orderFailed, paymentPending, priceChanged, roomNotFound, roomNotLive, selfGift } from './errors.js';
import { LIMITS, type OrderRecord, type SendRequest } from './model.js';
import type { CatalogView, CrashPoint, OrderStore, Payments, RoomDirectory } from './ports.js';

export interface SendResult {
  order: OrderRecord;
  replayed: boolean;
}

const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * SendGift, a forward-only saga: validate, record the order (CREATED), move the money through the
 * Ledger with a transfer id derived from the order, then PAID with the combo and the outbox event
 * in one transaction. Once paid, nothing is refunded; effects are pushed through by consumers.
 *
 * Every step can die: a CREATED order whose payment outcome is unknown is settled by the recovery
 * worker (the transfer exists → PAID, otherwise the id is voided → FAILED), and a retry with the
 * same idempotency key returns the order wherever it is.
 */
export class GiftSender {
  constructor(
    private readonly rooms: RoomDirectory,
    private readonly catalog: CatalogView,
    private readonly orders: OrderStore,
    private readonly payments: Payments,
    private readonly crash: CrashPoint,
    private readonly onPaid: () => void,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async send(callerOrNone: Caller | undefined, input: Omit<SendRequest, 'senderId'>): Promise<SendResult> {
    const caller = requireCaller(callerOrNone);
    const req: SendRequest = { ...input, senderId: caller.userId, senderName: input.senderName.trim() };
    validate(req);
    const hash = requestHash(req);

    const { room, unitPrice } = await this.checkSendable(req);
    const amount = (BigInt(unitPrice) * BigInt(req.count)).toString();
    const { order, requestHash: storedHash, created } = await this.orders.create(
      { ...req, requestHash: hash, streamerId: room.streamerId, unitPriceMinor: unitPrice, amountMinor: amount, liveStartedAt: room.liveStartedAt },
      this.clock(),
    );
    if (storedHash !== hash) throw idempotencyKeyReused(req.idempotencyKey, 'idempotency_key');
    if (!created) return this.replay(order);
    this.crash('after_created');
    return { order: await this.pay(order), replayed: false };
  }

  /** Room live, gift in the room's group and active, price as the client expected; throws otherwise. */
  private async checkSendable(req: SendRequest) {
    const room = await this.rooms.get(req.roomId);
    if (!room) throw roomNotFound(req.roomId);
    if (room.streamerId === req.senderId) throw selfGift(req.roomId);
    const [gift, group] = await Promise.all([this.catalog.gift(req.giftId), this.catalog.group(room.giftGroupId)]);
    if (!gift) throw giftNotFound(req.giftId);
    if (!group || !group.giftIds.includes(req.giftId)) throw giftNotInRoom(req.giftId, req.roomId, group?.giftGroupId ?? room.giftGroupId);
    if (gift.status !== 'active') throw giftDisabled(req.giftId);
    if (!room.live) throw roomNotLive(req.roomId);
    if (req.expectedUnitPriceMinor !== '0' && req.expectedUnitPriceMinor !== '' && req.expectedUnitPriceMinor !== gift.priceMinor) {
      throw priceChanged(req.giftId, req.expectedUnitPriceMinor, gift.priceMinor);
    }
    return { room, unitPrice: gift.priceMinor };
  }

  private async pay(order: OrderRecord): Promise<OrderRecord> {
    let outcome;
    try {
      outcome = await this.payments.payGift(order);
    } catch (err) {
      // The Ledger may or may not have moved the money; the recovery worker will find out. A
      // definite refusal (any other error) leaves the order CREATED too, and recovery fails it.
      if (err instanceof DomainError && err.kind === 'unavailable') throw paymentPending(order.orderId);
      throw err;
    }
    this.crash('after_transfer');
    const now = this.clock();
    switch (outcome.kind) {
      case 'insufficient_funds':
        await this.orders.markFailed(order.orderId, 'INSUFFICIENT_FUNDS', now);
        throw insufficientFunds(order.orderId);
      case 'voided': {
        // Recovery settled this order as unpaid while our Transfer was on its way.
        const failed = await this.orders.markFailed(order.orderId, 'ORDER_FAILED', now);
        throw orderFailed(failed.orderId, 'its payment was voided by recovery');
      }
      case 'paid': {
        const paid = await this.orders.markPaid(order.orderId, outcome.balanceAfter, now);
        this.onPaid();
        this.crash('after_paid');
        return paid;
      }
    }
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

function validate(req: SendRequest): void {
  const v = new Violations();
  v.check(req.idempotencyKey.length > 0, 'idempotency_key', `is required: a client-chosen key (1 to ${LIMITS.idempotencyKey} characters) so a retry cannot pay twice`);
  v.check(req.idempotencyKey.length <= LIMITS.idempotencyKey, 'idempotency_key', `must be at most ${LIMITS.idempotencyKey} characters`);
  v.check(!CONTROL.test(req.idempotencyKey), 'idempotency_key', 'must not contain control characters');
  v.check(isPositiveInt64(req.roomId), 'room_id', 'must be a positive 64-bit integer');
  v.check(isPositiveInt64(req.giftId), 'gift_id', 'must be a positive 64-bit integer');
  v.check(Number.isInteger(req.count) && req.count >= 1 && req.count <= LIMITS.maxCount, 'count', `must be between 1 and ${LIMITS.maxCount}`);
  v.check([...req.senderName].length <= LIMITS.senderName, 'sender_name', `must be at most ${LIMITS.senderName} characters`);
  v.check(!CONTROL.test(req.senderName), 'sender_name', 'must not contain control characters');
  v.check(req.expectedUnitPriceMinor === '' || req.expectedUnitPriceMinor === '0' || isPositiveInt64(req.expectedUnitPriceMinor), 'expected_unit_price_minor', 'must be 0 (no check) or a positive amount');
  v.throwIfAny();
}

function requestHash(req: SendRequest): string {
  return createHash('sha256')
    .update(JSON.stringify([req.senderId, req.roomId, req.giftId, req.count, req.senderName, req.expectedUnitPriceMinor]))
    .digest('hex');
}
