import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Asset } from '../gen/ts/livemesh/common/v1/common.js';
import { ConsumptionSide, OrderEffect, OrderState, type Gift } from '../gen/ts/livemesh/gift/v1/gift.js';
import { mysqlOptions, quoteIdent } from '../kit/mysql.js';
import { isolate } from '../scripts/isolation.js';
import { balance, giftApi, giftEnv, spawnLedger, startGift, stopServer, topUp, until, type GiftServer } from './support/gift.js';
import { EventPriority } from '../gen/ts/livemesh/chat/v1/chat.js';
import { RankingPeriod } from '../gen/ts/livemesh/ranking/v1/ranking.js';
import { follow, natsProbe, rankingApi, startChat, startRanking, untilLive, type ChatServer, type RankingServer } from './support/chat.js';
import { as, failure, roomApi, startRoom, type RoomServer } from './support/room.js';

const iso = isolate('gift');
const admin = as('1', 'admin');
const STREAMER = '5100';
let room: RoomServer;
let ledger: Awaited<ReturnType<typeof spawnLedger>>;
let gift: GiftServer;
let chat: ChatServer;
let ranking: RankingServer;
let rose: Gift;
let rocket: Gift;
let castle: Gift;
let liveRoom = '';
let offlineRoom = '';
let castleRoom = '';
let viewerSeq = 7100;
const newViewer = () => String(++viewerSeq);
const gapi = () => giftApi(gift.client);


beforeAll(async () => {
  room = await startRoom(iso);
  ledger = await spawnLedger(iso);
  // Every effect is required: an order is DONE only once Chat (barrage) and Ranking (board) have
  // reported theirs to this Gift with AckOrderEffect.
  // Paid orders still missing effects 3 s after creation are published again (normally 2 minutes).
  gift = await startGift(iso, giftEnv(iso, room.address, ledger.server.address, { GIFT_REPUBLISH_AFTER_MS: '3000' }));
  const effects = { ROOM_ADDR: room.address, GIFT_ADDR: gift.address, LEDGER_ADDR: ledger.server.address, GIFT_CONSUMER_ACK_WAIT_MS: '2000' };
  chat = await startChat(iso, effects);
  ranking = await startRanking(iso, { ...effects, RANKING_SNAPSHOT_MS: '100' });

  const upsert = async (name: string, priceMinor: string) => (await gapi().upsertGift({ gift: { name, priceMinor, iconKey: `icons/${name}.png`, effectKey: name } }, admin)).gift!;
  rose = await upsert('rose', '100');
  rocket = await upsert('rocket', '50000');
  castle = await upsert('castle', '200000');
  await gapi().upsertGiftGroup({ giftGroup: { name: 'standard', giftIds: [rose.giftId, rocket.giftId], isDefault: true } }, admin);
  const premium = (await gapi().upsertGiftGroup({ giftGroup: { name: 'premium', giftIds: [castle.giftId] } }, admin)).giftGroup!;

  const rooms = roomApi(room.client);
  const streamer = as(STREAMER, 'streamer');
  liveRoom = (await rooms.createRoom({ title: 'gifts welcome', requestId: 'g1' }, streamer)).room!.roomId;
  offlineRoom = (await rooms.createRoom({ title: 'closed', requestId: 'g2' }, streamer)).room!.roomId;
  castleRoom = (await rooms.createRoom({ title: 'premium', requestId: 'g3' }, streamer)).room!.roomId;
  await rooms.startLive({ roomId: liveRoom }, streamer);
  await rooms.startLive({ roomId: castleRoom }, streamer);
  await rooms.assignGiftGroup({ roomId: castleRoom, giftGroupId: premium.giftGroupId }, admin);
}, 60_000);

afterAll(async () => {
  await chat?.close();
  await ranking?.close();
  await gift?.close();
  ledger?.client.close();
  if (ledger) await stopServer(ledger.server);
  await room?.close();
  await iso.cleanup();
});

const send = (viewer: string, req: { roomId?: string; giftId?: string; count?: number; idempotencyKey?: string }) =>
  gapi().sendGift({ roomId: liveRoom, giftId: rose.giftId, count: 1, idempotencyKey: `k-${Math.random()}`, senderName: `viewer ${viewer}`, ...req }, as(viewer, 'viewer'));

