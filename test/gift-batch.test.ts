import { setTimeout as sleep } from 'node:timers/promises';
import { status as Code, type ServiceError } from '@grpc/grpc-js';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Asset } from '../gen/ts/livemesh/common/v1/common.js';
import { ConsumptionSide, GiftErrorReason, OrderEffect, OrderState, type Order, type SendGiftResponse } from '../gen/ts/livemesh/gift/v1/gift.js';
import { TransferKind } from '../gen/ts/livemesh/ledger/v1/ledger.js';
import { errorInfoOf } from '../kit/grpc-errors.js';
import { mysqlOptions } from '../kit/mysql.js';
import { giftPaidStreamName } from '../services/gift/client.js';
import type { Server } from '../scripts/mesh.js';
import { isolate } from '../scripts/isolation.js';
import { allOrders, giftApi, giftEnv, ledgerBalance, spawnLedger, stopServer, topUp, until, withGiftProcess } from './support/gift.js';
import { as, roomApi, startRoom, type RoomServer } from './support/room.js';
import { natsServers } from '../kit/nats.js';

/**
 * SendGift's group commits under load and under SIGKILL (issue 14, "Done when"): concurrent sends
 * share one CREATED insert, one CreateTransfers call and one PAID transaction, so a crash hits a
 * whole batch at once and a retry can land in the same batch as its original. Whatever happens,
 * every order ends DONE or FAILED, money moves exactly for the DONE ones, each effect happens once
 * and the Ledger's books balance.
 */
const iso = isolate('giftbatch');
const admin = as('1', 'admin');
const GIFT_DB = `${iso.database}_gift`;
const STEPS = ['after_created', 'after_transfer', 'after_paid', 'after_publish', 'after_exp_grant'] as const;
type Step = (typeof STEPS)[number];
/** Steps on the send path itself: the process dies while the batch's callers still wait for their answers. */
const ON_SEND_PATH = new Set<Step>(['after_created', 'after_transfer', 'after_paid']);
const TOPUP = 10_000n;
const PLUG_VIEWER = '19999';
const PLUG_KEY = 'plug';
const PLUG_STREAMER = '8000';
const crashStreamer = (s: number) => String(8100 + s);
const mixStreamer = (r: number) => String(8200 + r);

type GiftName = 'rose' | 'tulip';
interface Send {
  viewer: string;
  roomId: string;
  gift: GiftName;
  count: number;
  key: string;
}
type Answer = { ok: true; orderId: string; replayed: boolean; comboCount: string } | { ok: false; code: string; reason: string; message: string };

let room: RoomServer;
let ledger: Awaited<ReturnType<typeof spawnLedger>>;
let env: Record<string, string>;
let db: Connection;
let nats: NatsConnection;
let jsm: JetStreamManager;
const gifts = {} as Record<GiftName, { giftId: string; price: bigint }>;
let plugRoom = '';
const crashRooms: string[] = [];
const mixRooms: string[] = [];


const withGift = <T>(extra: Record<string, string>, fn: (api: ReturnType<typeof giftApi>, server: Server) => Promise<T>): Promise<T> => withGiftProcess({ ...env, ...extra }, fn);

const request = (s: Send) => ({ roomId: s.roomId, giftId: gifts[s.gift].giftId, count: s.count, idempotencyKey: s.key, senderName: `viewer ${s.viewer}` });

function answerOf(p: Promise<SendGiftResponse>): Promise<Answer> {
  return p.then(
    (r): Answer => ({ ok: true, orderId: r.order!.orderId, replayed: r.replayed, comboCount: r.comboCount }),
    (e: ServiceError): Answer => ({
      ok: false,
      code: typeof e.code === 'number' ? (Code[e.code] ?? String(e.code)) : 'NOT_A_GRPC_ERROR',
      reason: errorInfoOf(e.metadata)?.reason ?? '',
      message: e.details ?? String(e),
    }),
  );
}

/**
 * A send as a phone makes it: UNAVAILABLE (the connection died, or PAYMENT_PENDING: the order
 * exists but its payment's outcome is not known yet) is retried with the same key after a pause,
 * until the service gives a definite answer; anything else is that answer.
 */
async function sendAsAPhone(api: ReturnType<typeof giftApi>, s: Send, timeoutMs = 30_000): Promise<Answer> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const a = await answerOf(api.sendGift(request(s), as(s.viewer, 'viewer')));
    if (a.ok || a.code !== 'UNAVAILABLE') return a;
    if (Date.now() > deadline) throw new Error(`send ${s.key} still answered ${a.code} ${a.reason} (${a.message}) after ${timeoutMs} ms of retries`);
    await sleep(150);
  }
}

