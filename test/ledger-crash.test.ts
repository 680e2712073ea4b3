import type { ChildProcess } from 'node:child_process';
import { credentials } from '@grpc/grpc-js';
import mysql from 'mysql2/promise';
import { afterAll, describe, expect, it } from 'vitest';
import { Asset } from '../gen/ts/livemesh/common/v1/common.js';
import { LedgerServiceClient } from '../gen/ts/livemesh/ledger/v1/ledger.js';
import { mysqlOptions } from '../kit/mysql.js';
import { bucketOf, BUCKET_COUNT } from '../services/ledger/buckets.js';
import { isolate } from '../scripts/isolation.js';
import { freePorts } from '../scripts/net.js';
import { ADMIN, as, balanceOf, call, gift, killed, spawnLedger, topUp, waitServing } from './support/ledger.js';

/**
 * The Ledger as a real process, killed with SIGKILL at the two moments that matter: while
 * transfers are in flight, and (through the applier's fault hook) between a cross-shard credit's
 * commit on the payee's shard and its settlement on the payer's. Money must come out exact.
 */
const iso = isolate('ledgercrash');
const children: ChildProcess[] = [];
let port = 0;
let address = '';

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.all(children.map(killed));
  await iso.cleanup();
});

async function start(env: Record<string, string> = {}, serving = true): Promise<{ child: ChildProcess; client: LedgerServiceClient }> {
  if (!port) {
    [port] = (await freePorts(1)) as [number];
    address = `127.0.0.1:${port}`;
  }
  const child = spawnLedger(iso, port, env);
  children.push(child);
  if (serving) await waitServing(address, child);
  return { child, client: new LedgerServiceClient(address, credentials.createInsecure()) };
}

async function stop(p: { child: ChildProcess; client: LedgerServiceClient }, signal: NodeJS.Signals): Promise<void> {
  p.client.close();
  p.child.kill(signal);
  await killed(p.child);
}

/** Owners whose buckets are dealt to `shard` by the default map (bucket mod 2). */
function ownersOnShard(shard: number, count: number, from: number): string[] {
  const out: string[] = [];
  for (let id = from; out.length < count; id++) if (bucketOf(String(id)) % 2 === shard && BUCKET_COUNT === 256) out.push(String(id));
  return out;
}

