import { Asset } from '../../gen/ts/livemesh/common/v1/common.js';
import {
  ConsumptionSide,
  EffectState,
  GiftErrorReason,
  giftErrorReasonFromJSON,
  GiftStatus,
  OrderEffect,
  OrderState,
  type ConsumptionRecord,
  type Gift,
  type GiftGroup,
  type Order,
} from '../../gen/ts/livemesh/gift/v1/gift.js';
import type { ComboRecord, Effect, GiftRecord, GroupRecord, OrderRecord, OrderState as DomainState } from './model.js';

const STATE: Record<DomainState, OrderState> = {
  created: OrderState.ORDER_STATE_CREATED,
  paid: OrderState.ORDER_STATE_PAID,
  done: OrderState.ORDER_STATE_DONE,
  failed: OrderState.ORDER_STATE_FAILED,
};
const EFFECT: Record<Effect, OrderEffect> = {
  exp: OrderEffect.ORDER_EFFECT_EXP,
  barrage: OrderEffect.ORDER_EFFECT_BARRAGE,
  ranking: OrderEffect.ORDER_EFFECT_RANKING,
  combo: OrderEffect.ORDER_EFFECT_COMBO,
};

export const toProtoState = (s: DomainState) => STATE[s];
export const fromProtoState = (s: OrderState): DomainState | undefined => (Object.keys(STATE) as DomainState[]).find((k) => STATE[k] === s);
export const fromProtoEffect = (e: OrderEffect): Effect | undefined => (Object.keys(EFFECT) as Effect[]).find((k) => EFFECT[k] === e);
export const coin = (amountMinor: string) => ({ asset: Asset.ASSET_COIN, amountMinor });

export function toProtoGift(g: GiftRecord): Gift {
  return {
    giftId: g.giftId,
    name: g.name,
    priceMinor: g.priceMinor,
    iconKey: g.iconKey,
    effectKey: g.effectKey,
    status: g.status === 'disabled' ? GiftStatus.GIFT_STATUS_DISABLED : GiftStatus.GIFT_STATUS_ACTIVE,
    version: g.version,
    updateTime: g.updatedAt,
  };
}

export function fromProtoGift(g: Gift | undefined): Omit<GiftRecord, 'version' | 'updatedAt'> {
  return {
    giftId: g?.giftId ?? '0',
    name: g?.name ?? '',
    priceMinor: g?.priceMinor ?? '0',
    iconKey: g?.iconKey ?? '',
    effectKey: g?.effectKey ?? '',
    status: g?.status === GiftStatus.GIFT_STATUS_DISABLED ? 'disabled' : 'active',
  };
}

/** A whole gift from its wire form (the Redis copy of a gift list is stored as protobuf). */
export function giftRecordFromProto(g: Gift): GiftRecord {
  return { ...fromProtoGift(g), version: g.version, updatedAt: g.updateTime ?? new Date(0) };
}

export function toProtoGroup(g: GroupRecord): GiftGroup {
  return { giftGroupId: g.giftGroupId, name: g.name, giftIds: g.giftIds, isDefault: g.isDefault, version: g.version, updateTime: g.updatedAt };
}

export function toProtoOrder(o: OrderRecord): Order {
  return {
    orderId: o.orderId,
    idempotencyKey: o.idempotencyKey,
    senderId: o.senderId,
    senderName: o.senderName,
    roomId: o.roomId,
    streamerId: o.streamerId,
    giftId: o.giftId,
    count: o.count,
    unitPriceMinor: o.unitPriceMinor,
    amountMinor: o.amountMinor,
    incomeMinor: o.incomeMinor,
    expMinor: o.expMinor,
    state: STATE[o.state],
    failureReason: o.failureReason ? giftErrorReasonFromJSON(`GIFT_ERROR_REASON_${o.failureReason}`) : GiftErrorReason.GIFT_ERROR_REASON_UNSPECIFIED,
    transferId: `gift:${o.orderId}`,
    comboId: o.comboId,
    comboCount: o.comboCount,
    senderBalanceAfterMinor: o.senderBalanceAfter ?? '0',
    effects: o.effects.map((e) => ({
      effect: EFFECT[e.effect],
      state: e.doneAt ? EffectState.EFFECT_STATE_DONE : EffectState.EFFECT_STATE_PENDING,
      attempts: e.attempts,
      lastError: e.lastError,
      nextAttemptTime: undefined,
      doneTime: e.doneAt ?? undefined,
    })),
    createTime: o.createdAt,
    paidTime: o.paidAt ?? undefined,
    endTime: o.endedAt ?? undefined,
    liveStartTime: o.liveStartedAt ?? undefined,
  };
}

export function toProtoConsumption(c: ComboRecord): ConsumptionRecord {
  return {
    comboId: c.comboId,
    senderId: c.senderId,
    senderName: c.senderName,
    streamerId: c.streamerId,
    roomId: c.roomId,
    giftId: c.giftId,
    comboCount: c.comboCount,
    sendCount: c.sendCount,
    amountMinor: c.amountMinor,
    firstSendTime: c.firstSendAt,
    lastSendTime: c.lastSendAt,
  };
}

export const sideOf = (s: ConsumptionSide): 'sent' | 'received' | undefined =>
  s === ConsumptionSide.CONSUMPTION_SIDE_SENT ? 'sent' : s === ConsumptionSide.CONSUMPTION_SIDE_RECEIVED ? 'received' : undefined;