const ended = (o: Order) => o.state === OrderState.ORDER_STATE_DONE || o.state === OrderState.ORDER_STATE_FAILED;
const orderKey = (senderId: string, key: string) => `${senderId}/${key}`;
const sum = (xs: bigint[]) => xs.reduce((a, b) => a + b, 0n);

async function ordersIn(api: ReturnType<typeof giftApi>, roomIds: string[]): Promise<Order[]> {
  return (await Promise.all(roomIds.map((roomId) => allOrders(api, { roomId })))).flat();
}

/** Waits until `count` orders exist in the rooms and every one of them is DONE or FAILED. */
function allEnded(api: ReturnType<typeof giftApi>, roomIds: string[], count: number): Promise<Order[]> {
  return until(
    `${count} orders in rooms ${roomIds.join(',')} to end DONE or FAILED`,
    () => ordersIn(api, roomIds),
    (os) => os.length >= count && os.every(ended),
    30_000,
    200,
  ).catch(async (err: Error) => {
    const os = await ordersIn(api, roomIds).catch(() => []);
    const byState = new Map<string, number>();
    for (const o of os) byState.set(OrderState[o.state], (byState.get(OrderState[o.state]) ?? 0) + 1);
    throw new Error(`${err.message.slice(0, 200)}…; states now ${JSON.stringify([...byState])} of ${os.length} orders`);
  });
}

/** Ids of the transfers of one kind on an account (all pages are at most 200 here). */
async function transferIds(ownerId: string, asset: Asset, kind: TransferKind): Promise<string[]> {
  const res = await ledger.api.listTransfers({ account: { ownerId, asset }, kinds: [kind], page: { pageSize: 200 } }, admin);
  expect(res.page?.nextPageToken ?? '', `transfers of ${ownerId} fit one page`).toBe('');
  return res.transfers.map((t) => t.transferId).sort();
}

/** An account's balance once no credit to it is in flight between Ledger shards. */
async function settledBalance(ownerId: string, asset: Asset): Promise<bigint> {
  const b = await until(`no ${Asset[asset]} credit in flight to ${ownerId}`, () => ledgerBalance(ledger.api, ownerId, asset), (v) => v.pending === 0n, 15_000);
  return b.amount;
}

/**
 * The books after a run: each key made exactly one order, each order ended DONE or FAILED, and
 * for the DONE ones (only) the money moved once (COIN out of each viewer, INCOME into each
 * streamer), EXP was granted once, the combo counted each unit once and in order, and the
 * Ledger's invariants hold.
 */
