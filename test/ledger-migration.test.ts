import { spawn } from 'node:child_process';
import { status as Code, type ServiceError } from '@grpc/grpc-js';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Asset } from '../gen/ts/livemesh/common/v1/common.js';
import { BucketState, type LedgerServiceClient } from '../gen/ts/livemesh/ledger/v1/ledger.js';
import { errorInfoOf } from '../kit/grpc-errors.js';
import { mysqlOptions } from '../kit/mysql.js';
import { fromRoot } from '../kit/paths.js';
import { bucketOf } from '../services/ledger/buckets.js';
import { isolate } from '../scripts/isolation.js';
import { ADMIN, as, balanceOf, call, failure, gift, ownersInBucket, ownersOn, startLedger, topUp, type LedgerServer } from './support/ledger.js';

/**
 * Two replicas share the shard databases and the map. Transfers into, out of and within one
 * bucket run through both while `npm run ledger -- migrate-bucket` moves that bucket to the other
 * shard; afterwards every transfer exists exactly once, every balance is what the callers'
 * own bookkeeping says, no caller saw an error, and the invariants hold.
 */
const iso = isolate('ledgermig');
let a: LedgerServer;
let b: LedgerServer;

beforeAll(async () => {
  a = await startLedger(iso);
  b = await startLedger(iso);
});

afterAll(async () => {
  await b?.close();
  await a?.close();
  await iso.cleanup();
});

function runCli(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [fromRoot('dist', 'services', 'ledger', 'cli.js'), ...args, '--address', a.address], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.once('exit', (code) => resolve({ code, out }));
  });
}

async function rowsInBucket(database: string, bucket: number): Promise<number> {
  const conn = await mysql.createConnection(mysqlOptions(iso.urls.mysqlUrl, database));
  try {
    let n = 0;
    for (const t of ['accounts', 'transfers', 'entries', 'outbox', 'daily_income']) {
      const [rows] = await conn.query(`SELECT COUNT(*) AS n FROM ${t} WHERE bucket = ?`, [bucket]);
      n += Number((rows as Array<{ n: number }>)[0]?.n);
    }
    return n;
  } finally {
    await conn.end();
  }
}

