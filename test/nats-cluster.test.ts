/**
 * The mesh on a real three-node NATS cluster (nats-server from the machine, JetStream, cluster
 * routes), with NATS_REPLICAS=3 and every node in NATS_URL: every stream and KV bucket livemesh
 * creates has three replicas (a stream and a bucket made beforehand with one are raised); the
 * node leading GIFT_PAID is SIGKILLed while gifts are being sent, every paid order still reaches
 * DONE with each effect applied once, and a Gift replica started during the outage serves. Then
 * with a second node down (no quorum at all) new Gift and BFF processes still start and serve, a
 * new Ledger waits for its shard map, and paid events wait in the outbox until the nodes return.
 */
import { credentials } from '@grpc/grpc-js';
import { jetstreamManager, type StreamInfo } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import mysql, { type Connection } from 'mysql2/promise';
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { GiftServiceClient, SendGiftRequest } from '../gen/ts/livemesh/gift/v1/gift.js';
import { RankingPeriod } from '../gen/ts/livemesh/ranking/v1/ranking.js';
import { mysqlOptions, quoteIdent } from '../kit/mysql.js';
import { fromRoot } from '../kit/paths.js';
import { boards } from '../scripts/chaos/run.js';
import { checkInvariants } from '../scripts/chaos/invariants.js';
import { readChaosState, unsettled } from '../scripts/chaos/state.js';
import { isolate } from '../scripts/isolation.js';
import { as, unary } from '../scripts/load/calls.js';
import { meshClients, startLoad } from '../scripts/load/index.js';
import { httpReady, startMesh, startProcess, startServer, stopServer, type Mesh, type Server } from '../scripts/mesh.js';
import { giftPaidStreamConfig, giftPaidStreamName } from '../services/gift/client.js';
import { startNatsCluster, type NatsCluster } from './support/engines/nats-cluster.js';
import { natsServerGate } from './support/tools.js';

const tool = natsServerGate(import.meta.filename, 'the NATS cluster test');

const iso = isolate('natscluster');
const dataDir = fromRoot('.data', `nats-cluster-${iso.id}`);
let cluster: NatsCluster | undefined;
let mesh: Mesh | undefined;
let extraGift: Server | undefined;
let nc: NatsConnection | undefined;
let admin: Connection | undefined;
/** What the mesh's processes logged, for the checks and for a failure's message. */
const lines: string[] = [];
/** A room, a gift and a viewer with COIN from the first test's load, for the second. */
let world: { roomId: string; giftId: string; viewer: string } | undefined;
const giftWorld = () => {
  if (!world) throw new Error('needs the world of the test before');
  return world;
};

afterAll(async () => {
  if (extraGift) await stopServer(extraGift, { log: () => {} });
  await mesh?.stop();
  await nc?.close();
  await admin?.end();
  await cluster?.stop();
  rmSync(dataDir, { recursive: true, force: true });
  await iso.cleanup();
}, 60_000);

async function allStreams(jsm: Awaited<ReturnType<typeof jetstreamManager>>): Promise<StreamInfo[]> {
  const out: StreamInfo[] = [];
  for await (const si of jsm.streams.list()) out.push(si);
  return out;
}

