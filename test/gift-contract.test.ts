/**
 * What the contracts promise where an independent client found the code did something else
 * (issue 14, "Also fix"): retries that must find their order whatever changed since, the
 * idempotency key's charset, PRICE_CHANGED's metadata, UpsertGiftGroup's and ListStuckOrders'
 * bounds, AssignGiftGroup's check with Gift, and the BadRequest on Ledger's ACCOUNTS_NOT_ALLOWED.
 */
import { status as Code, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Asset } from '../gen/ts/livemesh/common/v1/common.js';
import { GiftStatus, OrderState, type Gift } from '../gen/ts/livemesh/gift/v1/gift.js';
import { TransferKind } from '../gen/ts/livemesh/ledger/v1/ledger.js';
import { isolate } from '../scripts/isolation.js';
import { freePorts } from '../scripts/net.js';
import { badRequestOf, errorInfoOf, serviceErrorOf } from '../kit/grpc-errors.js';
import { balance, giftApi, giftEnv, spawnLedger, startGift, stopServer, topUp, until, type GiftServer } from './support/gift.js';
import { as, roomApi, startRoom, type RoomServer } from './support/room.js';

const iso = isolate('gift-contract');
const admin = as('1', 'admin');
const STREAMER = '5300';
const streamer = as(STREAMER, 'streamer');
let room: RoomServer;
let ledger: Awaited<ReturnType<typeof spawnLedger>>;
let gift: GiftServer;
let rose: Gift;
let lily: Gift;
let tulip: Gift;
let standardGroupId = '';
let liveRoom = '';
let secondRoom = '';
let stopRoom = '';
let viewerSeq = 8300;
const newViewer = () => String(++viewerSeq);
const gapi = () => giftApi(gift.client);
const rooms = () => roomApi(room.client);


/** The gRPC failure a call ends with: code, ErrorInfo (reason, domain, metadata) and BadRequest fields. */
async function refused(p: Promise<unknown>): Promise<{ code: string; info: { reason: string; domain: string; metadata: Record<string, string> } | undefined; fields: string[] }> {
  const err = await p.then(
    (res) => {
      throw new Error(`expected a gRPC error, got ${JSON.stringify(res)}`);
    },
    (e: unknown) => e as ServiceError,
  );
  if (typeof err.code !== 'number') throw err;
  return { code: Code[err.code] ?? String(err.code), info: errorInfoOf(err.metadata), fields: badRequestOf(err.metadata)?.fieldViolations.map((v) => v.field) ?? [] };
}

beforeAll(async () => {
  // Room is wired as the mesh wires it, knowing where Gift is; Gift's port is picked first so each can name the other.
  const [giftPort] = await freePorts(1);
  room = await startRoom(iso, { GIFT_ADDR: `127.0.0.1:${giftPort}` });
  ledger = await spawnLedger(iso);
  // Without Chat and Ranking here, an order is DONE once EXP and the combo are (a deployment without them drops their effects).
  gift = await startGift(iso, giftEnv(iso, room.address, ledger.server.address, { PORT: String(giftPort), GIFT_REQUIRED_EFFECTS: 'exp,combo' }));

  const upsert = async (name: string, priceMinor: string) => (await gapi().upsertGift({ gift: { name, priceMinor, iconKey: `icons/${name}.png` } }, admin)).gift!;
  rose = await upsert('rose', '100');
  lily = await upsert('lily', '300');
  tulip = await upsert('tulip', '500');
  standardGroupId = (await gapi().upsertGiftGroup({ giftGroup: { name: 'standard', giftIds: [rose.giftId, lily.giftId, tulip.giftId], isDefault: true } }, admin)).giftGroup!.giftGroupId;

  liveRoom = (await rooms().createRoom({ title: 'contract', requestId: 'c1' }, streamer)).room!.roomId;
  secondRoom = (await rooms().createRoom({ title: 'contract two', requestId: 'c2' }, streamer)).room!.roomId;
  stopRoom = (await rooms().createRoom({ title: 'stops soon', requestId: 'c3' }, streamer)).room!.roomId;
  for (const id of [liveRoom, secondRoom, stopRoom]) await rooms().startLive({ roomId: id }, streamer);
}, 60_000);

afterAll(async () => {
  await gift?.close();
  ledger?.client.close();
  if (ledger) await stopServer(ledger.server);
  await room?.close();
  await iso.cleanup();
});

