import { Redis } from 'ioredis';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GiftServiceService, Order, OrderEffect, OrderState, type AckOrderEffectRequest, type AckOrderEffectResponse, type ListOrdersRequest, type ListOrdersResponse } from '../gen/ts/livemesh/gift/v1/gift.js';
import { RankingPeriod } from '../gen/ts/livemesh/ranking/v1/ranking.js';
import { isolate } from '../scripts/isolation.js';
import { consumeGiftPaid, giftPaidStreamName } from '../services/gift/client.js';
import { Boards, RETENTION } from '../services/ranking/boards.js';
import { Calendar } from '../services/ranking/calendar.js';
import { RedisBoards } from '../services/ranking/store/redis-boards.js';
import { RankingUpdates } from '../services/ranking/updates.js';
import { eventually, giftPublisher, rankingApi, refusal, startRanking, startStandIn, type RankingServer } from './support/chat.js';
import { startGift } from './support/gift.js';
import { as } from './support/room.js';
import { natsServers } from '../kit/nats.js';

const iso = isolate('ranking');
const { LIVE, DAY, WEEK } = { LIVE: RankingPeriod.RANKING_PERIOD_LIVE, DAY: RankingPeriod.RANKING_PERIOD_DAY, WEEK: RankingPeriod.RANKING_PERIOD_WEEK };
const DURABLE = 'ranking-boards';
const ACK_WAIT_MS = 1500;
let server: RankingServer;
let gifts: Awaited<ReturnType<typeof giftPublisher>>;
let redis: Redis;

beforeAll(async () => {
  server = await startRanking(iso, { RANKING_SNAPSHOT_MS: '300', GIFT_CONSUMER_ACK_WAIT_MS: String(ACK_WAIT_MS) });
  gifts = await giftPublisher(iso);
  redis = new Redis(iso.urls.redisUrl, { keyPrefix: iso.redisPrefix });
});

afterAll(async () => {
  redis?.disconnect();
  await gifts?.close();
  await server?.close();
  await iso.cleanup();
});

const api = () => rankingApi(server.client);
let orderSeq = 1000;
const liveStart = new Date(Date.now() - 3600_000);
function paid(roomId: string, senderId: string, amountMinor: string, extra: Partial<Order> & { paidTime?: Date } = {}) {
  const orderId = String(++orderSeq);
  return { orderId, roomId, streamerId: `9${roomId}`, senderId, senderName: `viewer ${senderId}`, giftId: '1', count: 1, amountMinor, paidTime: new Date(), liveStartTime: liveStart, ...extra };
}
const scores = (entries: Array<{ userId: string; scoreMinor: string; rank: number }>) => entries.map((e) => [e.rank, e.userId, e.scoreMinor]);

async function consumerInfo() {
  const nc = await connect({ servers: natsServers(iso.urls.natsUrl) });
  try {
    return await (await jetstreamManager(nc)).consumers.info(giftPaidStreamName(iso.natsPrefix), DURABLE);
  } finally {
    await nc.close();
  }
}
/** Passes once the durable consumer has nothing left to deliver or to be acknowledged. */
async function consumerIdle(): Promise<void> {
  const info = await consumerInfo();
  expect([info.num_pending, info.num_ack_pending]).toEqual([0, 0]);
}

