import { describe, expect, it } from 'vitest';
import { quoteIdent } from '../kit/mysql.js';
import { runChaos, formatResult, type ChaosResult } from '../scripts/chaos/run.js';
import type { Check } from '../scripts/chaos/invariants.js';

/**
 * `npm run chaos` in small: the whole mesh as processes (two replicas each, on private Redis and
 * NATS and a cuttable MySQL proxy) under load while a replica is SIGKILLed, MySQL connections are
 * killed, NATS restarts and MySQL is cut off; then the same invariants as the full run. Afterwards
 * the ledger is broken on purpose, and the checks must say so.
 */
describe('chaos smoke', () => {
  it('keeps every invariant through a replica kill, a MySQL connection kill, a NATS restart and a MySQL cut, and the checks catch a broken ledger', async () => {
    const lines: string[] = [];
    let broken: { balance: Check[]; doubled: Check[] } | undefined;
    const result: ChaosResult = await runChaos({
      durationMs: 5_000,
      seed: 42,
      rates: { gifts: 8, chat: 4, roomReads: 15, bffReads: 4 },
      faultGapMs: [800, 1200],
      faults: ['kill-replica', 'mysql-kill-connections', 'nats-restart', 'mysql-cut'],
      rooms: 3,
      viewers: 20,
      settleTimeoutMs: 60_000,
      log: (line) => lines.push(line),
      beforeCleanup: async ({ admin: conn, database, recheck }) => {
        const [shards] = await conn.query('SELECT schema_name AS name FROM information_schema.schemata WHERE schema_name LIKE ? ORDER BY schema_name', [`${database.replace(/_/g, '\\_')}\\_ledger\\_shard%`]);
        const shard = quoteIdent((shards as Array<{ name: string }>)[0]!.name);
        // One minor unit appears from nowhere in a viewer's wallet.
        const [res] = await conn.query(`UPDATE ${shard}.accounts SET balance = balance + 1 WHERE owner_id >= 110000 AND asset = 1 ORDER BY owner_id LIMIT 1`);
        expect((res as { affectedRows: number }).affectedRows).toBe(1);
        const balance = await recheck();
        await conn.query(`UPDATE ${shard}.accounts SET balance = balance - 1 WHERE owner_id >= 110000 AND asset = 1 ORDER BY owner_id LIMIT 1`);
        // A gift's debit written a second time, with its balance, as a double charge would be.
        const [debits] = await conn.query(`SELECT bucket, owner_id, asset, transfer_id, amount FROM ${shard}.entries WHERE side = 1 AND transfer_id LIKE 'gift:%' LIMIT 1`);
        const d = (debits as Array<{ bucket: number; owner_id: string; asset: number; transfer_id: string; amount: string }>)[0]!;
        await conn.query(
          `INSERT INTO ${shard}.entries (bucket, owner_id, asset, created_at, home_owner_id, transfer_id, side, kind, amount, balance_after, payer_owner_id, payer_asset, payer_bucket, payee_owner_id, payee_asset, payee_bucket, debit_balance_after, reference, created_by, applied_at, day)
           SELECT bucket, owner_id, asset, created_at + INTERVAL 1 SECOND, home_owner_id, transfer_id, side, kind, amount, balance_after, payer_owner_id, payer_asset, payer_bucket, payee_owner_id, payee_asset, payee_bucket, debit_balance_after, reference, created_by, applied_at, day
           FROM ${shard}.entries WHERE side = 1 AND transfer_id = ? LIMIT 1`,
          [d.transfer_id],
        );
        await conn.query(`UPDATE ${shard}.accounts SET balance = balance - ? WHERE bucket = ? AND owner_id = ? AND asset = ?`, [d.amount, d.bucket, d.owner_id, d.asset]);
        broken = { balance, doubled: await recheck() };
      },
    });
    const report = formatResult(result).join('\n');
    const verdict = (checks: Check[], name: string) => checks.find((c) => c.name === name)?.holds;

    expect(result.faults.map((f) => f.fault.kind), report).toEqual(['kill-replica', 'mysql-kill-connections', 'nats-restart', 'mysql-cut']);
    expect(result.load.gifts.ok, report).toBeGreaterThan(0);
    for (const check of result.checks) expect({ check: check.name, holds: check.holds, violations: check.violations }, report).toEqual({ check: check.name, holds: true, violations: [] });
    expect(result.ok).toBe(true);

    expect(verdict(broken!.balance, 'money conservation per asset')).toBe(false);
    expect(verdict(broken!.balance, 'every order DONE or FAILED, money moved exactly when DONE')).toBe(false);
    expect(verdict(broken!.balance, "the Ledger's CheckInvariants agrees")).toBe(false);
    expect(verdict(broken!.doubled, 'no transfer debited twice')).toBe(false);
    expect(verdict(broken!.doubled, 'every order DONE or FAILED, money moved exactly when DONE')).toBe(false);
  }, 240_000);
});
