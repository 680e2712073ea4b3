import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Asset } from '../gen/ts/livemesh/common/v1/common.js';
import { OrderState, type Order } from '../gen/ts/livemesh/gift/v1/gift.js';
import { TransferKind } from '../gen/ts/livemesh/ledger/v1/ledger.js';
import { isolate } from '../scripts/isolation.js';
import type { Server } from '../scripts/mesh.js';
import { balance, giftApi, giftEnv, spawnLedger, stopServer, topUp, until, withGiftProcess } from './support/gift.js';
import { as, roomApi, startRoom, type RoomServer } from './support/room.js';

/**
 * The saga under SIGKILL: a Gift process that kills itself at one step of a send (the kit-style
 * fault switch GIFT_FAULT_KILL_AT), then a fresh process that must finish what it left. Afterwards
 * every order is DONE or FAILED, money moved exactly for the DONE ones, and each effect happened
 * once.
 */
const iso = isolate('giftcrash');
const admin = as('1', 'admin');
const STREAMER = '6100';
const STEPS = ['after_created', 'after_transfer', 'after_paid', 'after_publish', 'after_exp_grant'] as const;

let room: RoomServer;
let ledger: Awaited<ReturnType<typeof spawnLedger>>;
let roomId = '';
let giftId = '';
let env: Record<string, string>;

const withGift = <T>(extra: Record<string, string>, fn: (api: ReturnType<typeof giftApi>, server: Server) => Promise<T>): Promise<T> => withGiftProcess({ ...env, ...extra }, fn);


beforeAll(async () => {
  room = await startRoom(iso);
  ledger = await spawnLedger(iso);
  env = giftEnv(iso, room.address, ledger.server.address, { GIFT_REQUIRED_EFFECTS: 'exp,combo', GIFT_EFFECT_ACK_WAIT_MS: '1500' });
  const rooms = roomApi(room.client);
  roomId = (await rooms.createRoom({ title: 'crash room', requestId: 'c1' }, as(STREAMER, 'streamer'))).room!.roomId;
  await rooms.startLive({ roomId }, as(STREAMER, 'streamer'));
  await withGift({}, async (api) => {
    giftId = (await api.upsertGift({ gift: { name: 'rose', priceMinor: '100' } }, admin)).gift!.giftId;
    await api.upsertGiftGroup({ giftGroup: { name: 'standard', giftIds: [giftId], isDefault: true } }, admin);
  });
}, 60_000);

afterAll(async () => {
  ledger?.client.close();
  if (ledger) await stopServer(ledger.server);
  await room?.close();
  await iso.cleanup();
});

describe('SendGift survives SIGKILL at every step', () => {
  it.each(STEPS)('killed %s: the order ends DONE or FAILED, money moved iff DONE, each effect once', { timeout: 90_000 }, async (step) => {
    const viewer = String(7000 + STEPS.indexOf(step));
    await topUp(ledger.api, viewer, '10000');
    const key = `crash-${step}`;
    const request = { roomId, giftId, count: 1, idempotencyKey: key, senderName: 'crash test' };

    await withGift({ GIFT_FAULT_KILL_AT: step }, async (api, server) => {
      await api.sendGift(request, as(viewer, 'viewer')).catch(() => undefined);
      const exit = await Promise.race([server.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 20_000))]);
      expect(exit?.signal, `the process should have killed itself at ${step}`).toBe('SIGKILL');
    });

    const order: Order = await withGift({}, async (api) => {
      const listed = await until('the order to be listed', () => api.listOrders({ senderId: viewer }, admin), (r) => r.orders.length > 0);
      expect(listed.orders).toHaveLength(1);
      const orderId = listed.orders[0]!.orderId;
      const ended = await until(
        `order ${orderId} to end`,
        () => api.getOrder({ orderId }, admin),
        (r) => r.order?.state === OrderState.ORDER_STATE_DONE || r.order?.state === OrderState.ORDER_STATE_FAILED,
      );
      // A retry of the send now answers from the order, whatever happened before.
      const retried = await api.sendGift(request, as(viewer, 'viewer')).then(
        (r) => r.order?.orderId,
        () => 'refused',
      );
      expect(retried === orderId || (ended.order?.state === OrderState.ORDER_STATE_FAILED && retried === 'refused')).toBe(true);
      return ended.order!;
    });

    const coin = await balance(ledger.api, viewer, Asset.ASSET_COIN);
    const exp = await balance(ledger.api, viewer, Asset.ASSET_EXP);
    const expGrants = await ledger.api.listTransfers({ account: { ownerId: viewer, asset: Asset.ASSET_EXP }, kinds: [TransferKind.TRANSFER_KIND_EXP_GRANT] }, admin);
    if (step === 'after_created') {
      // Died before the Ledger was called: recovery voided the transfer id.
      expect(order.state).toBe(OrderState.ORDER_STATE_FAILED);
      expect([coin, exp, expGrants.transfers.length]).toEqual(['10000', '0', 0]);
    } else {
      expect(order.state).toBe(OrderState.ORDER_STATE_DONE);
      expect([coin, exp, expGrants.transfers.length]).toEqual(['9900', '100', 1]);
      expect(order.comboCount).toBe('1');
    }
  });
});