async function checkBooks(api: ReturnType<typeof giftApi>, sends: Send[], orders: Order[]): Promise<void> {
  // One order per key, matching what was sent.
  const byKey = new Map<string, Order[]>();
  for (const o of orders) byKey.set(orderKey(o.senderId, o.idempotencyKey), [...(byKey.get(orderKey(o.senderId, o.idempotencyKey)) ?? []), o]);
  const keys = new Map(sends.map((s) => [orderKey(s.viewer, s.key), s]));
  expect(orders.length, 'one order per distinct idempotency key, and no other').toBe(keys.size);
  for (const [k, s] of keys) {
    const mine = byKey.get(k) ?? [];
    expect(mine.length, `orders for key ${k}`).toBe(1);
    expect(mine[0], `order for key ${k}`).toMatchObject({ roomId: s.roomId, giftId: gifts[s.gift].giftId, count: s.count, amountMinor: String(gifts[s.gift].price * BigInt(s.count)) });
  }
  expect(orders.filter((o) => !ended(o)).map((o) => o.orderId), 'orders neither DONE nor FAILED').toEqual([]);

  const done = orders.filter((o) => o.state === OrderState.ORDER_STATE_DONE);
  for (const o of done) {
    expect([o.incomeMinor, o.expMinor], `order ${o.orderId}: income and EXP equal its amount`).toEqual([o.amountMinor, o.amountMinor]);
    // One effect row per effect, and the two this deployment requires (EXP, COMBO) done.
    expect(o.effects.map((e) => e.effect).sort(), `order ${o.orderId}: effect rows`).toEqual([
      OrderEffect.ORDER_EFFECT_EXP,
      OrderEffect.ORDER_EFFECT_BARRAGE,
      OrderEffect.ORDER_EFFECT_RANKING,
      OrderEffect.ORDER_EFFECT_COMBO,
    ]);
    const doneEffects = o.effects.filter((e) => e.doneTime !== undefined).map((e) => e.effect);
    expect(doneEffects, `order ${o.orderId}: EXP and COMBO done`).toEqual(expect.arrayContaining([OrderEffect.ORDER_EFFECT_EXP, OrderEffect.ORDER_EFFECT_COMBO]));
  }
  for (const o of orders.filter((x) => x.state === OrderState.ORDER_STATE_FAILED)) {
    expect([o.comboId, o.comboCount, o.effects.length], `failed order ${o.orderId} joined no combo and has no effects`).toEqual(['0', '0', 0]);
  }

  const viewers = [...new Set(sends.map((s) => s.viewer))];
  const doneOf = (viewer: string) => done.filter((o) => o.senderId === viewer);
  await Promise.all(
    viewers.map(async (viewer) => {
      const mine = doneOf(viewer);
      const spent = sum(mine.map((o) => BigInt(o.amountMinor)));
      // COIN: debited exactly the DONE orders' amounts, each by its own transfer, once.
      const coin = (await ledgerBalance(ledger.api, viewer, Asset.ASSET_COIN)).amount;
      expect(TOPUP - coin, `COIN debited from viewer ${viewer}`).toBe(spent);
      expect(await transferIds(viewer, Asset.ASSET_COIN, TransferKind.TRANSFER_KIND_GIFT), `gift transfers of viewer ${viewer}`).toEqual(mine.map((o) => `gift:${o.orderId}`).sort());
      // EXP: granted once per DONE order.
      expect(await settledBalance(viewer, Asset.ASSET_EXP), `EXP of viewer ${viewer}`).toBe(sum(mine.map((o) => BigInt(o.expMinor))));
      expect(await transferIds(viewer, Asset.ASSET_EXP, TransferKind.TRANSFER_KIND_EXP_GRANT), `EXP grants of viewer ${viewer}`).toEqual(mine.map((o) => `exp:${o.orderId}`).sort());

      // Combos: one per (room, gift) within the window, counting each DONE unit once, and each
      // order's combo_count the running total right after it (no lost increment, never backwards).
      const { records } = await api.listConsumption({ userId: viewer, side: ConsumptionSide.CONSUMPTION_SIDE_SENT, page: { pageSize: 100 } }, as(viewer, 'viewer'));
      const groups = new Map<string, Order[]>();
      for (const o of mine) groups.set(`${o.roomId}/${o.giftId}`, [...(groups.get(`${o.roomId}/${o.giftId}`) ?? []), o]);
      expect(records.map((r) => `${r.roomId}/${r.giftId}`).sort(), `combos of viewer ${viewer}`).toEqual([...groups.keys()].sort());
      for (const [g, os] of groups) {
        const record = records.find((r) => `${r.roomId}/${r.giftId}` === g)!;
        expect(
          { comboCount: record.comboCount, sendCount: record.sendCount, amountMinor: record.amountMinor },
          `combo ${record.comboId} of viewer ${viewer} in ${g}`,
        ).toEqual({ comboCount: String(sum(os.map((o) => BigInt(o.count)))), sendCount: String(os.length), amountMinor: String(sum(os.map((o) => BigInt(o.amountMinor)))) });
        expect(new Set(os.map((o) => o.comboId)), `orders of viewer ${viewer} in ${g} joined one combo`).toEqual(new Set([record.comboId]));
        let running = 0n;
        for (const o of [...os].sort((a, b) => (BigInt(a.comboCount) < BigInt(b.comboCount) ? -1 : 1))) {
          running += BigInt(o.count);
          expect(o.comboCount, `combo_count of order ${o.orderId} (viewer ${viewer}, ${g}, counts ${os.map((x) => `${x.count}->${x.comboCount}`).join(' ')})`).toBe(String(running));
        }
      }
    }),
  );

  // INCOME: each streamer received exactly the DONE orders' amounts sent to them.
  const streamers = [...new Set(orders.map((o) => o.streamerId))];
  let income = 0n;
  for (const streamer of streamers) {
    const expected = sum(done.filter((o) => o.streamerId === streamer).map((o) => BigInt(o.incomeMinor)));
    const got = await settledBalance(streamer, Asset.ASSET_INCOME);
    expect(got, `INCOME of streamer ${streamer}`).toBe(expected);
    income += got;
  }
  const paid = sum(done.map((o) => BigInt(o.amountMinor)));
  const coinSpent = sum(await Promise.all(viewers.map(async (v) => TOPUP - (await ledgerBalance(ledger.api, v, Asset.ASSET_COIN)).amount)));
  expect({ coinSpent, paid, income }, 'COIN spent = amounts of DONE orders = INCOME received').toEqual({ coinSpent: paid, paid, income: paid });

  const report = await ledger.api.checkInvariants({ assets: [] }, admin);
  expect(report.violations).toEqual([]);
  expect(report.ok).toBe(true);
}