describe('SendGift', () => {
  it('debits the viewer, credits the streamer, grants EXP, shows one barrage and moves the ranking; the order reaches DONE', async () => {
    const viewer = newViewer();
    await topUp(ledger.api, viewer, '1000');
    const barrages = follow(chat.client, { roomId: liveRoom, minPriority: EventPriority.EVENT_PRIORITY_LOW });
    // The barrage must find the stream live: Chat subscribes the room on NATS only after the call
    // starts, and a barrage published before that is not for this stream.
    const probe = await natsProbe(iso);
    try {
      await untilLive(probe, liveRoom, barrages);
    } finally {
      await probe.close();
    }
    const income0 = BigInt(await balance(ledger.api, STREAMER, Asset.ASSET_INCOME));
    const res = await send(viewer, { count: 3 });
    expect(res.order).toMatchObject({ senderId: viewer, streamerId: STREAMER, count: 3, amountMinor: '300', transferId: `gift:${res.order?.orderId}` });
    expect(res.comboCount).toBe('3');
    expect(res.senderBalance?.amountMinor).toBe('700');
    expect(res.replayed).toBe(false);

    const done = await until('the order to be DONE', () => gapi().getOrder({ orderId: res.order?.orderId }, as(viewer, 'viewer')), (r) => r.order?.state === OrderState.ORDER_STATE_DONE);
    expect(done.order?.effects.filter((e) => e.doneTime).length).toBeGreaterThanOrEqual(2);
    expect(await balance(ledger.api, viewer, Asset.ASSET_COIN)).toBe('700');
    expect(await balance(ledger.api, viewer, Asset.ASSET_EXP)).toBe('300');
    await until('the streamer to be credited', async () => BigInt(await balance(ledger.api, STREAMER, Asset.ASSET_INCOME)) - income0, (d) => d === 300n);
    const board = await until(
      'the sender on the live board',
      () => rankingApi(ranking.client).getRoomRanking({ roomId: liveRoom, period: RankingPeriod.RANKING_PERIOD_LIVE, limit: 10 }),
      (r) => r.entries.some((e) => e.userId === viewer),
    );
    expect(board.entries.find((e) => e.userId === viewer)?.scoreMinor).toBe('300');
    const mine = () => barrages.events().filter((e) => e.gift?.orderId === res.order?.orderId);
    await until('the barrage', () => mine().length, (n) => n >= 1);
    expect(mine()).toHaveLength(1);
    barrages.stream.cancel();
  });

  it('a paid order whose effect went missing (its event lost on the way) is published again, reaches DONE, and counts once', async () => {
    const viewer = newViewer();
    await topUp(ledger.api, viewer, '1000');
    const res = await send(viewer, { count: 2 });
    const orderId = res.order!.orderId;
    await until('the order to be DONE', () => gapi().getOrder({ orderId }, as(viewer, 'viewer')), (r) => r.order?.state === OrderState.ORDER_STATE_DONE);
    const score = async () => (await rankingApi(ranking.client).getRoomRanking({ roomId: liveRoom, period: RankingPeriod.RANKING_PERIOD_LIVE, limit: 50 })).entries.find((e) => e.userId === viewer)?.scoreMinor;
    await until('the sender on the board', score, (s) => s === '200');

    // What a lost event leaves behind: the order PAID, the ranking effect never reported, a minute old.
    const db = await mysql.createConnection(mysqlOptions(iso.urls.mysqlUrl));
    try {
      const orders = quoteIdent(`${iso.database}_gift`);
      await db.query(`UPDATE ${orders}.order_effects SET done_at = NULL WHERE order_id = ? AND effect = 3`, [orderId]);
      await db.query(`UPDATE ${orders}.orders SET state = 2, created_at = NOW(3) - INTERVAL 1 MINUTE WHERE order_id = ?`, [orderId]);
    } finally {
      await db.end();
    }
    const back = await until('the order to be DONE again', () => gapi().getOrder({ orderId }, as(viewer, 'viewer')), (r) => r.order?.state === OrderState.ORDER_STATE_DONE, 20_000);
    expect(back.order?.effects.find((e) => e.effect === OrderEffect.ORDER_EFFECT_RANKING)?.doneTime).toBeDefined();
    // The consumers saw the event twice and applied it once.
    expect(await score()).toBe('200');
    expect(await balance(ledger.api, viewer, Asset.ASSET_EXP)).toBe('200');
    expect(await balance(ledger.api, viewer, Asset.ASSET_COIN)).toBe('800');
  });

  it('a retry with the same idempotency key returns the same order and debits once; other fields with that key are refused', async () => {
    const viewer = newViewer();
    await topUp(ledger.api, viewer, '1000');
    const first = await send(viewer, { idempotencyKey: 'same', count: 2 });
    const again = await send(viewer, { idempotencyKey: 'same', count: 2 });
    expect(again.order?.orderId).toBe(first.order?.orderId);
    expect(again.replayed).toBe(true);
    expect(await balance(ledger.api, viewer, Asset.ASSET_COIN)).toBe('800');
    expect(await failure(send(viewer, { idempotencyKey: 'same', count: 5 }))).toMatchObject({ code: 'ALREADY_EXISTS', reason: 'IDEMPOTENCY_KEY_REUSED' });
  });

  it('100 concurrent sends of one gift by one viewer make one combo record with count 100', async () => {
    const viewer = newViewer();
    await topUp(ledger.api, viewer, '100000');
    const results = await Promise.all(Array.from({ length: 100 }, () => send(viewer, {})));
    const counts = results.map((r) => Number(r.comboCount)).sort((a, b) => a - b);
    expect(counts).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    const { records } = await gapi().listConsumption({ userId: viewer, side: ConsumptionSide.CONSUMPTION_SIDE_SENT }, as(viewer, 'viewer'));
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ comboCount: '100', sendCount: '100', amountMinor: '10000', giftId: rose.giftId, roomId: liveRoom });
    expect(await balance(ledger.api, viewer, Asset.ASSET_COIN)).toBe('90000');
    const received = await gapi().listConsumption({ userId: STREAMER, side: ConsumptionSide.CONSUMPTION_SIDE_RECEIVED }, as(STREAMER, 'streamer'));
    expect(received.records.some((r) => r.comboId === records[0]?.comboId && r.comboCount === '100')).toBe(true);
  });

  it('bad input gets the right code and reason, and nothing is debited', async () => {
    const viewer = newViewer();
    await topUp(ledger.api, viewer, '150');
    const cases: Array<[Promise<unknown>, Record<string, unknown>]> = [
      [send(viewer, { giftId: '987654321' }), { code: 'NOT_FOUND', reason: 'GIFT_NOT_FOUND' }],
      [send(viewer, { roomId: '987654321' }), { code: 'NOT_FOUND', reason: 'ROOM_NOT_FOUND' }],
      [send(viewer, { giftId: castle.giftId }), { code: 'FAILED_PRECONDITION', reason: 'GIFT_NOT_IN_ROOM' }],
      [send(viewer, { count: 0 }), { code: 'INVALID_ARGUMENT', fields: ['count'] }],
      [send(viewer, { count: 10_000 }), { code: 'INVALID_ARGUMENT', fields: ['count'] }],
      [send(viewer, { roomId: offlineRoom }), { code: 'FAILED_PRECONDITION', reason: 'ROOM_NOT_LIVE' }],
      // The room's state before the gift group: castle is not in this room's group either.
      [send(viewer, { roomId: offlineRoom, giftId: castle.giftId }), { code: 'FAILED_PRECONDITION', reason: 'ROOM_NOT_LIVE' }],
      [send(viewer, { idempotencyKey: '' }), { code: 'INVALID_ARGUMENT', fields: ['idempotency_key'] }],
      [send(viewer, { giftId: rocket.giftId }), { code: 'FAILED_PRECONDITION', reason: 'INSUFFICIENT_FUNDS' }],
      [send(STREAMER, {}), { code: 'FAILED_PRECONDITION', reason: 'SELF_GIFT' }],
    ];
    const refusals = await Promise.all(cases.map(([p]) => failure(p)));
    refusals.forEach((r, i) => expect(r).toMatchObject(cases[i]?.[1] ?? {}));
    expect(await balance(ledger.api, viewer, Asset.ASSET_COIN)).toBe('150');
  });
});

