/**
 * The whole mesh (every service and the BFF as processes) on a private three-master Redis 7
 * Cluster started from the machine's redis-server and redis-cli, with REDIS_CLUSTER_NODES set: a
 * room read, chat, a gift and its ranking update, a BFF room entry and both rate limits work; the
 * keys land on every primary; and no command failed with CROSSSLOT or a redirection, by the
 * servers' own error counts and by every process's log. Then a primary drops a slot (CLUSTERDOWN):
 * what the services answer is UNAVAILABLE, never INTERNAL.
 *
 * Needs redis-server and redis-cli (Debian's redis-server and redis-tools): under CI=true the test
 * fails without them; elsewhere it is skipped with a line saying so.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { credentials, status as Code, type Client } from '@grpc/grpc-js';
import { Cluster, Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEV_JWT_SECRET, DEV_TOPUP_SECRET } from '../bff/config.js';
import { TokenVerifier } from '../bff/auth.js';
import * as chatPb from '../gen/ts/livemesh/chat/v1/chat.js';
import * as giftPb from '../gen/ts/livemesh/gift/v1/gift.js';
import * as rankingPb from '../gen/ts/livemesh/ranking/v1/ranking.js';
import * as roomPb from '../gen/ts/livemesh/room/v1/room.js';
import { ConfigError, kitConfigShape, parseConfig } from '../kit/config.js';
import { toStatus } from '../kit/grpc-errors.js';
import { fromRoot } from '../kit/paths.js';
import { connectRedis } from '../kit/redis.js';
import type { RoomRecord } from '../services/room/rooms.js';
import { RedisRoomCache } from '../services/room/store/redis-rooms.js';
import { isolate } from '../scripts/isolation.js';
import { startMesh, type Mesh } from '../scripts/mesh.js';
import { json, providerTopup, send, until } from './support/bff.js';
import { redisClusterGate, startRedisCluster, type RedisCluster } from './support/engines/redis-cluster.js';
import { as, failure, unaryApi } from './support/room.js';

const gate = redisClusterGate(import.meta.filename, 'the Redis Cluster test');
const iso = isolate('rcluster');
let cluster: RedisCluster | undefined;
let mesh: Mesh | undefined;
let redis: Cluster | undefined;
const lines: string[] = [];
const clients: Client[] = [];
const silent = pino({ level: 'silent' });

function api<C extends Client, M extends object>(Ctor: new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => C, service: 'room' | 'gift' | 'chat' | 'ranking', messages: M) {
  const c = new Ctor(mesh!.addresses(service)[0]!, credentials.createInsecure());
  clients.push(c);
  return unaryApi(c, messages);
}

/** Every node's error counts by prefix (INFO errorstats): what the servers refused, whoever sent it. */
async function errorStats(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const node of cluster!.nodes) {
    const [host, port] = node.split(':');
    const r = new Redis({ host, port: Number(port), lazyConnect: true, maxRetriesPerRequest: 0 });
    try {
      await r.connect();
      for (const m of (await r.info('errorstats')).matchAll(/^errorstat_(\w+):count=(\d+)/gm)) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
    } finally {
      r.disconnect();
    }
  }
  return out;
}

describe('REDIS_CLUSTER_NODES', () => {
  it('takes host:port entries, and refuses anything else (and braces in REDIS_PREFIX) with one line naming the setting', () => {
    expect(parseConfig(kitConfigShape, { REDIS_CLUSTER_NODES: '10.0.0.1:7000, redis-1.cache:7001,[::1]:7002' }).REDIS_CLUSTER_NODES).toEqual(['10.0.0.1:7000', 'redis-1.cache:7001', '[::1]:7002']);
    expect(parseConfig(kitConfigShape, {}).REDIS_CLUSTER_NODES).toEqual([]);
    expect(() => parseConfig(kitConfigShape, { REDIS_CLUSTER_NODES: '10.0.0.1:7000,redis-2' })).toThrow(
      new ConfigError(['REDIS_CLUSTER_NODES must be a comma-separated list of host:port (got "10.0.0.1:7000,redis-2")']),
    );
    expect(() => parseConfig(kitConfigShape, { REDIS_PREFIX: 'lm:{room}:' })).toThrow(/REDIS_PREFIX may contain only/);
  });
});

