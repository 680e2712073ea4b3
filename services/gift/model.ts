/** Gift domain types. Ids and amounts are decimal strings (int64 end to end, never a JS number). */
import { GIFT_CONTRACT } from '../../kit/contract-rules.js';

export type GiftStatus = 'active' | 'disabled';

export interface GiftRecord {
  giftId: string;
  name: string;
  priceMinor: string;
  iconKey: string;
  effectKey: string;
  status: GiftStatus;
  version: string;
  updatedAt: Date;
}

export interface GroupRecord {
  giftGroupId: string;
  name: string;
  giftIds: string[];
  isDefault: boolean;
  version: string;
  updatedAt: Date;
}

export type OrderState = 'created' | 'paid' | 'done' | 'failed';
export type Effect = 'exp' | 'barrage' | 'ranking' | 'combo';
export const EFFECTS: readonly Effect[] = ['exp', 'barrage', 'ranking', 'combo'];

export interface EffectRecord {
  effect: Effect;
  doneAt: Date | null;
  attempts: number;
  lastError: string;
}

export interface OrderRecord {
  orderId: string;
  idempotencyKey: string;
  senderId: string;
  senderName: string;
  roomId: string;
  streamerId: string;
  giftId: string;
  count: number;
  unitPriceMinor: string;
  amountMinor: string;
  incomeMinor: string;
  expMinor: string;
  state: OrderState;
  /** Reason name (INSUFFICIENT_FUNDS, ORDER_FAILED, …) when failed, else ''. */
  failureReason: string;
  comboId: string;
  comboCount: string;
  senderBalanceAfter: string | null;
  liveStartedAt: Date | null;
  createdAt: Date;
  paidAt: Date | null;
  endedAt: Date | null;
  effects: EffectRecord[];
}

/** What SendGift was asked, after validation; the request hash covers exactly these. */
export interface SendRequest {
  senderId: string;
  senderName: string;
  idempotencyKey: string;
  roomId: string;
  giftId: string;
  count: number;
  expectedUnitPriceMinor: string;
}

/** A consumption record: one combo, however many sends it merged. */
export interface ComboRecord {
  comboId: string;
  senderId: string;
  senderName: string;
  streamerId: string;
  roomId: string;
  giftId: string;
  comboCount: string;
  sendCount: string;
  amountMinor: string;
  firstSendAt: Date;
  lastSendAt: Date;
}

/** The room facts a send needs, from the Room service. */
export interface RoomFacts {
  roomId: string;
  streamerId: string;
  live: boolean;
  giftGroupId: string;
  liveStartedAt: Date | null;
  version: string;
}

export const LIMITS = {
  ...GIFT_CONTRACT,
  giftName: 32,
  groupName: 64,
  iconKey: 200,
  effectKey: 64,
  groupSize: 200,
  maxPriceMinor: 100_000_000n,
  pageSize: 100,
  defaultPageSize: 20,
  /** Sends of one gift by one sender in one room within this of the last send join its combo. */
  comboWindowMs: 3 * 60 * 1000,
} as const;