describe('boards', () => {
  it('room LIVE, DAY and WEEK boards and the streamer boards, with exact totals, names and neighbours', async () => {
    await gifts.publish(paid('101', '1', '100'));
    await gifts.publish(paid('101', '2', '120', { senderName: 'bee' }));
    await gifts.publish(paid('101', '1', '50', { senderName: 'ay' }));
    await gifts.publish(paid('101', '3', '7'));
    await gifts.publish(paid('102', '1', '4611686018427387904'));

    const day = await eventually(async () => {
      const r = await api().getRoomRanking({ roomId: '101', period: DAY });
      expect(scores(r.entries)).toEqual([[1, '1', '150'], [2, '2', '120'], [3, '3', '7']]);
      return r;
    });
    expect(day.entries.map((e) => e.userName)).toEqual(['ay', 'bee', 'viewer 3']);
    expect(day.totalEntries).toBe('3');
    expect(day.periodStartTime?.getTime()).toBe(new Calendar('UTC').day(Date.now()).start.getTime());
    expect(day.snapshotTime).toBeInstanceOf(Date);
    for (const period of [LIVE, WEEK]) expect(scores((await api().getRoomRanking({ roomId: '101', period })).entries)).toEqual(scores(day.entries));
    expect((await api().getRoomRanking({ roomId: '101', period: LIVE })).periodStartTime?.getTime()).toBe(liveStart.getTime());
    expect(scores((await api().getRoomRanking({ roomId: '101', period: DAY, limit: 1 })).entries)).toEqual([[1, '1', '150']]);

    // int64 end to end: far beyond what a double holds exactly.
    await eventually(async () => expect(scores((await api().getRoomRanking({ roomId: '102', period: WEEK })).entries)).toEqual([[1, '1', '4611686018427387904']]));
    const streamers = await api().getStreamerRanking({ period: DAY });
    expect(scores(streamers.entries)).toEqual([[1, '9102', '4611686018427387904'], [2, '9101', '277']]);
    expect(streamers.entries[1]?.userName).toBe('');

    const mine = await api().getUserRank({ roomId: '101', period: DAY, neighbours: 1 }, as('2', 'viewer'));
    expect(mine.entry).toMatchObject({ rank: 2, userId: '2', scoreMinor: '120' });
    expect(scores(mine.above)).toEqual([[1, '1', '150']]);
    expect(scores(mine.below)).toEqual([[3, '3', '7']]);
    expect(mine.gapToAboveMinor).toBe('31');
    const absent = await api().getUserRank({ roomId: '101', period: DAY, userId: '999' });
    expect(absent).toMatchObject({ entry: { rank: 0, userId: '999', scoreMinor: '0' }, totalEntries: '3' });
    const streamerRank = await api().getUserRank({ roomId: '0', period: WEEK, userId: '9101' });
    expect(streamerRank.entry).toMatchObject({ rank: 2, scoreMinor: '277' });
  });

  it('ties go to whoever reached the score first, whatever order the events arrive in', async () => {
    const now = Date.now();
    await gifts.publish(paid('103', '21', '300', { paidTime: new Date(now - 1000) }));
    await gifts.publish(paid('103', '22', '100', { paidTime: new Date(now - 5000) }));
    await gifts.publish(paid('103', '22', '200', { paidTime: new Date(now - 3000) })); // 22 reaches 300 at now-3s, 21 at now-1s
    await gifts.publish(paid('103', '23', '300', { paidTime: new Date(now - 2000) }));
    await eventually(async () => expect(scores((await api().getRoomRanking({ roomId: '103', period: DAY })).entries)).toEqual([[1, '22', '300'], [2, '23', '300'], [3, '21', '300']]));
    const { entries } = await api().getRoomRanking({ roomId: '103', period: DAY });
    expect(entries[0]?.reachTime?.getTime()).toBe(now - 3000);
  });

  it('board keys expire after their period: a day board a week after its day, a week board five weeks after', async () => {
    const calendar = new Calendar('UTC');
    const boards = new Boards(calendar);
    const now = Date.now();
    const ttl = async (key: string) => {
      const ms = [await redis.pttl(key), await redis.pttl(`${key}:h`), await redis.pttl(`${key}:o`)];
      return ms.map((x) => Math.round(x / 60_000));
    };
    const minutes = (at: number) => Math.round((at - Date.now()) / 60_000);
    const day = boards.room('101', 'day', now);
    expect(await ttl(day.key)).toEqual(Array(3).fill(minutes(calendar.day(now).end.getTime() + RETENTION.dayMs)));
    const week = boards.streamer('week', now);
    expect(await ttl(week.key)).toEqual(Array(3).fill(minutes(calendar.week(now).end.getTime() + RETENTION.weekMs)));
    expect(await redis.pttl(boards.live('101', liveStart, now).key)).toBeGreaterThan(RETENTION.liveMs - 3600_000);
  });

  it('the top of a board is served from a per-replica snapshot, not a Redis read per request', async () => {
    const snap = await startRanking(iso, { RANKING_SNAPSHOT_MS: '10000', GIFT_CONSUMER_ACK_WAIT_MS: String(ACK_WAIT_MS) });
    try {
      const first = await rankingApi(snap.client).getRoomRanking({ roomId: '107', period: DAY });
      expect(first.entries).toEqual([]);
      await gifts.publish(paid('107', '61', '42'));
      const boardKey = new Boards(new Calendar('UTC')).room('107', 'day', Date.now()).key;
      await eventually(async () => expect(await redis.hget(`${boardKey}:h`, 's:61')).toBe('42'));
      // Redis has the gift; this replica keeps answering from the snapshot it took.
      const reads = await Promise.all(Array.from({ length: 200 }, () => rankingApi(snap.client).getRoomRanking({ roomId: '107', period: DAY })));
      expect(reads.every((r) => r.entries.length === 0 && r.snapshotTime?.getTime() === first.snapshotTime?.getTime())).toBe(true);
      // A replica with a short interval shows it.
      await eventually(async () => expect(scores((await api().getRoomRanking({ roomId: '107', period: DAY })).entries)).toEqual([[1, '61', '42']]));
    } finally {
      await snap.close();
    }
  });
});