describe.skipIf(gate.skip)('the mesh on a three-master Redis Cluster', () => {
  beforeAll(async () => {
    const server = gate.need();
    cluster = await startRedisCluster({ server, cli: gate.cli!, log: (line) => process.stderr.write(`${line}\n`) });
    const env = {
      ...iso.env,
      // REDIS_URL still carries the credentials (none here); the Cluster's nodes come from the list.
      REDIS_URL: `redis://${cluster.nodes[0]}`,
      REDIS_CLUSTER_NODES: cluster.nodes.join(','),
      LOG_LEVEL: 'info',
      RATE_LIMIT_IP_PER_S: '0',
      RATE_LIMIT_USER_PER_S: '5',
      HOT_REFRESH_MS: '500',
      RANKING_SNAPSHOT_MS: '300',
    };
    mesh = await startMesh({ replicas: 1, env, onLine: (p, line) => lines.push(`${p.name}: ${line}`), startTimeoutMs: 90_000 });
    redis = new Cluster(cluster.nodes.map((n) => ({ host: n.split(':')[0], port: Number(n.split(':')[1]) })), { keyPrefix: iso.redisPrefix });
  }, 150_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    redis?.disconnect();
    await mesh?.stop();
    await cluster?.stop();
    await iso.cleanup();
  });

  it('serves rooms, chat, gifts with their ranking, the BFF room screen and rate limits, with no CROSSSLOT or MOVED anywhere', async () => {
    const rooms = api(roomPb.RoomServiceClient, 'room', roomPb);
    const gifts = api(giftPb.GiftServiceClient, 'gift', giftPb);
    const chat = api(chatPb.ChatServiceClient, 'chat', chatPb);
    const ranking = api(rankingPb.RankingServiceClient, 'ranking', rankingPb);
    const admin = as('1', 'admin');
    const streamer = as('8101', 'streamer');
    const VIEWER = '8102';
    const viewer = as(VIEWER, 'viewer', 'Fan');
    const bearer = async (userId: string) => ({ authorization: `Bearer ${await new TokenVerifier(DEV_JWT_SECRET).sign({ userId, role: 'viewer', name: `fan${userId}` })}` });

    // Rooms: writes (the room's script, the listings' and the streamer's index), then every read.
    const created: roomPb.Room[] = [];
    for (let i = 0; i < 4; i++) {
      const room = (await rooms.createRoom({ title: `cluster stage ${i}`, category: 'music', requestId: `rc-room-${i}` }, streamer)).room!;
      await rooms.startLive({ roomId: room.roomId }, streamer);
      created.push(room);
    }
    const ids = created.map((r) => r.roomId);
    const [roomId] = ids as [string];
    expect((await rooms.getRoom({ roomId }, viewer)).room).toMatchObject({ roomId, title: 'cluster stage 0', status: roomPb.RoomStatus.ROOM_STATUS_LIVE });
    expect((await rooms.batchGetRooms({ roomIds: [...ids].reverse(), readMask: ['title'] }, viewer)).rooms.map((r) => r.title)).toEqual([3, 2, 1, 0].map((i) => `cluster stage ${i}`));
    expect((await rooms.listLiveRooms({ category: 'music', page: { pageSize: 10, pageToken: '' } }, viewer)).rooms.map((r) => r.roomId).sort()).toEqual([...ids].sort());
    expect((await rooms.listRoomsByStreamer({ streamerId: '8101', page: { pageSize: 10, pageToken: '' } }, viewer)).rooms).toHaveLength(4);
    expect((await rooms.enterRoom({ roomId, sessionId: 'phone-1' }, viewer)).onlineCount).toBe('1');
    await until('the hot list to rank the entered room', () => rooms.listHotRooms({ limit: 10 }, viewer), (h) => h.rooms.some((x) => x.room?.roomId === roomId && x.onlineCount === '1'), 15_000);
    await rooms.stopLive({ roomId: ids[3]! }, streamer);
    await until('a stopped room to leave the live list', () => rooms.listLiveRooms({ category: 'music', page: { pageSize: 10, pageToken: '' } }, viewer), (l) => l.rooms.length === 3);

    // The gift catalog: UpsertGift drops the cached lists of several groups at once (a multi-key DEL before).
    const rose = (await gifts.upsertGift({ gift: { name: 'rose', priceMinor: '100', iconKey: 'icons/rose.png', effectKey: 'rose' } }, admin)).gift!;
    await gifts.upsertGiftGroup({ giftGroup: { name: 'standard', giftIds: [rose.giftId], isDefault: true } }, admin);
    await gifts.upsertGift({ gift: { ...rose, name: 'red rose' } }, admin);

    // The BFF: a top-up, then entering the room (room, online count, gift bar, ranking, messages in one screen).
    expect((await providerTopup(mesh!.bffUrl, DEV_TOPUP_SECRET, { paymentReference: 'rc-pay-1', userId: VIEWER, amountMinor: '1000', provider: 'test' })).status).toBe(201);
    const entry = await until(
      'the room screen with the renamed gift',
      async () => json(await fetch(`${mesh!.bffUrl}/v1/rooms/${roomId}`, { headers: await bearer(VIEWER) })),
      (b: { gifts?: Array<{ name: string }> }) => b.gifts?.some((g) => g.name === 'red rose') === true,
      15_000,
    );
    expect(entry).toMatchObject({ room: { id: roomId, title: 'cluster stage 0' }, onlineCount: '1', degraded: [] });

    // Chat through the BFF: a message, its retry, and the recent list.
    const said = await send(mesh!.bffUrl, 'POST', `/v1/rooms/${roomId}/chat`, { text: 'hello cluster', clientMessageId: 'rc-msg-1' }, await bearer(VIEWER));
    expect(said.status).toBe(201);
    const first = await json(said);
    expect(first.outcome).toBe('published');
    const retry = await json(await send(mesh!.bffUrl, 'POST', `/v1/rooms/${roomId}/chat`, { text: 'hello cluster', clientMessageId: 'rc-msg-1' }, await bearer(VIEWER)));
    expect(retry).toEqual({ messageId: first.messageId, outcome: 'duplicate', seq: first.seq, sentAt: first.sentAt });
    const recent = await chat.listRecentMessages({ roomId, limit: 20 }, viewer);
    expect(recent.events.map((e) => e.chat?.text)).toContain('hello cluster');

    // A gift through the BFF, to DONE, and the ranking it raises.
    // Gift may not know the new room for a moment: the same idempotency key makes the retries one gift.
    const gift = await until(
      'the gift to be accepted',
      async () => send(mesh!.bffUrl, 'POST', `/v1/rooms/${roomId}/gifts`, { giftId: rose.giftId, count: 2 }, { ...(await bearer(VIEWER)), 'idempotency-key': 'rc-gift-0001' }),
      (res) => res.status === 201 || res.status === 200,
      15_000,
    );
    const { order } = (await json(gift)) as { order: { id: string } };
    await until('the order to be DONE', () => gifts.getOrder({ orderId: order.id }, admin), (o) => o.order?.state === giftPb.OrderState.ORDER_STATE_DONE, 30_000);
    for (const period of [rankingPb.RankingPeriod.RANKING_PERIOD_LIVE, rankingPb.RankingPeriod.RANKING_PERIOD_DAY, rankingPb.RankingPeriod.RANKING_PERIOD_WEEK]) {
      const board = await until('the room board to count the gift', () => ranking.getRoomRanking({ roomId, period, limit: 3 }, viewer), (b) => b.entries.length > 0, 15_000);
      expect(board.entries[0]).toMatchObject({ rank: 1, userId: VIEWER, scoreMinor: '200' });
    }
    const ranked = await until('the BFF ranking screen', async () => (await json(await fetch(`${mesh!.bffUrl}/v1/rooms/${roomId}/ranking?period=day`))) as { entries?: unknown[] }, (b) => (b.entries?.length ?? 0) > 0);
    expect(ranked.entries?.[0]).toMatchObject({ userId: VIEWER });

    // Chat's own per-user limit (a token bucket in Redis, burst 10): the eleventh message at once is refused.
    const talker = as('8103', 'viewer', 'Talker');
    const outcomes: string[] = [];
    for (let i = 0; i < 12; i++) {
      const p = chat.sendMessage({ roomId: ids[1]!, text: `line ${i}`, clientMessageId: `rc-talk-${i}` }, talker);
      outcomes.push(await p.then(() => 'ok', async () => (await failure(p)).reason ?? 'error'));
    }
    expect(outcomes.slice(0, 10)).toEqual(Array(10).fill('ok'));
    expect(outcomes.slice(10)).toEqual(['RATE_LIMITED', 'RATE_LIMITED']);

    // The BFF's per-user limit (5 a second, counted in the Cluster): a burst gets 429s, and the counter is there.
    const burster = await bearer('8104');
    let counted: string | null = null;
    for (let attempt = 0; attempt < 3 && counted === null; attempt++) {
      const statuses = await Promise.all(Array.from({ length: 12 }, () => send(mesh!.bffUrl, 'POST', `/v1/rooms/${roomId}/likes`, { count: 1 }, burster).then((r) => r.status)));
      counted = await redis!.get('bff:rl:user:8104');
      expect(statuses).toContain(429);
      expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(0);
    }
    expect(Number(counted)).toBeGreaterThanOrEqual(5);

    // Keys spread over every primary: each holds some.
    for (const node of cluster!.nodes) {
      const [host, port] = node.split(':');
      const r = new Redis({ host, port: Number(port), lazyConnect: true });
      await r.connect();
      expect(await r.dbsize(), `keys on ${node}`).toBeGreaterThan(5);
      r.disconnect();
    }

    // Nothing was refused for its slot, by the servers' count and by every process's log.
    const stats = await errorStats();
    expect(Object.keys(stats).filter((k) => /^(CROSSSLOT|MOVED|ASK|TRYAGAIN|CLUSTERDOWN)$/.test(k)), JSON.stringify(stats)).toEqual([]);
    expect(lines.filter((l) => /CROSSSLOT|MOVED|same slot|non local key|CLUSTERDOWN/.test(l))).toEqual([]);
    expect(lines.filter((l) => /"unexpected error"|"level":50/.test(l))).toEqual([]);
    expect(mesh!.crashed()).toEqual([]);
  }, 180_000);

  it("Room's lists repair themselves when a put is retried after losing its lists step; `npm run room -- check` works on the Cluster", async () => {
    // A store of its own under a sub-prefix, so its figures are not the mesh's.
    const client = await connectRedis({ REDIS_URL: `redis://${cluster!.nodes[0]}`, REDIS_CLUSTER_NODES: cluster!.nodes, REDIS_PREFIX: `${iso.redisPrefix}repair:` }, silent);
    try {
      const cache = new RedisRoomCache(client);
      const at = new Date('2026-12-01T20:00:00Z');
      const room = (id: number, version: string, status: RoomRecord['status'] = 'live'): RoomRecord => ({
        roomId: String(id), streamerId: '77', title: `r${id}`, category: 'music', coverKey: '', notice: '', status, giftGroupId: '0', version,
        createdAt: at, updatedAt: at, liveStartedAt: status === 'live' ? at : null,
      });
      expect(await cache.put(room(5, '3'))).toBe(true);
      expect((await cache.liveIds('music', 10, undefined)).ids).toEqual(['5']);
      // A crash after the room's script, before the lists' one: the lists never heard of version 3.
      await client.hdel('{rl}:v', '5');
      await client.zrem('{rl}:l', '5');
      await client.zrem('{rl}:l:music', '5');
      await client.hincrby('{rl}:m', 'sv', -3);
      expect(await cache.checksum()).toEqual({ rooms: 0, versionSum: '0' });
      // The redelivered change: the hash already has it, the lists catch up.
      expect(await cache.put(room(5, '3'))).toBe(false);
      expect((await cache.liveIds('music', 10, undefined)).ids).toEqual(['5']);
      expect(await cache.checksum()).toEqual({ rooms: 1, versionSum: '3' });
      // An older version moves nothing back, in the hash or the lists.
      expect(await cache.put(room(5, '2', 'offline'))).toBe(false);
      expect((await cache.liveIds('', 10, undefined)).ids).toEqual(['5']);
      expect(await cache.checksum()).toEqual({ rooms: 1, versionSum: '3' });
      // A backfill batch over rooms in many slots, and a batch read back in request order.
      const batch = Array.from({ length: 40 }, (_, i) => room(100 + i, '1', i % 2 === 0 ? 'live' : 'offline'));
      expect(await cache.putMany(batch)).toBe(40);
      expect((await cache.getMany(batch.map((r) => r.roomId).reverse(), ['title'])).map((r) => r?.title)).toEqual(batch.map((r) => r.title).reverse());
      expect(await cache.checksum()).toEqual({ rooms: 41, versionSum: '43' });
      expect((await cache.streamerIds('77', 100, undefined)).ids).toHaveLength(41);
    } finally {
      client.disconnect();
    }

    // The operator's check, against the mesh's Room database and keys.
    const { stdout } = await promisify(execFile)(process.execPath, [fromRoot('dist', 'services', 'room', 'cli.js'), 'check'], {
      env: { ...process.env, ...iso.env, MYSQL_DATABASE: `${iso.database}_room`, REDIS_URL: `redis://${cluster!.nodes[0]}`, REDIS_CLUSTER_NODES: cluster!.nodes.join(',') },
    });
    expect(stdout).toMatch(/check: Redis is complete \(4 rooms, version sum \d+\)/);
  }, 60_000);

  it('a Cluster error (MOVED past the client, CLUSTERDOWN) is UNAVAILABLE, never INTERNAL', async () => {
    // Nothing so far (the mesh, the repair above, the CLI) was refused for its slot.
    const before = await errorStats();
    expect(Object.keys(before).filter((k) => /^(CROSSSLOT|MOVED|ASK|TRYAGAIN|CLUSTERDOWN)$/.test(k)), JSON.stringify(before)).toEqual([]);

    // A redirection a plain client does not follow, as a Cluster client left with one after its retries sees it.
    const [host, port] = cluster!.nodes[0]!.split(':');
    const plain = new Redis({ host, port: Number(port), lazyConnect: true, maxRetriesPerRequest: 0 });
    await plain.connect();
    try {
      let moved: Error | undefined;
      for (let i = 0; !moved && i < 100; i++) moved = await plain.get(`probe-${i}`).then(() => undefined, (err: Error) => err);
      expect(moved?.message).toMatch(/^MOVED \d+ /);
      expect(toStatus(moved, silent, 'probe').code).toBe(Code.UNAVAILABLE);

      // A room whose key the first node serves (the slot map as it is now), for the service call below.
      const [, ownPort] = cluster!.nodes[0]!.split(':');
      const ranges = (await plain.cluster('SLOTS')).filter(([, , owner]) => String(owner?.[1]) === ownPort);
      const served = (slot: number) => ranges.some(([from, to]) => slot >= from && slot <= to);
      let roomId = 990_001;
      while (!served(await plain.cluster('KEYSLOT', `${iso.redisPrefix}{r:${roomId}}`))) roomId++;

      // The node drops one of its slots: it no longer sees every slot served and answers CLUSTERDOWN.
      await plain.cluster('DELSLOTS', ranges[0]![0]);
      await until('the node to report the cluster down', () => plain.cluster('INFO'), (info) => /cluster_state:fail/.test(info), 15_000);
      const down = await plain.get('anything').then(() => undefined, (err: Error) => err);
      expect(down?.message).toMatch(/^CLUSTERDOWN /);
      expect(toStatus(down, silent, 'probe').code).toBe(Code.UNAVAILABLE);

      // A service reading that room: ioredis retries CLUSTERDOWN for a moment, then the answer is UNAVAILABLE.
      const rooms = api(roomPb.RoomServiceClient, 'room', roomPb);
      expect(await failure(rooms.getRoom({ roomId: String(roomId) }, as('8102', 'viewer')))).toMatchObject({ code: 'UNAVAILABLE', reason: 'DEPENDENCY_UNAVAILABLE' });
    } finally {
      plain.disconnect();
    }
  }, 60_000);
});