const send = (viewer: string, req: { roomId?: string; giftId?: string; count?: number; idempotencyKey?: string; expectedUnitPriceMinor?: string; senderName?: string }) =>
  gapi().sendGift({ roomId: liveRoom, giftId: rose.giftId, count: 1, idempotencyKey: `k-${Math.random().toString(36).slice(2)}`, senderName: `viewer ${viewer}`, ...req }, as(viewer, 'viewer'));

const coin = (owner: string) => balance(ledger.api, owner, Asset.ASSET_COIN);

describe('SendGift retries find their order first', () => {
  it('after StopLive, resending a DONE order returns it (replayed); a FAILED one fails the same way; another count with the key is still refused', async () => {
    const viewer = newViewer();
    await topUp(ledger.api, viewer, '1000');
    const first = await send(viewer, { roomId: stopRoom, idempotencyKey: 'after-stop', count: 2, expectedUnitPriceMinor: '100' });
    const orderId = first.order!.orderId;
    await until('the order to be DONE', () => gapi().getOrder({ orderId }, as(viewer, 'viewer')), (r) => r.order?.state === OrderState.ORDER_STATE_DONE);
    const broke = newViewer();
    const unpaid = await refused(send(broke, { roomId: stopRoom, idempotencyKey: 'broke-1' }));
    expect(unpaid.info?.reason).toBe('INSUFFICIENT_FUNDS');

    await rooms().stopLive({ roomId: stopRoom }, streamer);
    // Gift hears of the stop over NATS; until it has, the retry below would not exercise anything.
    const probe = newViewer();
    await until('Gift to see the room offline', () => refused(send(probe, { roomId: stopRoom })), (r) => r.info?.reason === 'ROOM_NOT_LIVE');

    const again = await send(viewer, { roomId: stopRoom, idempotencyKey: 'after-stop', count: 2, expectedUnitPriceMinor: '100' });
    expect(again.replayed).toBe(true);
    expect(again.order).toMatchObject({ orderId, state: OrderState.ORDER_STATE_DONE, amountMinor: '200', roomId: stopRoom });
    expect(again.senderBalance?.amountMinor).toBe('800');
    expect(await coin(viewer)).toBe('800');

    expect(await refused(send(broke, { roomId: stopRoom, idempotencyKey: 'broke-1' }))).toMatchObject({
      code: 'FAILED_PRECONDITION',
      info: { reason: 'INSUFFICIENT_FUNDS', metadata: { order_id: unpaid.info?.metadata.order_id } },
    });
    expect(await refused(send(viewer, { roomId: stopRoom, idempotencyKey: 'after-stop', count: 3 }))).toMatchObject({
      code: 'ALREADY_EXISTS',
      info: { reason: 'IDEMPOTENCY_KEY_REUSED', metadata: { field: 'idempotency_key' } },
    });
    expect(await refused(send(viewer, { roomId: stopRoom, idempotencyKey: 'after-stop-new' }))).toMatchObject({ code: 'FAILED_PRECONDITION', info: { reason: 'ROOM_NOT_LIVE' } });
    expect(await coin(viewer)).toBe('800');
  });

  it('after the price changed or the gift was disabled, the retry returns the order at the price it was paid', async () => {
    const viewer = newViewer();
    await topUp(ledger.api, viewer, '10000');
    const paid = await send(viewer, { giftId: lily.giftId, idempotencyKey: 'price-1', expectedUnitPriceMinor: '300' });
    lily = (await gapi().upsertGift({ gift: { ...lily, priceMinor: '400' } }, admin)).gift!;

    const retried = await send(viewer, { giftId: lily.giftId, idempotencyKey: 'price-1', expectedUnitPriceMinor: '300' });
    expect(retried).toMatchObject({ replayed: true, order: { orderId: paid.order?.orderId, unitPriceMinor: '300', amountMinor: '300' } });
    const unchecked = await send(viewer, { giftId: lily.giftId, idempotencyKey: 'price-1', expectedUnitPriceMinor: '0' });
    expect(unchecked).toMatchObject({ replayed: true, order: { orderId: paid.order?.orderId, unitPriceMinor: '300' } });
    expect(await refused(send(viewer, { giftId: lily.giftId, idempotencyKey: 'price-2', expectedUnitPriceMinor: '300' }))).toMatchObject({ info: { reason: 'PRICE_CHANGED' } });

    const sent = await send(viewer, { giftId: tulip.giftId, idempotencyKey: 'disabled-1' });
    tulip = (await gapi().upsertGift({ gift: { ...tulip, status: GiftStatus.GIFT_STATUS_DISABLED } }, admin)).gift!;
    const replay = await send(viewer, { giftId: tulip.giftId, idempotencyKey: 'disabled-1' });
    expect(replay).toMatchObject({ replayed: true, order: { orderId: sent.order?.orderId, amountMinor: '500' } });
    expect(await refused(send(viewer, { giftId: tulip.giftId, idempotencyKey: 'disabled-2' }))).toMatchObject({ code: 'FAILED_PRECONDITION', info: { reason: 'GIFT_DISABLED' } });

    expect(await coin(viewer)).toBe(String(10_000 - 300 - 500));
  });

  it('sender_name and expected_unit_price_minor are not compared on retry; another room, gift or count with the key is IDEMPOTENCY_KEY_REUSED', async () => {
    const viewer = newViewer();
    await topUp(ledger.api, viewer, '1000');
    const first = await send(viewer, { idempotencyKey: 'same-1', count: 2, senderName: 'Alice', expectedUnitPriceMinor: '100' });
    for (const retry of [
      { senderName: 'Alice (renamed)', expectedUnitPriceMinor: '100' },
      { senderName: 'Alice', expectedUnitPriceMinor: '0' },
      { senderName: 'Bob', expectedUnitPriceMinor: '0' },
    ]) {
      const again = await send(viewer, { idempotencyKey: 'same-1', count: 2, ...retry });
      expect(again, JSON.stringify(retry)).toMatchObject({ replayed: true, order: { orderId: first.order?.orderId, senderName: 'Alice' } });
    }
    for (const other of [{ count: 3 }, { giftId: lily.giftId, count: 2 }, { roomId: secondRoom, count: 2 }]) {
      expect(await refused(send(viewer, { idempotencyKey: 'same-1', senderName: 'Alice', ...other })), JSON.stringify(other)).toMatchObject({
        code: 'ALREADY_EXISTS',
        info: { reason: 'IDEMPOTENCY_KEY_REUSED', metadata: { field: 'idempotency_key' } },
      });
    }
    expect(await coin(viewer)).toBe('800');
  });

  it('copies of one send arriving together (a phone retrying while its first attempt is in flight) all answer with the one order, paid once', async () => {
    const viewer = newViewer();
    await topUp(ledger.api, viewer, '10000');
    // Other viewers' sends around the copies, so the copies share group commits with them and
    // with each other (a batch takes what queued while the previous ones ran).
    const others = Array.from({ length: 30 }, () => newViewer());
    await Promise.all(others.map((o) => topUp(ledger.api, o, '1000')));
    const results = await Promise.allSettled([
      ...others.map((o, i) => send(o, { idempotencyKey: `around-${i}` })),
      ...Array.from({ length: 20 }, () => send(viewer, { idempotencyKey: 'burst-1', count: 3 })),
    ]);
    expect(results.slice(0, others.length).every((r) => r.status === 'fulfilled')).toBe(true);
    // A copy in the first attempt's batch shares its outcome; one in a later batch finds the
    // order already there: paid (replayed) or, while the payment is still out, PAYMENT_PENDING
    // naming it. Never another order, never INTERNAL.
    const copies = results.slice(others.length);
    const orderIds = new Set<string>();
    let fresh = 0;
    for (const r of copies) {
      if (r.status === 'fulfilled') {
        orderIds.add(r.value.order!.orderId);
        if (!r.value.replayed) fresh++;
        continue;
      }
      const err = r.reason as ServiceError;
      expect({ code: Code[err.code], reason: errorInfoOf(err.metadata)?.reason }).toEqual({ code: 'UNAVAILABLE', reason: 'PAYMENT_PENDING' });
      orderIds.add(errorInfoOf(err.metadata)!.metadata.order_id!);
    }
    expect([...orderIds]).toHaveLength(1);
    expect(fresh).toBeLessThanOrEqual(1);
    const settled = await send(viewer, { idempotencyKey: 'burst-1', count: 3 });
    expect(settled).toMatchObject({ replayed: true, order: { orderId: [...orderIds][0] } });
    expect(await refused(send(viewer, { idempotencyKey: 'burst-1', count: 4 }))).toMatchObject({ code: 'ALREADY_EXISTS', info: { reason: 'IDEMPOTENCY_KEY_REUSED' } });
    expect(await coin(viewer)).toBe(String(10_000 - 300));
  });
});