describe('idempotent by order id', () => {
  it('a re-published order (RetryOrder) does not count twice', async () => {
    const first = paid('104', '31', '500');
    await gifts.publish(first);
    await gifts.publish({ ...first, attempt: 1 });
    await gifts.publish({ ...first, attempt: 2 });
    await eventually(() => consumerIdle());
    expect(scores((await api().getRoomRanking({ roomId: '104', period: WEEK })).entries)).toEqual([[1, '31', '500']]);
  });

  it('an event applied by a consumer killed before its ack is redelivered to the restarted service and not counted again', async () => {
    await server.close();
    // The doomed replica: the real update path, on its own NATS connection, that dies after
    // applying and before acknowledging.
    const nc = await connect({ servers: natsServers(iso.urls.natsUrl) });
    const updatesRedis = new Redis(iso.urls.redisUrl, { keyPrefix: iso.redisPrefix });
    const boards = new Boards(new Calendar('UTC'));
    const updates = new RankingUpdates(boards, new RedisBoards(updatesRedis), pino({ level: 'silent' }));
    let applied = 0;
    await consumeGiftPaid(nc, iso.natsPrefix, {
      durable: DURABLE,
      ackWaitMs: ACK_WAIT_MS,
      log: pino({ level: 'silent' }),
      handle: async (event) => {
        await updates.handle(event); // the boards are updated
        applied++;
        return new Promise(() => {}); // killed here: never acknowledged
      },
    });
    const order = paid('105', '41', '250');
    await gifts.publish(order);
    await eventually(() => expect(applied).toBe(1));
    const boardKey = boards.room('105', 'day', Date.now()).key;
    expect(await redis.hget(`${boardKey}:h`, 's:41')).toBe('250');
    await nc.close();
    updatesRedis.disconnect();

    const before = (await consumerInfo()).delivered;
    server = await startRanking(iso, { RANKING_SNAPSHOT_MS: '300', GIFT_CONSUMER_ACK_WAIT_MS: String(ACK_WAIT_MS) });
    await eventually(() => consumerIdle());
    // Delivered once more (the redelivery), with no new stream message behind it.
    const after = (await consumerInfo()).delivered;
    expect([after.stream_seq, after.consumer_seq]).toEqual([before.stream_seq, before.consumer_seq + 1]);
    expect(scores((await api().getRoomRanking({ roomId: '105', period: DAY })).entries)).toEqual([[1, '41', '250']]);
    expect(scores((await api().getStreamerRanking({ period: WEEK })).entries)).toContainEqual(expect.arrayContaining(['9105', '250']));
  });
});