describe.skipIf(tool.skip)('the mesh on a three-node NATS cluster (NATS_REPLICAS=3)', () => {
  it('keeps three replicas of every stream and bucket, and loses no paid order when the node leading GIFT_PAID dies', async () => {
    cluster = await startNatsCluster({ bin: tool.need(), dataDir });
    nc = await connect({ servers: cluster.nodes.map((n) => n.clientUrl) });
    const jsm = await jetstreamManager(nc);
    // A stream left at one replica by an earlier deploy: the mesh must raise it.
    await jsm.streams.add({ ...giftPaidStreamConfig(iso.natsPrefix), num_replicas: 1 });
    await new Kvm(nc).create(`${iso.natsPrefix}_bff_switches`, { history: 5, replicas: 1 });

    const env = {
      ...iso.env,
      NATS_URL: cluster.url,
      NATS_REPLICAS: '3',
      LOG_LEVEL: 'info',
      DRAIN_GRACE_MS: '0',
      GIFT_RECOVERY_AFTER_MS: '2000',
      GIFT_RECOVERY_INTERVAL_MS: '500',
      // A paid event the cluster acknowledged and then lost is published again after 10 s.
      GIFT_REPUBLISH_AFTER_MS: '10000',
      MYSQL_POOL_SIZE: '4',
    };
    mesh = await startMesh({ env, replicas: 1, onLine: (p, line) => lines.push(`${p.name} ${line}`) });

    // Every stream and KV bucket the mesh made (or found) has three replicas.
    const prefix = iso.natsPrefix;
    const streams = await allStreams(jsm);
    const names = streams.map((s) => s.config.name);
    expect(names).toEqual(
      expect.arrayContaining([`${prefix}_ROOM_CHANGES`, `${prefix}_GIFT_PAID`, `KV_${prefix}_bff_switches`, expect.stringMatching(new RegExp(`^KV_${prefix}_ledger_`))]),
    );
    for (const s of streams) expect({ stream: s.config.name, replicas: s.config.num_replicas }).toEqual({ stream: s.config.name, replicas: 3 });
    expect(lines.some((l) => l.includes(`stream ${giftPaidStreamName(prefix)}: replicas raised from 1 to 3`))).toBe(true);
    expect(lines.some((l) => l.includes(`KV bucket ${prefix}_bff_switches: replicas raised from 1 to 3`))).toBe(true);
    await expect.poll(async () => (await jsm.streams.info(giftPaidStreamName(prefix))).cluster?.replicas?.filter((r) => r.current).length, { timeout: 30_000 }).toBe(2);

    const load = await startLoad(mesh, { rates: { gifts: 10, chat: 0, roomReads: 0, bffReads: 0 }, world: { rooms: 2, viewers: 12 }, seed: 18 });
    await sleep(3000);

    const leader = (await jsm.streams.info(giftPaidStreamName(prefix))).cluster?.leader;
    expect(leader).toMatch(/^n\d$/);
    await cluster.kill(leader!);
    const killedAt = Date.now();

    // A Gift replica started while the node is down starts, reports SERVING and takes a send.
    extraGift = await startServer('gift-extra', fromRoot('dist', 'services', 'gift', 'main.js'), { ...env, ...mesh.peerEnv, MYSQL_DATABASE: `${iso.database}_gift`, REPLICA: 'gift-extra', METRICS_PORT: '-1' }, false);
    const extra = new GiftServiceClient(extraGift.address, credentials.createInsecure());
    const viewer = load.world.viewers[0]!;
    world = { roomId: load.world.rooms[1]!.roomId, giftId: load.world.gifts[0]!.giftId, viewer };
    const sent = await unary(
      extra,
      'sendGift',
      SendGiftRequest.fromPartial({ idempotencyKey: `extra-${iso.id}`, roomId: load.world.rooms[0]!.roomId, giftId: load.world.gifts[0]!.giftId, count: 1, senderName: 'extra' }),
      as(viewer, 'viewer'),
      10_000,
    );
    extra.close();
    expect({ code: sent.code, details: sent.error?.details }).toEqual({ code: 'OK', details: undefined });

    await sleep(Math.max(0, 4000 - (Date.now() - killedAt)));
    const report = await load.stop({ drainMs: 30_000 });
    expect(report.gifts.ok).toBeGreaterThan(20);

    admin = await mysql.createConnection(mysqlOptions(iso.urls.mysqlUrl));
    const conn = admin;
    await expect.poll(() => unsettled(conn, iso.database), { timeout: 60_000, interval: 500 }).toEqual({ openOrders: 0, creditsInFlight: 0 });

    const state = await readChaosState(conn, iso.database);
    const rooms = report.world.rooms.map((r) => r.roomId);
    const clients = meshClients(mesh);
    const ranking = { live: await boards(clients, rooms, RankingPeriod.RANKING_PERIOD_LIVE), day: await boards(clients, rooms, RankingPeriod.RANKING_PERIOD_DAY) };
    clients.close();
    const checks = checkInvariants({ state, sends: report.giftSends, viewers: report.world.viewers, topUpMinor: report.world.topUpMinor, ranking });
    for (const check of checks) expect({ check: check.name, holds: check.holds, violations: check.violations }).toEqual({ check: check.name, holds: true, violations: [] });
    const done = state.orders.filter((o) => o.state === 'DONE');
    expect(done.length).toBeGreaterThan(report.gifts.ok);
    expect(done.filter((o) => !['EXP', 'BARRAGE', 'RANKING'].every((e) => o.effectsDone.includes(e))).map((o) => o.orderId)).toEqual([]);

    expect(mesh.crashed().map((p) => p.name)).toEqual([]);
    expect(lines.filter((l) => l.includes('jetstream is not enabled'))).toEqual([]);
  }, 240_000);

  it('starts and serves a Gift replica and a BFF while JetStream has no quorum, paid events waiting in the outbox until they publish; a Ledger waits for its map instead of exiting', async () => {
    if (!cluster || !mesh) throw new Error('needs the cluster and the mesh of the test before');
    // A second node down leaves one of three: no stream has a quorum, nor has JetStream itself.
    const alive = cluster.nodes.filter((n) => n.proc.exitDescription === undefined);
    expect(alive).toHaveLength(2);
    const down = cluster.nodes.filter((n) => n.proc.exitDescription !== undefined).map((n) => n.name);
    await cluster.kill(alive[0]!.name);
    down.push(alive[0]!.name);

    const env = { ...iso.env, NATS_URL: cluster.url, NATS_REPLICAS: '3', LOG_LEVEL: 'warn', DRAIN_GRACE_MS: '0', MYSQL_POOL_SIZE: '4', MYSQL_DATABASE: `${iso.database}_gift`, REPLICA: 'gift-offline', METRICS_PORT: '-1', GIFT_REPUBLISH_AFTER_MS: '10000' };
    let ledger: Server | undefined;
    let bff: Server | undefined;
    const gift = await startServer('gift-offline', fromRoot('dist', 'services', 'gift', 'main.js'), { ...env, ...mesh.peerEnv }, false);
    try {
      const client = new GiftServiceClient(gift.address, credentials.createInsecure());
      const world = giftWorld();
      const sent = await unary(
        client,
        'sendGift',
        SendGiftRequest.fromPartial({ idempotencyKey: `offline-${iso.id}`, roomId: world.roomId, giftId: world.giftId, count: 1, senderName: 'offline' }),
        as(world.viewer, 'viewer'),
        15_000,
      );
      client.close();
      expect({ code: sent.code, details: sent.error?.details }).toEqual({ code: 'OK', details: undefined });
      const orderId = sent.value?.order?.orderId ?? '';

      // Paid, held in the outbox, and the log names the cause.
      const conn = admin!;
      const outbox = async () => Number(((await conn.query(`SELECT COUNT(*) AS n FROM ${quoteIdent(`${iso.database}_gift`)}.outbox`))[0] as Array<{ n: number }>)[0]?.n ?? 0);
      expect(await outbox()).toBeGreaterThan(0);
      await expect.poll(() => gift.tail(), { timeout: 30_000 }).toContain('outbox relay: stream offline');
      expect(gift.tail()).not.toContain('jetstream is not enabled');

      // So does a BFF: its switches bucket is offline, so every section is served until it answers.
      bff = await startProcess(
        { label: 'bff-offline', script: fromRoot('dist', 'bff', 'main.js'), env: { ...iso.env, ...mesh.peerEnv, NATS_URL: cluster.url, NATS_REPLICAS: '3', LOG_LEVEL: 'warn', DRAIN_GRACE_MS: '0', REPLICA: 'bff-offline', METRICS_PORT: '-1' }, what: 'answer /readyz' },
        (server) => httpReady(`http://${server.address}/readyz`),
      );
      expect(bff.tail()).toContain('switches: stream offline');

      // A Ledger replica started now cannot route without its shard map: it waits for the bucket
      // (it does not serve, and does not exit into a crash loop) and serves once it is back.
      const ledgerEnv = { ...iso.env, ...mesh.peerEnv, NATS_URL: cluster.url, NATS_REPLICAS: '3', LOG_LEVEL: 'warn', DRAIN_GRACE_MS: '0', MYSQL_POOL_SIZE: '4', MYSQL_DATABASE: `${iso.database}_ledger`, REPLICA: 'ledger-offline', METRICS_PORT: '-1' };
      const ledgerStart = startServer('ledger-offline', fromRoot('dist', 'services', 'ledger', 'main.js'), ledgerEnv, false);
      let ledgerUp = false;
      void ledgerStart.then(() => (ledgerUp = true), () => undefined);
      await sleep(4000);
      expect(ledgerUp).toBe(false);

      // The nodes come back: the events publish, the outbox empties, the order reaches DONE.
      for (const name of down) await cluster.restart(name);
      ledger = await ledgerStart;
      // It waits at whichever step JetStream stops answering: opening the bucket, or (when the
      // bucket's info still came back) creating the watch's consumer.
      expect(ledger.tail()).toMatch(/shard map (bucket|watch): stream offline/);
      await expect.poll(outbox, { timeout: 60_000, interval: 500 }).toBe(0);
      // nats-server 2.9 was seen acknowledging the paid event and then losing it when the quorum
      // came back (the stream ended one message short): Gift's recovery publishes it again after
      // GIFT_REPUBLISH_AFTER_MS. A failure names what is still open, with the stream's state.
      try {
        await expect.poll(() => unsettled(conn, iso.database), { timeout: 120_000, interval: 500 }).toEqual({ openOrders: 0, creditsInFlight: 0 });
      } catch (err) {
        const open = (await readChaosState(conn, iso.database)).orders.filter((o) => o.state !== 'DONE' && o.state !== 'FAILED');
        const failures = lines.filter((l) => /handler failed|offline|error/i.test(l)).slice(-30);
        const jsm = await jetstreamManager(nc!);
        const stream = giftPaidStreamName(iso.natsPrefix);
        const info = await jsm.streams.info(stream).catch((e: unknown) => String(e));
        const consumers: unknown[] = [];
        for await (const c of jsm.consumers.list(stream)) consumers.push({ name: c.name, pending: c.num_pending, ackPending: c.num_ack_pending, redelivered: c.num_redelivered, delivered: c.delivered, ackFloor: c.ack_floor, leader: c.cluster?.leader, waiting: c.num_waiting });
        const last = await jsm.streams.getMessage(stream, { last_by_subj: `${iso.natsPrefix}.gift.paid.${giftWorld().roomId}` }).then((m) => m && { seq: m.seq, time: m.time, header: m.header?.get('Nats-Msg-Id') }, (e: unknown) => String(e));
        failures.push(`stream: ${JSON.stringify(typeof info === 'string' ? info : { state: info.state, leader: info.cluster?.leader, replicas: info.cluster?.replicas })}`, `consumers: ${JSON.stringify(consumers)}`, `last in room: ${JSON.stringify(last)}`);
        throw new Error(`orders still open: ${JSON.stringify(open, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}\nmesh: ${failures.join('\n')}\ngift-offline: ${gift.tail()}\nledger-offline: ${ledger.tail()}`, { cause: err });
      }
      const state = await readChaosState(conn, iso.database);
      expect(state.orders.find((o) => o.orderId === orderId)?.state).toBe('DONE');
      expect(mesh.crashed().map((p) => p.name)).toEqual([]);
    } finally {
      await stopServer(gift, { log: () => {} });
      if (ledger) await stopServer(ledger, { log: () => {} });
      if (bff) await stopServer(bff, { log: () => {} });
    }
  }, 240_000);
});
