import type { GiftServiceServer } from '../../gen/ts/livemesh/gift/v1/gift.js';
import type { AccessTable } from '../../kit/auth.js';
import { durationToMs } from '../../kit/contract-rules.js';
import { invalidField } from '../../kit/domain-error.js';
import { toStatusMessage } from '../../kit/grpc-errors.js';
import { unary } from '../../kit/handler.js';
import type { Logger } from '../../kit/logger.js';
import type { Catalog } from './catalog.js';
import { coin, fromProtoEffect, fromProtoGift, fromProtoState, sideOf, toProtoConsumption, toProtoGift, toProtoGroup, toProtoOrder, toProtoState } from './mapping.js';
import type { OrderState } from './model.js';
import type { Orders } from './orders.js';
import type { GiftSender } from './send.js';

export interface GiftUseCases {
  catalog: Catalog;
  sender: GiftSender;
  orders: Orders;
}

const durationMs = (d: { seconds: string; nanos: number } | undefined) => (d ? durationToMs(d) : undefined);

/**
 * Which services may call Gift as themselves: Chat and Ranking report the effects they applied
 * (and nobody else may mark an order's effect done), Ranking's rebuild reads paid orders, Room
 * checks a group exists before assigning it.
 */
export const GIFT_ACCESS: AccessTable = {
  AckOrderEffect: { services: ['chat', 'ranking'], users: false },
  AckOrderEffects: { services: ['chat', 'ranking'], users: false },
  ListOrders: { services: ['ranking'] },
  GetGiftGroup: { services: ['room'] },
};

/** The gRPC face of the Gift service: wire messages in, domain calls, wire messages out. */
export function giftHandlers({ catalog, sender, orders }: GiftUseCases, log: Logger): GiftServiceServer {
  return {
    listRoomGifts: unary(log, async (req) => {
      const r = await catalog.roomGifts(req.roomId, req.ifNoneMatch);
      return { roomId: r.roomId, giftGroupId: r.giftGroupId, gifts: r.gifts.map(toProtoGift), etag: r.etag, notModified: r.notModified };
    }),
    getGift: unary(log, async (req) => ({ gift: toProtoGift(await catalog.getGift(req.giftId)) })),
    getGiftGroup: unary(log, async (req) => ({ giftGroup: toProtoGroup(await catalog.getGroup(req.giftGroupId)) })),
    upsertGift: unary(log, async (req, ctx) => {
      const { gift, created } = await catalog.upsertGift(ctx.caller, fromProtoGift(req.gift), req.expectedVersion);
      return { gift: toProtoGift(gift), created };
    }),
    upsertGiftGroup: unary(log, async (req, ctx) => {
      const g = req.giftGroup;
      const { group, created } = await catalog.upsertGroup(
        ctx.caller,
        { giftGroupId: g?.giftGroupId ?? '0', name: g?.name ?? '', giftIds: g?.giftIds ?? [], isDefault: g?.isDefault ?? false },
        req.expectedVersion,
      );
      return { giftGroup: toProtoGroup(group), created };
    }),

    sendGift: unary(log, async (req, ctx) => {
      const { order, replayed } = await sender.send(ctx.caller, {
        idempotencyKey: req.idempotencyKey,
        roomId: req.roomId,
        giftId: req.giftId,
        count: req.count,
        expectedUnitPriceMinor: req.expectedUnitPriceMinor,
        senderName: req.senderName || ctx.caller?.name || '',
      });
      return {
        order: toProtoOrder(order),
        comboCount: order.comboCount,
        senderBalance: order.senderBalanceAfter === null ? undefined : coin(order.senderBalanceAfter),
        replayed,
      };
    }),
    getOrder: unary(log, async (req, ctx) => ({ order: toProtoOrder(await orders.get(ctx.caller, req.orderId)) })),
    listOrders: unary(log, async (req, ctx) => {
      const states = req.states.map<OrderState>((s, i) => {
        const state = fromProtoState(s);
        if (!state) throw invalidField(`states[${i}]`, 'must be a known OrderState');
        return state;
      });
      const page = await orders.list(ctx.caller, {
        roomId: req.roomId,
        streamerId: req.streamerId,
        senderId: req.senderId,
        states,
        ...(req.paidStartTime ? { paidFrom: req.paidStartTime } : {}),
        ...(req.paidEndTime ? { paidTo: req.paidEndTime } : {}),
        pageSize: req.page?.pageSize,
        pageToken: req.page?.pageToken ?? '',
      });
      return { orders: page.items.map(toProtoOrder), page: { nextPageToken: page.next } };
    }),
    listConsumption: unary(log, async (req, ctx) => {
      const side = sideOf(req.side);
      if (!side) throw invalidField('side', 'must be CONSUMPTION_SIDE_SENT or CONSUMPTION_SIDE_RECEIVED');
      const page = await orders.consumption(ctx.caller, {
        userId: req.userId,
        side,
        ...(req.startTime ? { from: req.startTime } : {}),
        ...(req.endTime ? { to: req.endTime } : {}),
        pageSize: req.page?.pageSize,
        pageToken: req.page?.pageToken ?? '',
      });
      return { records: page.items.map(toProtoConsumption), page: { nextPageToken: page.next } };
    }),
    listStuckOrders: unary(log, async (req, ctx) => {
      const page = await orders.stuck(ctx.caller, durationMs(req.olderThan), req.page?.pageSize, req.page?.pageToken ?? '');
      return { orders: page.items.map(toProtoOrder), page: { nextPageToken: page.next }, totalCount: String(page.total) };
    }),
    retryOrder: unary(log, async (req, ctx) => ({ order: toProtoOrder(await orders.retry(ctx.caller, req.orderId)) })),
    ackOrderEffect: unary(log, async (req, ctx) => ({ state: toProtoState(await orders.ackEffect(ctx.caller, req.orderId, fromProtoEffect(req.effect))) })),
    ackOrderEffects: unary(log, async (req, ctx) => {
      const outcomes = await orders.ackEffects(
        ctx.caller,
        req.acks.map((a) => ({ orderId: a.orderId, effect: fromProtoEffect(a.effect) })),
      );
      return { results: outcomes.map((o) => (o.ok ? { state: toProtoState(o.value) } : { error: toStatusMessage(o.error, log, ctx.method) })) };
    }),
  };
}