describe('ListRoomGifts', () => {
  it("serves the room's group in display order, with an etag for conditional reads", async () => {
    const list = await gapi().listRoomGifts({ roomId: liveRoom });
    expect(list.gifts.map((g) => g.name)).toEqual(['rose', 'rocket']);
    const again = await gapi().listRoomGifts({ roomId: liveRoom, ifNoneMatch: list.etag });
    expect(again).toMatchObject({ notModified: true, gifts: [], etag: list.etag });
    expect((await gapi().listRoomGifts({ roomId: castleRoom })).gifts.map((g) => g.name)).toEqual(['castle']);
  });

  it('keeps the list compressed in Redis, and an admin change reaches readers', async () => {
    const list = await gapi().listRoomGifts({ roomId: liveRoom });
    const redis = new Redis(iso.urls.redisUrl, { keyPrefix: iso.redisPrefix });
    try {
      const stored = await redis.getBuffer(`gl:${list.giftGroupId}`);
      expect(stored?.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b])); // gzip magic
    } finally {
      redis.disconnect();
    }
    await gapi().upsertGift({ gift: { ...rocket, name: 'big rocket' }, expectedVersion: rocket.version }, admin);
    const changed = await until('the new name', () => gapi().listRoomGifts({ roomId: liveRoom }), (l) => l.gifts.some((g) => g.name === 'big rocket'));
    expect(changed.etag).not.toBe(list.etag);
    expect(await failure(gapi().upsertGift({ gift: { ...rocket, name: 'stale' }, expectedVersion: rocket.version }, admin))).toMatchObject({
      code: 'ABORTED',
      reason: 'VERSION_CONFLICT',
    });
    expect(await failure(gapi().upsertGift({ gift: { name: 'x', priceMinor: '1' } }, as('9', 'viewer')))).toMatchObject({ code: 'PERMISSION_DENIED' });
  });
});