describe('SendGift request checks', () => {
  it("the idempotency key's charset is enforced: other characters are INVALID_ARGUMENT naming idempotency_key, and no order is created", async () => {
    const viewer = newViewer();
    await topUp(ledger.api, viewer, '1000');
    for (const key of ['with space', 'price€', 'a/b', 'tab\there', 'ключ', 'x'.repeat(65), '']) {
      expect(await refused(send(viewer, { idempotencyKey: key })), JSON.stringify(key)).toMatchObject({ code: 'INVALID_ARGUMENT', fields: ['idempotency_key'] });
    }
    expect((await gapi().listOrders({ senderId: viewer }, admin)).orders).toEqual([]);
    for (const key of ['Az09._:-', 'k'.repeat(64)]) expect((await send(viewer, { idempotencyKey: key })).replayed).toBe(false);
    expect((await gapi().listOrders({ senderId: viewer }, admin)).orders.map((o) => o.idempotencyKey).sort()).toEqual(['Az09._:-', 'k'.repeat(64)]);
    expect(await coin(viewer)).toBe('800');
  });

  it('PRICE_CHANGED carries the current price under ErrorInfo.metadata["price_minor"], and nothing is debited', async () => {
    const viewer = newViewer();
    await topUp(ledger.api, viewer, '1000');
    const r = await refused(send(viewer, { expectedUnitPriceMinor: '99' }));
    expect(r).toMatchObject({ code: 'FAILED_PRECONDITION', info: { reason: 'PRICE_CHANGED', domain: 'livemesh.gift', metadata: { price_minor: '100', gift_id: rose.giftId } } });
    expect(await coin(viewer)).toBe('1000');
  });
});

