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
  /** COIN from the sender to the streamer's INCOME, transfer id `gift:<order>`. Throws when the outcome is unknown. */
  payGift(order: OrderRecord): Promise<TransferOutcome>;
  /** Settles an order whose payment outcome is unknown: the transfer if it exists, else the id is voided forever. */
  settle(order: OrderRecord): Promise<'paid' | 'voided'>;
  /** EXP to the sender, transfer id `exp:<order>`; a repeat is a no-op. */
  grantExp(grant: { orderId: string; senderId: string; expMinor: string }): Promise<void>;
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

/** MySQL: orders, their effects, combos and the outbox. */
export interface OrderStore {
  /** Inserts a CREATED order, or returns the order that already has this (sender, key) and its request hash. */
  create(order: NewOrder, now: Date): Promise<{ order: OrderRecord; requestHash: string; created: boolean }>;
  get(orderId: string): Promise<OrderRecord | undefined>;
  /**
   * CREATED → PAID in one transaction: the combo extended or opened, effect rows written, the
   * GiftPaidEvent put in the outbox. No-op (returns the order as it is) unless still CREATED.
   */
  markPaid(orderId: string, balanceAfter: string | null, now: Date): Promise<OrderRecord>;
  /** CREATED → FAILED; no-op otherwise. */
  markFailed(orderId: string, reason: string, now: Date): Promise<OrderRecord>;
  /** Records an effect as applied; the order becomes DONE when every required effect is. */
  effectDone(orderId: string, effect: Effect, now: Date): Promise<OrderState | undefined>;
  effectFailed(orderId: string, effect: Effect, error: string): Promise<void>;
  /** CREATED orders older than `before`, oldest first: the recovery worker's input. */
  createdBefore(before: Date, limit: number): Promise<OrderRecord[]>;
  /** Orders not ended that were created before `before`. */
  stuck(before: Date, afterOrderId: string, limit: number): Promise<{ orders: OrderRecord[]; total: number }>;
  list(q: OrderQuery): Promise<OrderRecord[]>;
  consumption(userId: string, side: 'sent' | 'received', from: Date | undefined, to: Date | undefined, afterComboId: string, limit: number): Promise<ComboRecord[]>;
  /** Puts a paid order's event back in the outbox (RetryOrder), with a fresh message id. */
  requeue(orderId: string, now: Date): Promise<boolean>;
}

/** Kills the process at a named step when fault injection asks for it (chaos tests). */
export type CrashPoint = (step: 'after_created' | 'after_transfer' | 'after_paid' | 'after_publish' | 'after_exp_grant') => void;