async function waitNoPending(client: LedgerServiceClient, owners: string[]): Promise<void> {
  for (;;) {
    const pending = await Promise.all(owners.map((o) => balanceOf(client, o, Asset.ASSET_INCOME).then((b) => b.pending)));
    if (pending.every((p) => p === 0n)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const payers = ownersOnShard(0, 4, 10_000);
const payees = ownersOnShard(1, 4, 20_000);
const amountOf = (i: number) => BigInt(1 + (i % 5));

describe('the Ledger process killed mid-flight', () => {
  it('a transfer retried after SIGKILL and restart is debited exactly once', async () => {
    let p = await start();
    await Promise.all(payers.map((o) => topUp(p.client, o, 100_000)));
    const total = 400;
    const send = (i: number) =>
      call(p.client.transfer, p.client, gift(`crash-${i}`, payers[i % 4]!, payees[i % 4]!, String(amountOf(i))), as(payers[i % 4]!, 'viewer'));
    const firstHundred = await Promise.all(Array.from({ length: 100 }, (_, i) => send(i)));
    expect(firstHundred.every((r) => !r.replayed)).toBe(true);

    // Hold back every outbox insert on the payers' shard (a next-key lock up to the end of the
    // index), so the next transfers stop inside their transactions, debited but not committed.
    const shard0 = `${iso.database}_shard0`;
    const blocker = await mysql.createConnection(mysqlOptions(iso.urls.mysqlUrl, shard0));
    let rest: Promise<PromiseSettledResult<unknown>[]>;
    try {
      await blocker.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      await blocker.query('START TRANSACTION');
      await blocker.query('SELECT COUNT(*) FROM outbox FOR UPDATE');
      rest = Promise.allSettled(Array.from({ length: total - 100 }, (_, k) => send(100 + k)));
      // Wait until a transfer transaction is parked on that lock: its debits are done, its commit is not.
      const watcher = await mysql.createConnection(mysqlOptions(iso.urls.mysqlUrl));
      try {
        for (;;) {
          const [rows] = await watcher.query(
            "SELECT COUNT(*) AS n FROM information_schema.processlist WHERE db = ? AND command = 'Query' AND info LIKE 'INSERT INTO outbox%'",
            [shard0],
          );
          if (Number((rows as Array<{ n: number }>)[0]?.n) > 0) break;
          await new Promise((r) => setTimeout(r, 20));
        }
      } finally {
        await watcher.end();
      }
      p.child.kill('SIGKILL');
      await killed(p.child);
    } finally {
      await blocker.end();
    }
    const cut = await rest;
    expect(cut.every((r) => r.status === 'rejected')).toBe(true);
    const before = [...firstHundred.map(() => true), ...cut.map(() => false)];

    p = await start();
    const retried = await Promise.all(
      Array.from({ length: total }, (_, i) => call(p.client.transfer, p.client, gift(`crash-${i}`, payers[i % 4]!, payees[i % 4]!, String(amountOf(i))), as(payers[i % 4]!, 'viewer'))),
    );
    // Whatever answered before the kill is a replay now; the rest may or may not have committed.
    retried.forEach((r, i) => {
      if (before[i]) expect(r.replayed).toBe(true);
    });
    for (const [k, owner] of payers.entries()) {
      let spent = 0n;
      for (let i = k; i < total; i += 4) spent += amountOf(i);
      expect((await balanceOf(p.client, owner, Asset.ASSET_COIN)).amount).toBe(100_000n - spent);
    }
    await waitNoPending(p.client, payees);
    const report = await call(p.client.checkInvariants, p.client, { assets: [] }, ADMIN());
    expect(report.violations).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.transfersChecked).toBe(String(total + payers.length));
    await stop(p, 'SIGTERM');
  });

  it('cross-shard credits arrive exactly once when the applier dies between the two shards', async () => {
    // Credits pile up in the outbox while no applier runs.
    let p = await start({ LEDGER_APPLIER: '0' });
    const before = await Promise.all(payees.map((o) => balanceOf(p.client, o, Asset.ASSET_INCOME).then((b) => b.amount)));
    const count = 200;
    await Promise.all(
      Array.from({ length: count }, (_, i) => call(p.client.transfer, p.client, gift(`late-${i}`, payers[i % 4]!, payees[i % 4]!, String(amountOf(i))), as(payers[i % 4]!, 'viewer'))),
    );
    const expected = payees.map((_, k) => {
      let sum = before[k]!;
      for (let i = k; i < count; i += 4) sum += amountOf(i);
      return sum;
    });
    expect((await balanceOf(p.client, payees[0]!, Asset.ASSET_INCOME)).pending).toBeGreaterThan(0n);
    await stop(p, 'SIGTERM');

    // This one applies a batch on the payees' shard and kills itself before settling it.
    p = await start({ LEDGER_FAULT_KILL_AFTER_CREDIT_COMMIT: '1', LEDGER_APPLIER_BATCH: '50' }, false);
    await killed(p.child);
    p.client.close();
    expect(p.child.signalCode).toBe('SIGKILL');
    const conn = await mysql.createConnection(mysqlOptions(iso.urls.mysqlUrl));
    const [rows] = await conn.query(
      `SELECT COUNT(*) AS n FROM \`${iso.database}_shard0\`.outbox o JOIN \`${iso.database}_shard1\`.entries e ` +
        'ON e.home_owner_id = o.home_owner_id AND e.transfer_id = o.transfer_id AND e.side = 2',
    );
    await conn.end();
    // The dangerous state is real: credits applied on the payees' shard, still in the payers' outbox.
    expect(Number((rows as Array<{ n: number }>)[0]?.n)).toBe(50);

    p = await start();
    await waitNoPending(p.client, payees);
    for (const [k, owner] of payees.entries()) expect((await balanceOf(p.client, owner, Asset.ASSET_INCOME)).amount).toBe(expected[k]);
    const report = await call(p.client.checkInvariants, p.client, { assets: [] }, ADMIN());
    expect(report.violations).toEqual([]);
    expect(report.ok).toBe(true);
    await stop(p, 'SIGTERM');
  });
});
