import { spawn } from 'node:child_process';
import { credentials, type ServiceError } from '@grpc/grpc-js';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Asset } from '../gen/ts/livemesh/common/v1/common.js';
import { GiftServiceClient, OrderState } from '../gen/ts/livemesh/gift/v1/gift.js';
import { LedgerServiceClient, type LedgerServiceClient as LedgerClient } from '../gen/ts/livemesh/ledger/v1/ledger.js';
import { RoomServiceClient } from '../gen/ts/livemesh/room/v1/room.js';
import { ConfigError, EXIT_CONFIG, kitConfigShape, parseConfig } from '../kit/config.js';
import { mysqlOptions } from '../kit/mysql.js';
import { fromRoot } from '../kit/paths.js';
import { bucketOf } from '../services/ledger/buckets.js';
import { isolate } from '../scripts/isolation.js';
import { startMesh, type Mesh } from '../scripts/mesh.js';
import { freePorts } from '../scripts/net.js';
import { mariadbGate, startMariaDb, type MariaDbServer } from './support/engines/mariadb.js';
import { giftApi, ledgerApi, ledgerBalance, until } from './support/gift.js';
import { ADMIN, as, balanceOf, call, gift, killed, ownersInBucket, ownersOn, spawnLedger, startLedger, topUp, waitServing, type LedgerServer } from './support/ledger.js';
import { roomApi } from './support/room.js';

/**
 * The Ledger with shard 0 on the machine's MariaDB and shard 1 on a private one started for this
 * file: a bucket moves between the servers under live transfers with nothing lost or doubled; a
 * replica pointed at a server the shard map does not know refuses to start (the double TopUp mint
 * it prevents needs exactly that replica); and the launcher runs Room and Gift on a server of their
 * own while a gift still goes through.
 */
const gate = mariadbGate(import.meta.filename, 'the Ledger-across-servers tests (a private mariadbd beside the machine\'s)');
const iso = isolate('ledgersrv');
let other: MariaDbServer | undefined;
let third: MariaDbServer | undefined;
let a: LedgerServer | undefined;
let b: LedgerServer | undefined;
let mesh: Mesh | undefined;

const server = () => {
  if (!other) throw new Error('the private MariaDB did not start');
  return other;
};
const shardUrls = () => `${iso.urls.mysqlUrl},${server().url}`;
const A = () => a as LedgerServer;
const B = () => b as LedgerServer;

afterAll(async () => {
  await mesh?.stop();
  await b?.close();
  await a?.close();
  await iso.cleanup();
  await other?.stop();
  await third?.stop();
});

async function query<T>(url: string, sql: string, params: unknown[] = [], database?: string): Promise<T[]> {
  const conn = await mysql.createConnection(mysqlOptions(url, database));
  try {
    return (await conn.query(sql, params))[0] as T[];
  } finally {
    await conn.end();
  }
}

const databasesOn = async (url: string) =>
  (await query<{ name: string }>(url, 'SELECT schema_name AS name FROM information_schema.schemata WHERE schema_name LIKE ?', [`${iso.database}%`])).map((r) => r.name).sort();

async function rowsInBucket(url: string, database: string, bucket: number): Promise<number> {
  let n = 0;
  for (const t of ['accounts', 'transfers', 'entries', 'outbox', 'daily_income', 'topup_refs']) {
    n += Number((await query<{ n: number }>(url, `SELECT COUNT(*) AS n FROM ${t} WHERE bucket = ?`, [bucket], database))[0]?.n);
  }
  return n;
}