describe('bad input is INVALID_ARGUMENT naming the field', () => {
  const bad = async (p: Promise<unknown>) => {
    const f = await refusal(p);
    expect(f.code).toBe('INVALID_ARGUMENT');
    return [f.reason, f.fields];
  };

  it('a limit over 100, an unknown or missing period, LIVE on the streamer board, too many neighbours', async () => {
    expect(await bad(api().getRoomRanking({ roomId: '101', period: DAY, limit: 101 }))).toEqual(['FIELD_INVALID', ['limit']]);
    expect(await bad(api().getRoomRanking({ roomId: '101', period: RankingPeriod.RANKING_PERIOD_UNSPECIFIED }))).toEqual(['FIELD_INVALID', ['period']]);
    expect(await bad(api().getRoomRanking({ roomId: '101', period: 9 as RankingPeriod }))).toEqual(['FIELD_INVALID', ['period']]);
    expect(await bad(api().getStreamerRanking({ period: LIVE }))).toEqual(['PERIOD_NOT_SUPPORTED', ['period']]);
    expect(await bad(api().getStreamerRanking({ period: WEEK, limit: -1 }))).toEqual(['FIELD_INVALID', ['limit']]);
    expect(await bad(api().getUserRank({ roomId: '101', period: DAY, userId: '1', neighbours: 11 }))).toEqual(['FIELD_INVALID', ['neighbours']]);
    expect(await bad(api().getRoomRanking({ roomId: '0', period: DAY }))).toEqual(['FIELD_INVALID', ['room_id']]);
    expect(await refusal(api().getUserRank({ roomId: '101', period: DAY }))).toMatchObject({ code: 'UNAUTHENTICATED' });
  });

  it('RebuildRanking: admin only, exactly one target, a real day within retention', async () => {
    expect(await refusal(api().rebuildRanking({ roomId: '101' }, as('5', 'viewer')))).toMatchObject({ code: 'PERMISSION_DENIED' });
    expect(await bad(api().rebuildRanking({ roomId: '101', day: '2025-01-01' }, as('1', 'admin')))).toEqual(['FIELD_INVALID', ['target']]);
    expect(await bad(api().rebuildRanking({ day: '2025-02-30' }, as('1', 'admin')))).toEqual(['FIELD_INVALID', ['day']]);
    expect(await refusal(api().rebuildRanking({ day: '2999-01-01' }, as('1', 'admin')))).toMatchObject({ code: 'FAILED_PRECONDITION', reason: 'DAY_OUT_OF_RANGE' });
    expect(await refusal(api().rebuildRanking({ day: '2020-01-01' }, as('1', 'admin')))).toMatchObject({ code: 'FAILED_PRECONDITION', reason: 'DAY_OUT_OF_RANGE' });
  });

  it('without GIFT_ADDR, RebuildRanking is FAILED_PRECONDITION / REBUILD_SOURCE_UNAVAILABLE and touches nothing', async () => {
    const err = await refusal(api().rebuildRanking({ roomId: '101' }, as('1', 'admin')));
    expect(err).toMatchObject({ code: 'FAILED_PRECONDITION', reason: 'REBUILD_SOURCE_UNAVAILABLE' });
    expect(err.message).toContain('GIFT_ADDR');
    expect(scores((await api().getRoomRanking({ roomId: '101', period: DAY })).entries)[0]).toEqual([1, '1', '150']);
  });
});