/** Nothing left from an earlier run for a new Gift process to pick up: the outbox is empty and Gift's EXP consumer has no event outstanding. */
async function quiesced(): Promise<void> {
  await until(
    'an empty outbox and no EXP event outstanding',
    async () => {
      const [rows] = await db.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM outbox');
      const info = await jsm.consumers.info(giftPaidStreamName(iso.natsPrefix), 'gift-exp');
      return { outbox: Number(rows[0]!.n), pending: info.num_pending, ackPending: info.num_ack_pending };
    },
    (q) => q.outbox === 0 && q.pending === 0 && q.ackPending === 0,
    15_000,
  );
}

/**
 * Statements inserting orders that the Gift database is running: while this test holds the plug
 * order's row lock, the only one is the plug's replay, and it cannot finish until the lock goes.
 */
async function plugWaiting(): Promise<number> {
  const [rows] = await db.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ? AND COMMAND = 'Query' AND INFO LIKE 'INSERT INTO orders%'", [
    GIFT_DB,
  ]);
  return Number(rows[0]!.n);
}

async function liveRoom(streamer: string, title: string): Promise<string> {
  const rooms = roomApi(room.client);
  const roomId = (await rooms.createRoom({ title, requestId: `r-${streamer}` }, as(streamer, 'streamer'))).room!.roomId;
  await rooms.startLive({ roomId }, as(streamer, 'streamer'));
  return roomId;
}

beforeAll(async () => {
  room = await startRoom(iso);
  ledger = await spawnLedger(iso);
  env = giftEnv(iso, room.address, ledger.server.address, {
    // As in gift-crash: no Chat or Ranking here, so an order is DONE once EXP and COMBO are.
    GIFT_REQUIRED_EFFECTS: 'exp,combo',
    GIFT_EFFECT_ACK_WAIT_MS: '1500',
    GIFT_RECOVERY_AFTER_MS: '500',
    GIFT_RECOVERY_INTERVAL_MS: '200',
    // Rooms and gifts do not change here; a process keeps them in memory for its whole life.
    GIFT_CACHE_TTL_MS: '60000',
  });
  plugRoom = await liveRoom(PLUG_STREAMER, 'plug');
  for (const s of STEPS.keys()) crashRooms.push(await liveRoom(crashStreamer(s), `crash ${s}`));
  for (let r = 0; r < 5; r++) mixRooms.push(await liveRoom(mixStreamer(r), `mix ${r}`));
  await topUp(ledger.api, PLUG_VIEWER, String(TOPUP));
  await withGift({}, async (api) => {
    for (const [name, price] of [['rose', 100n], ['tulip', 30n]] as const) {
      gifts[name] = { giftId: (await api.upsertGift({ gift: { name, priceMinor: String(price) } }, admin)).gift!.giftId, price };
    }
    await api.upsertGiftGroup({ giftGroup: { name: 'standard', giftIds: [gifts.rose.giftId, gifts.tulip.giftId], isDefault: true } }, admin);
    // The plug: a DONE order whose replay, held on its row lock, keeps the first batch of a faulty
    // process busy while the sends under test queue up behind it.
    const plug = await api.sendGift({ roomId: plugRoom, giftId: gifts.rose.giftId, count: 1, idempotencyKey: PLUG_KEY }, as(PLUG_VIEWER, 'viewer'));
    await until('the plug order to be DONE', () => api.getOrder({ orderId: plug.order!.orderId }, admin), (r) => r.order?.state === OrderState.ORDER_STATE_DONE);
  });
  db = await mysql.createConnection(mysqlOptions(iso.urls.mysqlUrl, GIFT_DB));
  nats = await connect({ servers: natsServers(iso.urls.natsUrl) });
  jsm = await jetstreamManager(nats);
}, 60_000);