/** The built Ledger process with extra settings; resolves with how it ended and what it printed. */
function ledgerProcess(env: Record<string, string>, timeoutMs = 60_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [fromRoot('dist', 'services', 'ledger', 'main.js')], {
      env: { ...process.env, HOST: '127.0.0.1', PORT: '0', METRICS_PORT: '-1', LOG_LEVEL: 'warn', DRAIN_GRACE_MS: '0', ...iso.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

function runCli(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [fromRoot('dist', 'services', 'ledger', 'cli.js'), ...args, '--address', A().address], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.once('exit', (code) => resolve({ code, out }));
  });
}

describe.skipIf(gate.skip)('Ledger shards on two MariaDB servers', () => {
  beforeAll(async () => {
    other = await startMariaDb(gate);
    a = await startLedger(iso, { LEDGER_SHARD_URLS: shardUrls() });
    b = await startLedger(iso, { LEDGER_SHARD_URLS: shardUrls() });
  }, 150_000);

  it('puts each shard on its own server, each database carrying the identity the shard map records', async () => {
    expect(A().parts.shards.get(0)?.server).toBe(new URL(iso.urls.mysqlUrl).host);
    expect(A().parts.shards.get(1)?.server).toBe(`127.0.0.1:${server().port}`);
    expect(await databasesOn(iso.urls.mysqlUrl)).toEqual([`${iso.database}_shard0`]);
    expect(await databasesOn(server().url)).toEqual([`${iso.database}_shard1`]);

    const stored = await A().parts.mapStore.load();
    const map = stored?.map;
    expect(map?.ledgerId).toMatch(/^[0-9a-f-]{36}$/);
    type IdRow = { ledger_id: string; shard_id: number; database_uid: string };
    const [id0] = await query<IdRow>(iso.urls.mysqlUrl, 'SELECT * FROM shard_identity', [], `${iso.database}_shard0`);
    const [id1] = await query<IdRow>(server().url, 'SELECT * FROM shard_identity', [], `${iso.database}_shard1`);
    expect(id0).toMatchObject({ ledger_id: map?.ledgerId, shard_id: 0 });
    expect(id1).toMatchObject({ ledger_id: map?.ledgerId, shard_id: 1 });
    expect(id0?.database_uid).not.toBe(id1?.database_uid);
    expect(map?.shards).toEqual([
      { id: 0, name: `${iso.database}_shard0`, uid: id0?.database_uid },
      { id: 1, name: `${iso.database}_shard1`, uid: id1?.database_uid },
    ]);
    // What an operator sees: the RPC and `npm run ledger -- shard-map` show the recorded identities.
    const served = (await call(A().client.getShardMap, A().client, {}, ADMIN())).shardMap;
    expect(served?.ledgerId).toBe(map?.ledgerId);
    expect(served?.shards.map((s) => s.databaseUid)).toEqual([id0?.database_uid, id1?.database_uid]);
    const cli = await runCli(['shard-map']);
    expect(cli.code, cli.out).toBe(0);
    expect(cli.out).toContain(`ledger ${map?.ledgerId}`);
    expect(cli.out).toContain(`shard 1 (${iso.database}_shard1, database uid ${id1?.database_uid}):`);

    // A top-up for an owner on shard 1 lands on the private server, and only there.
    const owner = ownersOn(A().parts, 1, 1, 900_000)[0] ?? '';
    await topUp(A().client, owner, 500, 'pay-srv-1');
    const bucket = bucketOf(owner);
    expect(await rowsInBucket(server().url, `${iso.database}_shard1`, bucket)).toBeGreaterThan(0);
    expect(await rowsInBucket(iso.urls.mysqlUrl, `${iso.database}_shard0`, bucket)).toBe(0);
  });

  it('moves a bucket from one server to the other under live transfers: nothing lost or doubled, invariants hold', async () => {
    const bucket = bucketOf(ownersOn(A().parts, 0, 1, 50_000)[0] ?? '');
    const inside = ownersInBucket(bucket, 8, 300_000);
    const elsewhere = [...ownersOn(A().parts, 0, 4, 400_000), ...ownersOn(A().parts, 1, 4, 410_000)].filter((o) => bucketOf(o) !== bucket);
    const payers = [...inside.slice(0, 4), ...elsewhere.slice(0, 4)];
    const payees = [...inside.slice(4), ...elsewhere.slice(4)];
    await Promise.all(payers.map((p) => topUp(A().client, p, 1_000_000)));

    const spent = new Map<string, bigint>();
    const received = new Map<string, bigint>();
    const errors: ServiceError[] = [];
    const ids: string[] = [];
    let stop = false;
    let n = 0;
    const worker = async (w: number) => {
      while (!stop) {
        const i = n++;
        const payer = payers[i % payers.length] ?? '';
        const payee = payees[(i * 7 + w) % payees.length] ?? '';
        const amount = BigInt(1 + (i % 9));
        const id = `srv-${i}`;
        const client: LedgerClient = i % 2 === 0 ? A().client : B().client;
        try {
          await call(client.transfer, client, gift(id, payer, payee, String(amount)), as(payer, 'viewer'));
          // Every tenth transfer is retried through the other replica: it must replay, not debit again.
          if (i % 10 === 0) {
            const again = client === A().client ? B().client : A().client;
            expect((await call(again.transfer, again, gift(id, payer, payee, String(amount)), as(payer, 'viewer'))).replayed).toBe(true);
          }
          spent.set(payer, (spent.get(payer) ?? 0n) + amount);
          received.set(payee, (received.get(payee) ?? 0n) + amount);
          ids.push(id);
        } catch (err) {
          errors.push(err as ServiceError);
        }
      }
    };
    const load = Promise.all(Array.from({ length: 6 }, (_, w) => worker(w)));
    await new Promise((r) => setTimeout(r, 300));
    const cli = await runCli(['migrate-bucket', String(bucket), '1', '--request-id', 'cross-server']);
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await load;

    expect(cli.out).toMatch(/DONE: \d+ rows copied, writes held \d+ ms/);
    expect(cli.code).toBe(0);
    expect(errors.map((e) => `${e.code} ${e.details}`)).toEqual([]);
    expect(ids.length).toBeGreaterThan(30);
    expect(B().parts.router.view.shardOf(bucket)).toBe(1);
    const done = A().logs.lines.find((l) => l.msg === 'migration: done') ?? B().logs.lines.find((l) => l.msg === 'migration: done');
    console.log(`cross-server migration: ${ids.length} transfers, ${JSON.stringify(done)}`);

    await A().parts.applier.drain();
    await B().parts.applier.drain();
    for (const p of payers) expect((await balanceOf(A().client, p, Asset.ASSET_COIN)).amount).toBe(1_000_000n - (spent.get(p) ?? 0n));
    for (const p of payees) expect(await balanceOf(B().client, p, Asset.ASSET_INCOME)).toEqual({ amount: received.get(p) ?? 0n, pending: 0n });
    const report = await call(A().client.checkInvariants, A().client, { assets: [] }, ADMIN());
    expect(report.violations).toEqual([]);
    expect(report.ok).toBe(true);
    expect(Number(report.transfersChecked)).toBeGreaterThanOrEqual(ids.length);
    // The bucket's rows left the machine's server and are all on the private one.
    expect(await rowsInBucket(iso.urls.mysqlUrl, `${iso.database}_shard0`, bucket)).toBe(0);
    expect(await rowsInBucket(server().url, `${iso.database}_shard1`, bucket)).toBeGreaterThan(0);
    // Reconcile reads both servers: the income the gifts recorded matches their credit entries.
    const today = new Date().toISOString().slice(0, 10);
    const rec = await call(A().client.reconcile, A().client, { day: today, streamerId: '0', dryRun: true }, ADMIN());
    expect(Number(rec.mismatchCount)).toBe(0);
    expect(Number(rec.transfersScanned)).toBe(ids.length);
  }, 120_000);

  it('refuses to start a replica whose servers are not the ones the shard map records', async () => {
    const map = (await A().parts.mapStore.load())?.map;
    const uid1 = map?.shards.find((s) => s.id === 1)?.uid ?? '';
    const recorded = `ledger ${map?.ledgerId} shard 1 (database uid ${uid1})`;
    // Shard 1 on the machine's server, where it is an empty database: the replica that would mint
    // a top-up a second time, in its own empty shard.
    const wrong = await ledgerProcess({ LEDGER_SHARD_URLS: `${iso.urls.mysqlUrl},${iso.urls.mysqlUrl}` });
    expect(wrong.code).toBe(EXIT_CONFIG);
    expect(wrong.out).toContain(`shard 1: database ${iso.database}_shard1 on ${new URL(iso.urls.mysqlUrl).host} has no identity`);
    expect(wrong.out).toContain(recorded);
    // It wrote nothing a later replica could serve from.
    expect(await query(iso.urls.mysqlUrl, 'SELECT * FROM bucket_state', [], `${iso.database}_shard1`)).toEqual([]);

    // Shards given in the wrong order.
    const swapped = await ledgerProcess({ LEDGER_SHARD_URLS: `${server().url}/${iso.database}_shard1,${iso.urls.mysqlUrl}/${iso.database}_shard0` });
    expect(swapped.code).toBe(EXIT_CONFIG);
    expect(swapped.out).toContain(`shard 0: database ${iso.database}_shard1 on 127.0.0.1:${server().port} is ${recorded}, configured as shard 0`);

    // A shard of another ledger (its own map, its own databases on the same two servers).
    const otherLedger = await startLedger(iso, { LEDGER_SHARD_URLS: shardUrls(), NATS_PREFIX: `${iso.natsPrefix}_x`, MYSQL_DATABASE: `${iso.database}_x` });
    const foreign = (await otherLedger.parts.mapStore.load())?.map;
    await otherLedger.close();
    const foreignId = `ledger ${foreign?.ledgerId} shard 1 (database uid ${foreign?.shards[1]?.uid})`;
    const mixed = await ledgerProcess({ LEDGER_SHARD_URLS: `${iso.urls.mysqlUrl},${server().url}/${iso.database}_x_shard1` });
    expect(mixed.code).toBe(EXIT_CONFIG);
    expect(mixed.out).toContain(`shard 1: database ${iso.database}_x_shard1 on 127.0.0.1:${server().port} is ${foreignId}`);
    expect(mixed.out).toContain(`records ${recorded}`);

    // The right servers still start.
    const right = await startLedger(iso, { LEDGER_SHARD_URLS: shardUrls() });
    await right.close();
  }, 90_000);

  it('of two replicas starting together with shard 1 on different servers, exactly one serves', async () => {
    const env = { NATS_PREFIX: `${iso.natsPrefix}_race`, MYSQL_DATABASE: `${iso.database}_race` };
    const ports = await freePorts(2);
    const children = [
      spawnLedger(iso, ports[0] ?? 0, { ...env, LEDGER_SHARD_URLS: shardUrls() }),
      spawnLedger(iso, ports[1] ?? 0, { ...env, LEDGER_SHARD_URLS: `${iso.urls.mysqlUrl},${iso.urls.mysqlUrl}` }),
    ];
    try {
      const outcomes = await Promise.allSettled(children.map((child, i) => waitServing(`127.0.0.1:${ports[i]}`, child, 60_000)));
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
      const refused = children[outcomes.findIndex((o) => o.status === 'rejected')];
      await until('the other replica to exit', () => refused?.exitCode, (code) => code !== null && code !== undefined);
      expect(refused?.exitCode).toBe(EXIT_CONFIG);
    } finally {
      for (const child of children) child.kill('SIGKILL');
      await Promise.all(children.map(killed));
    }
  }, 90_000);

  it('gives a deployment from before shard identities its identities on the first start, then holds it to them', async () => {
    const env = { LEDGER_SHARD_URLS: shardUrls(), NATS_PREFIX: `${iso.natsPrefix}_old`, MYSQL_DATABASE: `${iso.database}_old` };
    const first = await startLedger(iso, env);
    const owner = ownersOn(first.parts, 1, 1, 700_000)[0] ?? '';
    await topUp(first.client, owner, 250, 'pay-old-1');
    // Back to how such a deployment looks: no shard_identity table (migration 0002 not applied), no identities in the map.
    for (const [url, database] of [
      [iso.urls.mysqlUrl, `${iso.database}_old_shard0`],
      [server().url, `${iso.database}_old_shard1`],
    ] as const) {
      await query(url, 'DROP TABLE shard_identity', [], database);
      await query(url, 'DELETE FROM schema_migrations WHERE version = 2', [], database);
    }
    await first.parts.mapStore.update((m) => {
      delete m.ledgerId;
      return { ...m, shards: m.shards.map(({ id, name }) => ({ id, name })) };
    });
    await first.close();

    const upgraded = await startLedger(iso, env);
    try {
      const map = (await upgraded.parts.mapStore.load())?.map;
      expect(map?.ledgerId).toMatch(/^[0-9a-f-]{36}$/);
      expect(map?.shards.every((s) => typeof s.uid === 'string' && s.uid.length === 36)).toBe(true);
      expect(upgraded.logs.lines.some((l) => l.msg === 'shard map had no ledger id (made before shard identities); recorded one')).toBe(true);
      expect(await balanceOf(upgraded.client, owner, Asset.ASSET_COIN)).toEqual({ amount: 250n, pending: 0n });
      // From now on a replica with shard 1 elsewhere is refused.
      const wrong = await ledgerProcess({ ...env, LEDGER_SHARD_URLS: `${iso.urls.mysqlUrl},${iso.urls.mysqlUrl}` });
      expect(wrong.code).toBe(EXIT_CONFIG);
      expect(wrong.out).toContain(`records ledger ${map?.ledgerId} shard 1 (database uid ${map?.shards[1]?.uid})`);
    } finally {
      await upgraded.close();
    }
  }, 90_000);

  it('adds a shard on a third server and fills it by moving a bucket to it, as the README says', async () => {
    third = await startMariaDb(gate);
    const urls = `${shardUrls()},${third.url}`;
    // Step 1: every replica gets the new server (a rollout: one replica at a time).
    await B().close();
    b = await startLedger(iso, { LEDGER_SHARD_URLS: urls });
    await A().close();
    a = await startLedger(iso, { LEDGER_SHARD_URLS: urls });
    const map = (await A().parts.mapStore.load())?.map;
    expect(map?.shards.map((s) => s.id)).toEqual([0, 1, 2]);
    expect(map?.shards[2]?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(map?.buckets.filter((x) => x.shard === 2)).toEqual([]);
    // A replica still configured with two shards cannot serve the third's buckets: it refuses.
    const stale = await ledgerProcess({ LEDGER_SHARD_URLS: shardUrls() });
    expect(stale.code).toBe(EXIT_CONFIG);
    expect(stale.out).toContain('the shard map has shard 2');

    // Step 2: move a bucket onto it, with money in it.
    const owner = ownersOn(A().parts, 0, 1, 800_000)[0] ?? '';
    const bucket = bucketOf(owner);
    await topUp(A().client, owner, 4_000, 'pay-third-1');
    const payee = ownersOn(A().parts, 1, 1, 810_000)[0] ?? '';
    await call(A().client.transfer, A().client, gift('third-1', owner, payee, '1000'), as(owner, 'viewer'));
    const cli = await runCli(['migrate-bucket', String(bucket), '2', '--request-id', 'third-server']);
    expect(cli.code, cli.out).toBe(0);
    expect(B().parts.router.view.shardOf(bucket)).toBe(2);
    expect(await rowsInBucket(third.url, `${iso.database}_shard2`, bucket)).toBeGreaterThan(0);
    expect(await rowsInBucket(iso.urls.mysqlUrl, `${iso.database}_shard0`, bucket)).toBe(0);
    expect((await balanceOf(B().client, owner, Asset.ASSET_COIN)).amount).toBe(3_000n);
    // It serves there: a replayed top-up is not minted again, a new one is.
    expect((await topUp(B().client, owner, 4_000, 'pay-third-1')).replayed).toBe(true);
    await topUp(B().client, owner, 500, 'pay-third-2');
    expect((await balanceOf(A().client, owner, Asset.ASSET_COIN)).amount).toBe(3_500n);
    await A().parts.applier.drain();
    const report = await call(A().client.checkInvariants, A().client, { assets: [] }, ADMIN());
    expect(report.violations).toEqual([]);
    expect(report.ok).toBe(true);
  }, 120_000);

  it('runs Room and Gift on a server of their own from the launcher settings, and a gift still goes through', async () => {
    const env = { ...iso.env, LOG_LEVEL: 'warn', ROOM_MYSQL_URL: server().url, GIFT_MYSQL_URL: server().url, LEDGER_SHARD_URLS: shardUrls() };
    mesh = await startMesh({ services: ['room', 'gift', 'ledger'], replicas: 1, bff: false, env });
    const rooms = roomApi(new RoomServiceClient(mesh.addresses('room')[0] ?? '', credentials.createInsecure()));
    const gifts = giftApi(new GiftServiceClient(mesh.addresses('gift')[0] ?? '', credentials.createInsecure()));
    const ledger = ledgerApi(new LedgerServiceClient(mesh.addresses('ledger')[0] ?? '', credentials.createInsecure()));
    const streamer = as('5900', 'streamer');
    const rose = (await gifts.upsertGift({ gift: { name: 'rose', priceMinor: '100', iconKey: 'icons/rose.png', effectKey: 'rose' } }, ADMIN())).gift;
    await gifts.upsertGiftGroup({ giftGroup: { name: 'standard', giftIds: [rose?.giftId ?? ''], isDefault: true } }, ADMIN());
    const roomId = (await rooms.createRoom({ title: 'own servers', requestId: 'srv-room' }, streamer)).room?.roomId ?? '';
    await rooms.startLive({ roomId }, streamer);
    await ledger.topUp({ ownerId: '5901', amountMinor: '1000', paymentReference: 'srv-topup', provider: 'test' }, ADMIN());
    const sent = await gifts.sendGift({ roomId, giftId: rose?.giftId ?? '', count: 3, idempotencyKey: 'srv-gift', senderName: 'viewer' }, as('5901', 'viewer'));
    expect([OrderState.ORDER_STATE_PAID, OrderState.ORDER_STATE_DONE]).toContain(sent.order?.state);
    expect(sent.senderBalance?.amountMinor).toBe('700');
    await until('the streamer credited', () => ledgerBalance(ledger, '5900', Asset.ASSET_INCOME), (v) => v.amount === 300n);

    // Room's and Gift's tables are on the private server, not on MYSQL_URL's.
    const [order] = await query<{ n: number }>(server().url, 'SELECT COUNT(*) AS n FROM orders', [], `${iso.database}_gift`);
    expect(Number(order?.n)).toBe(1);
    const [room] = await query<{ n: number }>(server().url, 'SELECT COUNT(*) AS n FROM rooms', [], `${iso.database}_room`);
    expect(Number(room?.n)).toBe(1);
    const onMachine = await databasesOn(iso.urls.mysqlUrl);
    expect(onMachine).not.toContain(`${iso.database}_gift`);
    expect(onMachine).not.toContain(`${iso.database}_room`);
    expect(onMachine).toContain(`${iso.database}_ledger_shard0`);
    expect(await databasesOn(server().url)).toContain(`${iso.database}_ledger_shard1`);
  }, 120_000);
});

describe('npm start with a MySQL server per service', () => {
  it('stops before starting anything when a per-service server does not answer, naming the setting', async () => {
    const [closed] = await freePorts(1);
    const offset = 11_000 + Math.round(Math.random() * 330) * 10;
    const res = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, [fromRoot('dist', 'scripts', 'start.js')], {
        env: { ...process.env, ...iso.env, LM_PORT_OFFSET: String(offset), HOST: '127.0.0.1', GIFT_MYSQL_URL: `mysql://root:secret@127.0.0.1:${closed}` },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      child.once('exit', (code) => resolve({ code, out }));
    });
    expect(res.code).toBe(1);
    expect(res.out).toContain(`MySQL not reachable: GIFT_MYSQL_URL=mysql://root:***@127.0.0.1:${closed}`);
    expect(res.out).not.toContain('secret');
    expect(res.out).not.toMatch(/^ready /m);
  }, 60_000);
});

describe('LEDGER_SHARD_URLS settings', () => {
  const parse = async (env: Record<string, string>) => {
    const { ledgerConfigShape, shardPlaces } = await import('../services/ledger/service.js');
    return shardPlaces(parseConfig({ ...kitConfigShape, ...ledgerConfigShape }, { MYSQL_URL: 'mysql://root@db-main:3306', ...env }));
  };

  it('puts shard N on the Nth URL, the database from its path or <base>_shard<N>; empty keeps every shard on MYSQL_URL', async () => {
    const { places } = await parse({ MYSQL_DATABASE: 'lm_ledger', LEDGER_SHARD_URLS: 'mysql://u:p@db-a:3306, mariadb://u:p@db-b:3307/own_name' });
    expect(places).toEqual([
      { id: 0, url: 'mysql://u:p@db-a:3306', database: 'lm_ledger_shard0' },
      { id: 1, url: 'mariadb://u:p@db-b:3307/own_name', database: 'own_name' },
    ]);
    expect((await parse({ LEDGER_SHARDS: '3' })).places.map((p) => `${p.url} ${p.database}`)).toEqual([0, 1, 2].map((i) => `mysql://root@db-main:3306 livemesh_ledger_shard${i}`));
  });

  it('refuses contradictions with a line naming the settings', async () => {
    await expect(parse({ LEDGER_SHARD_URLS: 'http://db-a:3306' })).rejects.toThrow(/LEDGER_SHARD_URLS must be a comma-separated list of URLs starting with mysql:\/\/ or mariadb:\/\//);
    await expect(parse({ LEDGER_SHARDS: '3', LEDGER_SHARD_URLS: 'mysql://db-a,mysql://db-b' })).rejects.toThrow(/LEDGER_SHARDS is 3 but LEDGER_SHARD_URLS lists 2 servers/);
    await expect(parse({ LEDGER_SHARD_URLS: 'mysql://db-a/same,mysql://db-a:3306/same' })).rejects.toThrow(/puts shards 0 and 1 in the same database same on db-a:3306/);
    await expect(parse({ LEDGER_SHARD_URLS: 'mysql://db-a/bad-name' })).rejects.toThrow(ConfigError);
  });
});