describe('RebuildRanking from the Gift service', () => {
  it('reads paid orders through the real Gift service: a room Gift has no orders for would be emptied (dry run)', async () => {
    const giftIso = isolate('rankinggift');
    const gift = await startGift(giftIso, { ROOM_ADDR: '127.0.0.1:9', LEDGER_ADDR: '127.0.0.1:9' });
    const rebuilder = await startRanking(iso, { GIFT_ADDR: gift.address, GIFT_CONSUMER_ACK_WAIT_MS: String(ACK_WAIT_MS) });
    try {
      const dry = await rankingApi(rebuilder.client).rebuildRanking({ roomId: '101', dryRun: true }, as('1', 'admin'));
      expect(dry).toMatchObject({ ordersScanned: '0', boardsRebuilt: '3', entriesChanged: '9', applied: false });
      expect(scores((await api().getRoomRanking({ roomId: '101', period: DAY })).entries)).toHaveLength(3);
      // A day rebuild reads Gift's ListOrders by paid-time range alone, as its contract allows.
      const day = new Date().toISOString().slice(0, 10);
      const byDay = await rankingApi(rebuilder.client).rebuildRanking({ day, dryRun: true }, as('1', 'admin'));
      expect(byDay).toMatchObject({ ordersScanned: '0', applied: false });
    } finally {
      await rebuilder.close();
      await gift.close();
      await giftIso.cleanup();
    }
  });


  it('recomputes a room from paid orders, reports differences on a dry run, and late events are not counted twice', async () => {
    const orders: Order[] = [];
    const acked: AckOrderEffectRequest[] = [];
    const gift = await startStandIn(GiftServiceService, {
      ackOrderEffect: (call: { request: AckOrderEffectRequest }, cb: (err: null, res: AckOrderEffectResponse) => void) => {
        acked.push(call.request);
        cb(null, { state: OrderState.ORDER_STATE_DONE });
      },
      listOrders: (call: { request: ListOrdersRequest }, cb: (err: null, res: ListOrdersResponse) => void) => {
        const r = call.request;
        const inRange = (o: Order) => (!r.paidStartTime || (o.paidTime as Date) >= r.paidStartTime) && (!r.paidEndTime || (o.paidTime as Date) < r.paidEndTime);
        cb(null, { orders: orders.filter((o) => (r.roomId === '0' || o.roomId === r.roomId) && inRange(o)), page: { nextPageToken: '' } });
      },
    });
    const rebuilder = await startRanking(iso, { GIFT_ADDR: gift.address, RANKING_SNAPSHOT_MS: '100', GIFT_CONSUMER_ACK_WAIT_MS: String(ACK_WAIT_MS) });
    try {
      const asOrder = (g: ReturnType<typeof paid>): Order => Order.fromPartial({ ...g, state: OrderState.ORDER_STATE_DONE });
      const a = paid('106', '51', '10');
      const b = paid('106', '52', '20');
      const lost = paid('106', '51', '1000'); // paid, but its event never reached Ranking (yet)
      orders.push(asOrder(a), asOrder(b), asOrder(lost));
      await gifts.publish(a);
      await gifts.publish(b);
      await eventually(async () => expect(scores((await api().getRoomRanking({ roomId: '106', period: DAY })).entries)).toEqual([[1, '52', '20'], [2, '51', '10']]));

      const dry = await rankingApi(rebuilder.client).rebuildRanking({ roomId: '106', dryRun: true }, as('1', 'admin'));
      expect(dry).toMatchObject({ ordersScanned: '3', boardsRebuilt: '3', entriesChanged: '3', applied: false });
      const done = await rankingApi(rebuilder.client).rebuildRanking({ roomId: '106' }, as('1', 'admin'));
      expect(done).toMatchObject({ ordersScanned: '3', boardsRebuilt: '3', entriesChanged: '3', applied: true });
      const expected = [[1, '51', '1010'], [2, '52', '20']];
      for (const period of [LIVE, DAY, WEEK]) await eventually(async () => expect(scores((await rankingApi(rebuilder.client).getRoomRanking({ roomId: '106', period })).entries)).toEqual(expected));
      expect((await rankingApi(rebuilder.client).rebuildRanking({ roomId: '106', dryRun: true }, as('1', 'admin'))).entriesChanged).toBe('0');

      // The lost event turns up after all, and a new gift arrives: only the new one counts.
      await gifts.publish(lost);
      await gifts.publish(paid('106', '52', '5000'));
      await eventually(() => consumerIdle());
      // The replica with a Gift address reported each event it applied as the RANKING effect.
      expect(acked.every((a) => a.effect === OrderEffect.ORDER_EFFECT_RANKING)).toBe(true);
      await eventually(async () => expect(scores((await rankingApi(rebuilder.client).getRoomRanking({ roomId: '106', period: DAY })).entries)).toEqual([[1, '52', '5020'], [2, '51', '1010']]));
    } finally {
      await rebuilder.close();
      await gift.close();
    }
  });
});