describe('catalog and saga tooling bounds', () => {
  it('UpsertGiftGroup refuses an empty gift_ids, on create and on replace', async () => {
    expect(await refused(gapi().upsertGiftGroup({ giftGroup: { name: 'empty', giftIds: [] } }, admin))).toMatchObject({ code: 'INVALID_ARGUMENT', fields: ['gift_group.gift_ids'] });
    expect(await refused(gapi().upsertGiftGroup({ giftGroup: { giftGroupId: standardGroupId, name: 'standard', giftIds: [], isDefault: true } }, admin))).toMatchObject({
      code: 'INVALID_ARGUMENT',
      fields: ['gift_group.gift_ids'],
    });
    expect((await gapi().getGiftGroup({ giftGroupId: standardGroupId })).giftGroup?.giftIds).toEqual([rose.giftId, lily.giftId, tulip.giftId]);
  });

  it('ListStuckOrders takes older_than of at least a minute (unset: 10 minutes)', async () => {
    for (const olderThan of [{ seconds: '10', nanos: 0 }, { seconds: '59', nanos: 999_000_000 }, { seconds: '0', nanos: 0 }]) {
      expect(await refused(gapi().listStuckOrders({ olderThan }, admin)), JSON.stringify(olderThan)).toMatchObject({ code: 'INVALID_ARGUMENT', fields: ['older_than'] });
    }
    expect((await gapi().listStuckOrders({ olderThan: { seconds: '60', nanos: 0 } }, admin)).orders).toBeDefined();
    expect((await gapi().listStuckOrders({}, admin)).orders).toBeDefined();
  });
});

