import type { Outcome } from '../../kit/group-commit.js';
import type { ComboRecord, Effect, GiftRecord, GroupRecord, OrderRecord, OrderState, RoomFacts, SendRequest } from './model.js';

/** The Room service, through a cache that change events keep fresh. */
export interface RoomDirectory {
  get(roomId: string): Promise<RoomFacts | undefined>;
}

/** The catalog as the send path and ListRoomGifts read it (cached in memory). */
export interface CatalogView {
  gift(giftId: string): Promise<GiftRecord | undefined>;
  /** The group a room shows; '0' means the default group. */
  group(groupId: string): Promise<GroupRecord | undefined>;
}

export type TransferOutcome = { kind: 'paid'; balanceAfter: string | null } | { kind: 'insufficient_funds' } | { kind: 'voided' };

/** The Ledger, for the money of a send and its EXP. */
export interface Payments {
  /**
   * COIN from each sender to the streamer's INCOME, transfer id `gift:<order>`, for a batch of
   * orders in one Ledger call; one outcome per order, in order, an error when that order's outcome
   * is unknown.
   */
  payGifts(orders: OrderRecord[]): Promise<Array<Outcome<TransferOutcome>>>;
  /** Settles an order whose payment outcome is unknown: the transfer if it exists, else the id is voided forever. */
  settle(order: OrderRecord): Promise<'paid' | 'voided'>;
  /** EXP to each sender, transfer id `exp:<order>` (a repeat is a no-op), in one Ledger call; one outcome per grant, in order. */
  grantExps(grants: ExpGrant[]): Promise<Array<Outcome<void>>>;
}

export interface ExpGrant {
  orderId: string;
  senderId: string;
  expMinor: string;
}

export interface NewOrder extends SendRequest {
  requestHash: string;
  streamerId: string;
  unitPriceMinor: string;
  amountMinor: string;
  liveStartedAt: Date | null;
}

export interface OrderQuery {
  roomId?: string;
  streamerId?: string;
  senderId?: string;
  states?: OrderState[];
  paidFrom?: Date;
  paidTo?: Date;
  afterOrderId?: string;
  limit: number;
}

/** What creating an order found: the order, the hash its key was first used with, and whether this call made it. */
export interface CreateResult {
  order: OrderRecord;
  requestHash: string;
  created: boolean;
}

/** MySQL: orders, their effects, combos and the outbox. */
export interface OrderStore {
  /**
   * Inserts CREATED orders, one durable statement for the batch; for each (in order) the order,
   * or the one that already had its (sender, key), with the request hash it was made with.
   */
  createMany(orders: NewOrder[], now: Date): Promise<CreateResult[]>;
  /** The order a sender made with this key, if any. */
  findByKey(senderId: string, idempotencyKey: string): Promise<{ order: OrderRecord; requestHash: string } | undefined>;
  get(orderId: string): Promise<OrderRecord | undefined>;
  /**
   * CREATED → PAID in one transaction: the combo extended or opened, effect rows written, the
   * GiftPaidEvent put in the outbox. No-op (returns the order as it is) unless still CREATED.
   */
  markPaid(order: OrderRecord, balanceAfter: string | null, now: Date): Promise<OrderRecord>;
  /** `markPaid` for a batch in one transaction; one record per item, in order. */
  markPaidMany(items: Array<{ order: OrderRecord; balanceAfter: string | null }>, now: Date): Promise<OrderRecord[]>;
  /** CREATED → FAILED; no-op otherwise. */
  markFailed(orderId: string, reason: string, now: Date): Promise<OrderRecord>;
  /**
   * Records effects as applied, a batch in one transaction; an order becomes DONE when every
   * required effect is. Each order's state after it (undefined: no such order), in order.
   */
  effectsDone(acks: Array<{ orderId: string; effect: Effect }>, now: Date): Promise<Array<OrderState | undefined>>;
  effectFailed(orderId: string, effect: Effect, error: string): Promise<void>;
  /** CREATED orders older than `before`, oldest first: the recovery worker's input. */
  createdBefore(before: Date, limit: number): Promise<OrderRecord[]>;
  /** Orders not ended that were created before `before`. */
  stuck(before: Date, afterOrderId: string, limit: number): Promise<{ orders: OrderRecord[]; total: number }>;
  list(q: OrderQuery): Promise<OrderRecord[]>;
  consumption(userId: string, side: 'sent' | 'received', from: Date | undefined, to: Date | undefined, afterComboId: string, limit: number): Promise<ComboRecord[]>;
  /** Puts a paid order's event back in the outbox (RetryOrder), with a fresh message id. */
  requeue(orderId: string, now: Date): Promise<boolean>;
  /**
   * Requeues (as `requeue`) paid orders created before `before` whose effects are still missing,
   * whose event is not waiting in the outbox and that were not requeued since `before`; each is
   * claimed with a compare-and-set, so replicas running this together requeue an order once.
   * Returns the ids requeued.
   */
  republishStalled(before: Date, now: Date, limit: number): Promise<string[]>;
}

/** Kills the process at a named step when fault injection asks for it (chaos tests). */
export type CrashPoint = (step: 'after_created' | 'after_transfer' | 'after_paid' | 'after_publish' | 'after_exp_grant') => void;

/** An admin upsert's result: optimistic concurrency is decided in the store's transaction. */
export type Upserted<T> = { outcome: 'ok'; record: T; created: boolean } | { outcome: 'not_found' } | { outcome: 'version_conflict'; current: string };

/** The catalog tables: written only by admin upserts, read on cache misses. */
export interface CatalogStore {
  gift(giftId: string): Promise<GiftRecord | undefined>;
  gifts(giftIds: string[]): Promise<GiftRecord[]>;
  group(groupId: string): Promise<GroupRecord | undefined>;
  /** Groups that show a gift, so a change to it is announced to their rooms too. */
  groupsWithGift(giftId: string): Promise<string[]>;
  /** `expectedVersion` undefined: no check; `giftId` '0': create. */
  upsertGift(g: Omit<GiftRecord, 'version' | 'updatedAt'>, expectedVersion: string | undefined, now: Date): Promise<Upserted<GiftRecord>>;
  upsertGroup(g: Omit<GroupRecord, 'version' | 'updatedAt'>, expectedVersion: string | undefined, now: Date): Promise<Upserted<GroupRecord>>;
}