afterAll(async () => {
  await db?.end();
  await nats?.close();
  ledger?.client.close();
  if (ledger) await stopServer(ledger.server);
  await room?.close();
  await iso.cleanup();
});

describe('SIGKILL Gift in the middle of a batch', () => {
  it.each(STEPS)(
    'killed %s with 60 concurrent sends from 50 viewers in one batch: every order ends DONE or FAILED, money moved exactly for the DONE ones, each effect once',
    { timeout: 60_000 },
    async (step) => {
      const s = STEPS.indexOf(step);
      const roomId = crashRooms[s]!;
      const viewers = Array.from({ length: 50 }, (_, k) => String(20_000 + s * 100 + k));
      await Promise.all(viewers.map((v) => topUp(ledger.api, v, String(TOPUP))));
      // 50 viewers send once; ten of them send a second time, the same gift, so a combo grows inside the batch.
      const sends: Send[] = [
        ...viewers.map((viewer, k): Send => ({ viewer, roomId, gift: k % 2 ? 'tulip' : 'rose', count: 1 + (k % 3), key: `${step}.a.${k}` })),
        ...viewers.slice(0, 10).map((viewer, k): Send => ({ viewer, roomId, gift: k % 2 ? 'tulip' : 'rose', count: 2, key: `${step}.b.${k}` })),
      ];
      await quiesced();

      // The faulty process takes one batch at a time. Its first batch is the plug's replay, held
      // on a row lock this test owns; the 60 sends queue behind it, and once the lock goes they
      // leave together in the second batch, the one that dies.
      const first = await withGift({ GIFT_FAULT_KILL_AT: step, GIFT_SEND_BATCHES: '1' }, async (api, server) => {
        const probe = (gift: GiftName, key: string) =>
          answerOf(api.sendGift({ roomId, giftId: gifts[gift].giftId, count: 1, idempotencyKey: key, expectedUnitPriceMinor: '1' }, as(PLUG_VIEWER, 'viewer')));
        // Room and both gifts in the process's memory: every send below takes the same path to the queue.
        for (const gift of ['rose', 'tulip'] as const) expect(await probe(gift, `warm.${step}.${gift}`)).toMatchObject({ ok: false, reason: 'PRICE_CHANGED' });
        const lock = await mysql.createConnection(mysqlOptions(iso.urls.mysqlUrl, GIFT_DB));
        let calls: Array<Promise<Answer>> = [];
        try {
          await lock.query('START TRANSACTION');
          await lock.query('SELECT order_id FROM orders WHERE sender_id = ? AND idempotency_key = ? FOR UPDATE', [PLUG_VIEWER, PLUG_KEY]);
          // (Its own answer does not matter: the process may die before sending it.)
          void answerOf(api.sendGift({ roomId: plugRoom, giftId: gifts.rose.giftId, count: 1, idempotencyKey: PLUG_KEY }, as(PLUG_VIEWER, 'viewer')));
          await until('the plug replay to wait on the locked order row', plugWaiting, (n) => n > 0, 10_000, 20);
          calls = sends.map((x) => answerOf(api.sendGift(request(x), as(x.viewer, 'viewer'))));
          // A refused send behind them on the same connection: once it is answered, the 60 sends,
          // received before it and taking the same path, are all in the queue.
          expect(await probe('tulip', `sentinel.${step}`)).toMatchObject({ ok: false, reason: 'PRICE_CHANGED' });
        } finally {
          await lock.query('ROLLBACK');
          await lock.end();
        }
        const exit = await Promise.race([server.exited, sleep(20_000).then(() => undefined)]);
        expect(exit?.signal, `the process should have killed itself at ${step}`).toBe('SIGKILL');
        return Promise.all(calls);
      });
      // No first attempt was refused: each got its order or lost its connection.
      expect(first.filter((a) => !a.ok && a.reason !== ''), 'first attempts refused by the service').toEqual([]);
      if (ON_SEND_PATH.has(step)) {
        // The kill cut every caller of the batch off at once: none got an answer from the service.
        expect(first.filter((a) => a.ok || a.reason !== ''), 'first attempts answered by the service before the kill').toEqual([]);
      }

      await withGift({}, async (api) => {
        // The orders the killed process left: the whole batch, created by its one INSERT.
        const left = await ordersIn(api, [roomId]);
        expect(left.length, 'orders the killed process created in its batch').toBe(sends.length);

        // Every phone retries with its key until it gets an answer.
        const answers = await Promise.all(sends.map((x) => sendAsAPhone(api, x)));
        const orders = await allEnded(api, [roomId], sends.length);
        const orderOf = new Map(orders.map((o) => [orderKey(o.senderId, o.idempotencyKey), o]));
        if (step === 'after_created') {
          // Died before the Ledger was called: recovery voided every transfer id, nothing was debited.
          expect(new Set(orders.map((o) => `${OrderState[o.state]} ${o.failureReason}`))).toEqual(new Set([`ORDER_STATE_FAILED ${GiftErrorReason.GIFT_ERROR_REASON_ORDER_FAILED}`]));
          expect(answers.filter((a) => a.ok || a.reason !== 'ORDER_FAILED'), 'retries of voided orders').toEqual([]);
        } else {
          // The money had moved (or more): every order went on to DONE, and every retry returns it.
          expect(orders.filter((o) => o.state !== OrderState.ORDER_STATE_DONE).map((o) => o.orderId), 'orders not DONE').toEqual([]);
          answers.forEach((a, i) => {
            const o = orderOf.get(orderKey(sends[i]!.viewer, sends[i]!.key));
            expect(a, `retry of ${sends[i]!.key}`).toEqual({ ok: true, orderId: o?.orderId, replayed: true, comboCount: o?.comboCount });
          });
        }
        await checkBooks(api, sends, orders);
      });
    },
  );
});