describe('Room AssignGiftGroup', () => {
  it('refuses a group Gift does not have (NOT_FOUND / GIFT_GROUP_NOT_FOUND) and leaves the room as it was; existing groups and 0 are assigned', async () => {
    const premium = (await gapi().upsertGiftGroup({ giftGroup: { name: 'premium', giftIds: [lily.giftId] } }, admin)).giftGroup!;
    const roomId = (await rooms().createRoom({ title: 'assign', requestId: 'c-assign' }, streamer)).room!.roomId;
    const assigned = (await rooms().assignGiftGroup({ roomId, giftGroupId: premium.giftGroupId }, admin)).room!;
    expect(assigned.giftGroupId).toBe(premium.giftGroupId);

    expect(await refused(rooms().assignGiftGroup({ roomId, giftGroupId: '987654321' }, admin))).toMatchObject({
      code: 'NOT_FOUND',
      info: { reason: 'GIFT_GROUP_NOT_FOUND', domain: 'livemesh.room', metadata: { gift_group_id: '987654321' } },
    });
    expect((await rooms().getRoom({ roomId })).room).toMatchObject({ giftGroupId: premium.giftGroupId, version: assigned.version });
    // The role check still comes first: a streamer learns nothing about which groups exist.
    expect(await refused(rooms().assignGiftGroup({ roomId, giftGroupId: '987654321' }, streamer))).toMatchObject({ code: 'PERMISSION_DENIED' });

    expect((await rooms().assignGiftGroup({ roomId, giftGroupId: '0' }, admin)).room?.giftGroupId).toBe('0');
    expect((await rooms().assignGiftGroup({ roomId, giftGroupId: standardGroupId }, admin)).room?.giftGroupId).toBe(standardGroupId);
  });

  it('answers UNAVAILABLE, changing nothing, when Gift cannot be asked; 0 needs no Gift', async () => {
    const [deadPort] = await freePorts(1);
    const cut = await startRoom(iso, { GIFT_ADDR: `127.0.0.1:${deadPort}`, ROOM_STARTUP_CHECK: 'off' });
    try {
      const api = roomApi(cut.client);
      const roomId = (await api.createRoom({ title: 'no gift', requestId: 'c-cut' }, streamer)).room!.roomId;
      expect(await refused(api.assignGiftGroup({ roomId, giftGroupId: standardGroupId }, admin))).toMatchObject({
        code: 'UNAVAILABLE',
        info: { reason: 'DEPENDENCY_UNAVAILABLE', metadata: { gift_group_id: standardGroupId } },
      });
      expect((await api.getRoom({ roomId })).room?.giftGroupId).toBe('0');
      expect((await api.assignGiftGroup({ roomId, giftGroupId: '0' }, admin)).room?.giftGroupId).toBe('0');
    } finally {
      await cut.close();
    }
  });
});

describe('Ledger ACCOUNTS_NOT_ALLOWED', () => {
  const payer = '8801';
  const payee = '8802';
  const expBetweenUsers = {
    transferId: 'exp-between-users',
    kind: TransferKind.TRANSFER_KIND_EXP_GRANT,
    payer: { ownerId: payer, asset: Asset.ASSET_EXP },
    payee: { ownerId: payee, asset: Asset.ASSET_EXP },
    amountMinor: '5',
  };

  it('carries a BadRequest naming the offending field, besides ErrorInfo.metadata["field"]', async () => {
    expect(await refused(ledger.api.transfer(expBetweenUsers, admin))).toMatchObject({
      code: 'INVALID_ARGUMENT',
      info: { reason: 'ACCOUNTS_NOT_ALLOWED', domain: 'livemesh.ledger', metadata: { field: 'payer' } },
      fields: ['payer'],
    });
    const toSelf = { transferId: 'gift-to-self', kind: TransferKind.TRANSFER_KIND_GIFT, payer: { ownerId: payer, asset: Asset.ASSET_COIN }, payee: { ownerId: payer, asset: Asset.ASSET_INCOME }, amountMinor: '5' };
    expect(await refused(ledger.api.transfer(toSelf, admin))).toMatchObject({ info: { reason: 'ACCOUNTS_NOT_ALLOWED' }, fields: ['payee.owner_id'] });
  });

  it('in CreateTransfers, the item’s status names `transfers[<index>].<field>` in its BadRequest', async () => {
    await topUp(ledger.api, payer, '100');
    const ok = { transferId: 'batch-ok', kind: TransferKind.TRANSFER_KIND_GIFT, payer: { ownerId: payer, asset: Asset.ASSET_COIN }, payee: { ownerId: payee, asset: Asset.ASSET_INCOME }, amountMinor: '5' };
    const { results } = await ledger.api.createTransfers({ transfers: [ok, expBetweenUsers] }, admin);
    expect(results[0]?.transfer?.transfer?.transferId).toBe('batch-ok');
    const err = serviceErrorOf(results[1]!.error!);
    expect(err.code).toBe(Code.INVALID_ARGUMENT);
    expect(errorInfoOf(err.metadata)).toMatchObject({ reason: 'ACCOUNTS_NOT_ALLOWED', metadata: { field: 'transfers[1].payer' } });
    expect(badRequestOf(err.metadata)?.fieldViolations.map((v) => v.field)).toEqual(['transfers[1].payer']);
  });
});