describe('online bucket migration under concurrent transfers', () => {
  it('refuses migrations that make no sense', async () => {
    const bucket = bucketOf(ownersOn(a.parts, 0, 1)[0]!);
    const same = await failure(call(a.client.migrateBucket, a.client, { bucket, targetShardId: 0, requestId: 'same' }, ADMIN()));
    expect(same.code).toBe(Code.FAILED_PRECONDITION);
    expect(errorInfoOf(same.metadata)?.reason).toBe('BUCKET_ALREADY_ON_SHARD');
    const missing = await failure(call(a.client.migrateBucket, a.client, { bucket, targetShardId: 9, requestId: 'nine' }, ADMIN()));
    expect(errorInfoOf(missing.metadata)?.reason).toBe('SHARD_NOT_FOUND');
    const bad = await failure(call(a.client.migrateBucket, a.client, { bucket: 256, targetShardId: 1, requestId: 'x' }, ADMIN()));
    expect(bad.code).toBe(Code.INVALID_ARGUMENT);
    const viewer = await failure(call(a.client.migrateBucket, a.client, { bucket, targetShardId: 1, requestId: 'v' }, as('5', 'viewer')));
    expect(viewer.code).toBe(Code.PERMISSION_DENIED);
  });

  it('moves a bucket with nothing lost or duplicated and no caller error', async () => {
    const bucket = bucketOf(ownersOn(a.parts, 0, 1, 50_000)[0]!);
    const inside = ownersInBucket(bucket, 8, 300_000);
    const elsewhere = [...ownersOn(a.parts, 0, 4, 400_000), ...ownersOn(a.parts, 1, 4, 410_000)].filter((o) => bucketOf(o) !== bucket);
    const payers = [...inside.slice(0, 4), ...elsewhere.slice(0, 4)];
    const payees = [...inside.slice(4), ...elsewhere.slice(4)];
    await Promise.all(payers.map((p) => topUp(a.client, p, 1_000_000)));

    const spent = new Map<string, bigint>();
    const received = new Map<string, bigint>();
    const errors: ServiceError[] = [];
    const ids: string[] = [];
    let maxLatencyMs = 0;
    let stop = false;
    let n = 0;
    const worker = async (w: number) => {
      while (!stop) {
        const i = n++;
        const payer = payers[i % payers.length]!;
        const payee = payees[(i * 7 + w) % payees.length]!;
        const amount = BigInt(1 + (i % 9));
        const id = `mig-${i}`;
        const client: LedgerServiceClient = i % 2 === 0 ? a.client : b.client;
        const started = Date.now();
        try {
          const res = await call(client.transfer, client, gift(id, payer, payee, String(amount)), as(payer, 'viewer'));
          // Every tenth transfer is retried through the other replica: it must replay, not debit again.
          if (i % 10 === 0) {
            const other = client === a.client ? b.client : a.client;
            const again = await call(other.transfer, other, gift(id, payer, payee, String(amount)), as(payer, 'viewer'));
            expect(again.replayed).toBe(true);
            expect(again.transfer?.createTime).toEqual(res.transfer?.createTime);
          }
          spent.set(payer, (spent.get(payer) ?? 0n) + amount);
          received.set(payee, (received.get(payee) ?? 0n) + amount);
          ids.push(id);
        } catch (err) {
          errors.push(err as ServiceError);
        }
        maxLatencyMs = Math.max(maxLatencyMs, Date.now() - started);
      }
    };
    const load = Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)));
    await new Promise((r) => setTimeout(r, 300));
    const cli = await runCli(['migrate-bucket', String(bucket), '1', '--request-id', 'move-it']);
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await load;

    expect(cli.out).toMatch(/DONE: \d+ rows copied, writes held \d+ ms/);
    expect(cli.code).toBe(0);
    expect(errors.map((e) => `${e.code} ${e.details}`)).toEqual([]);
    expect(ids.length).toBeGreaterThan(50);
    // A retried request id re-attaches to the same migration.
    const map = await call(a.client.getShardMap, a.client, {}, ADMIN());
    expect(map.shardMap?.buckets[bucket]).toMatchObject({ shardId: 1, state: BucketState.BUCKET_STATE_SERVING });
    expect(b.parts.router.view.shardOf(bucket)).toBe(1);
    const migrations = await a.parts.mapStore.keys('migration.*');
    expect(migrations).toHaveLength(1);
    const record = await call(a.client.getMigration, a.client, { migrationId: migrations[0]!.slice('migration.'.length) }, ADMIN());
    expect(Number(record.migration?.fenceDuration?.seconds ?? 99)).toBeLessThan(10);
    const done = a.logs.lines.find((l) => l.msg === 'migration: done');
    console.log(`migration: ${ids.length} transfers, max call latency ${maxLatencyMs} ms, ${JSON.stringify(done)}`);

    await a.parts.applier.drain();
    for (const p of payers) expect((await balanceOf(a.client, p, Asset.ASSET_COIN)).amount).toBe(1_000_000n - (spent.get(p) ?? 0n));
    for (const p of payees) expect(await balanceOf(b.client, p, Asset.ASSET_INCOME)).toEqual({ amount: received.get(p) ?? 0n, pending: 0n });
    const inBucket = payers.filter((p) => bucketOf(p) === bucket);
    for (const p of inBucket) {
      const seen: string[] = [];
      let token = '';
      do {
        const page = await call(
          b.client.listTransfers,
          b.client,
          { account: { ownerId: p, asset: Asset.ASSET_COIN }, page: { pageSize: 200, pageToken: token }, kinds: [], startTime: undefined, endTime: undefined },
          ADMIN(),
        );
        seen.push(...page.transfers.map((t) => t.transferId).filter((t) => t.startsWith('mig-')));
        token = page.page?.nextPageToken ?? '';
      } while (token);
      expect(new Set(seen).size).toBe(seen.length);
      expect(seen.length).toBe(ids.filter((id) => payers[Number(id.slice(4)) % payers.length] === p).length);
    }
    const report = await call(a.client.checkInvariants, a.client, { assets: [] }, ADMIN());
    expect(report.violations).toEqual([]);
    expect(report.ok).toBe(true);
    expect(await rowsInBucket(a.parts.shards.get(0)!.database, bucket)).toBe(0);
    expect(await rowsInBucket(a.parts.shards.get(1)!.database, bucket)).toBeGreaterThan(0);
    const again = await runCli(['migrate-bucket', String(bucket), '1', '--request-id', 'move-it']);
    expect(again.code).toBe(0);
  });
});