describe('concurrent sends with retries', () => {
  it('200 concurrent sends across 20 viewers and 5 rooms, 10% retried with the same key: one order per key, COIN spent = amounts paid = INCOME received, combos exact', { timeout: 60_000 }, async () => {
    const viewers = Array.from({ length: 20 }, (_, v) => String(30_000 + v));
    await Promise.all(viewers.map((v) => topUp(ledger.api, v, String(TOPUP))));
    // Each viewer sends 10 times into two rooms, two gifts each, so every combo gets 2 or 3 sends.
    const sends: Send[] = Array.from({ length: 200 }, (_, i): Send => {
      const v = i % 20;
      const j = Math.floor(i / 20);
      return { viewer: viewers[v]!, roomId: mixRooms[(v + (j % 2)) % 5]!, gift: j < 6 ? 'rose' : 'tulip', count: 1 + (i % 3), key: `mix.${i}` };
    });
    // 20 retries, all fired with the originals: half right behind their original (often the same
    // batch), half at the end of the burst.
    const calls: Send[] = [];
    const late: Send[] = [];
    sends.forEach((x, i) => {
      calls.push(x);
      if (i % 10 === 3) (i < 100 ? calls : late).push(x);
    });
    calls.push(...late);
    expect(calls.length).toBe(220);

    await withGift({}, async (api) => {
      const answers = await Promise.all(calls.map((x) => sendAsAPhone(api, x)));
      expect(
        answers.flatMap((a, i) => (a.ok ? [] : [`${calls[i]!.key}: ${a.code} ${a.reason} ${a.message}`])),
        'every send (and every retry) answered with its order',
      ).toEqual([]);
      const orders = await allEnded(api, mixRooms, sends.length);
      const orderOf = new Map(orders.map((o) => [orderKey(o.senderId, o.idempotencyKey), o]));

      // Each key: every call answered the same order, and exactly one of them was not a replay.
      const perKey = new Map<string, Array<Extract<Answer, { ok: true }>>>();
      answers.forEach((a, i) => {
        const k = orderKey(calls[i]!.viewer, calls[i]!.key);
        if (a.ok) perKey.set(k, [...(perKey.get(k) ?? []), a]);
      });
      for (const [k, got] of perKey) {
        const o = orderOf.get(k);
        expect(new Set(got.map((a) => a.orderId)), `orders answered for key ${k}`).toEqual(new Set([o?.orderId]));
        expect(got.filter((a) => !a.replayed).length, `answers for key ${k} that were not replays (${JSON.stringify(got)})`).toBe(1);
        expect(new Set(got.map((a) => a.comboCount)), `combo_count answered for key ${k}`).toEqual(new Set([o?.comboCount]));
      }
      expect(perKey.size).toBe(200);
      expect(orders.filter((o) => o.state !== OrderState.ORDER_STATE_DONE).map((o) => o.orderId), 'orders not DONE').toEqual([]);
      await checkBooks(api, sends, orders);
    });
  });
});
