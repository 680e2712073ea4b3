import { status as Code, type ServiceError } from '@grpc/grpc-js';
import mysql from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { Asset } from '../gen/ts/livemesh/common/v1/common.js';
import { TransferKind, TransferStatus } from '../gen/ts/livemesh/ledger/v1/ledger.js';
import { badRequestOf, errorInfoOf } from '../kit/grpc-errors.js';
import { mysqlOptions } from '../kit/mysql.js';
import { bucketOf } from '../services/ledger/buckets.js';
import { dayOf } from '../services/ledger/days.js';
import { ADMIN, as, balanceOf, call, failure, gift, ownersOn, topUp, useLedgerServer } from './support/ledger.js';

const server = useLedgerServer('ledgerapi');
const client = () => server.current.client;
const parts = () => server.current.parts;
const transfer = (req: ReturnType<typeof gift>, md = ADMIN()) => call(client().transfer, client(), req, md);

/** Expects INVALID_ARGUMENT whose ErrorInfo and BadRequest name `field`. */
function expectBadField(err: ServiceError, field: string, reason = 'FIELD_INVALID') {
  expect(err.code, err.details).toBe(Code.INVALID_ARGUMENT);
  const info = errorInfoOf(err.metadata);
  expect(info?.reason).toBe(reason);
  expect(info?.metadata.field).toBe(field);
  expect(err.details.startsWith(`${field}:`)).toBe(true);
  if (reason === 'FIELD_INVALID') expect(badRequestOf(err.metadata)?.fieldViolations.map((v) => v.field)).toContain(field);
}

describe('Ledger API: validation, idempotency, funds, credits, statistics', () => {
  it('rejects bad input with INVALID_ARGUMENT naming the field, before anything is written', async () => {
    const [payer, payee] = ownersOn(parts(), 0, 2, 1000);
    const ok = gift('bad-input', payer!, payee!, 5);
    expectBadField(await failure(transfer({ ...ok, amountMinor: '0' })), 'amount_minor');
    expectBadField(await failure(transfer({ ...ok, amountMinor: '-5' })), 'amount_minor');
    expectBadField(await failure(transfer({ ...ok, amountMinor: '1000000000001' })), 'amount_minor');
    expectBadField(await failure(transfer({ ...ok, amountMinor: '9223372036854775807' })), 'amount_minor');
    expectBadField(await failure(transfer({ ...ok, payee: { ownerId: payee!, asset: 7 as Asset } })), 'payee.asset');
    expectBadField(await failure(transfer({ ...ok, payer: { ownerId: payer!, asset: Asset.ASSET_UNSPECIFIED } })), 'payer.asset');
    expectBadField(await failure(transfer({ ...ok, payee: ok.payer })), 'payee');
    expectBadField(await failure(transfer({ ...ok, transferId: 'x'.repeat(65) })), 'transfer_id');
    expectBadField(await failure(transfer({ ...ok, transferId: '' })), 'transfer_id');
    expectBadField(await failure(transfer({ ...ok, transferId: 'topup:mine' })), 'transfer_id');
    expectBadField(await failure(transfer({ ...ok, kind: TransferKind.TRANSFER_KIND_UNSPECIFIED })), 'kind');
    expectBadField(await failure(transfer({ ...ok, payer: undefined })), 'payer');
    expectBadField(
      await failure(transfer({ ...ok, kind: TransferKind.TRANSFER_KIND_EXP_GRANT, payer: { ownerId: payer!, asset: Asset.ASSET_EXP }, payee: { ownerId: payee!, asset: Asset.ASSET_EXP } })),
      'payer',
      'ACCOUNTS_NOT_ALLOWED',
    );
    expectBadField(await failure(topUp(client(), payer!, 10, 'bad ref with spaces')), 'payment_reference');
    // Nothing was written: the payer still has no COIN and the id is unused.
    expect((await balanceOf(client(), payer!, Asset.ASSET_COIN)).amount).toBe(0n);
    const notFound = await failure(call(client().getTransfer, client(), { transferId: 'bad-input', homeOwnerId: payer! }, ADMIN()));
    expect(notFound.code).toBe(Code.NOT_FOUND);
    expect(errorInfoOf(notFound.metadata)).toMatchObject({ reason: 'TRANSFER_NOT_FOUND', domain: 'livemesh.ledger' });
  });

  it('TopUp mints once per payment reference; the same reference with other fields is refused', async () => {
    const [owner, other] = ownersOn(parts(), 1, 2, 2000);
    const first = await topUp(client(), owner!, 500, 'psp-123');
    expect(first.replayed).toBe(false);
    expect(first.balance?.amountMinor).toBe('500');
    expect(first.transfer).toMatchObject({ transferId: 'topup:psp-123', kind: TransferKind.TRANSFER_KIND_TOP_UP, status: TransferStatus.TRANSFER_STATUS_SETTLED });
    const again = await topUp(client(), owner!, 500, 'psp-123');
    expect(again.replayed).toBe(true);
    expect(again.transfer).toEqual(first.transfer);
    expect(again.balance?.amountMinor).toBe('500');
    for (const err of [await failure(topUp(client(), owner!, 501, 'psp-123')), await failure(topUp(client(), other!, 500, 'psp-123'))]) {
      expect(err.code).toBe(Code.ALREADY_EXISTS);
      expect(errorInfoOf(err.metadata)).toMatchObject({ reason: 'IDEMPOTENCY_KEY_REUSED', metadata: { field: 'payment_reference' } });
    }
    expect((await balanceOf(client(), owner!, Asset.ASSET_COIN)).amount).toBe(500n);
    const viewer = await failure(call(client().topUp, client(), { ownerId: owner!, amountMinor: '1', paymentReference: 'self-mint', provider: '' }, as(owner!, 'viewer')));
    expect(viewer.code).toBe(Code.PERMISSION_DENIED);
  });

  it('1,000 concurrent debits from a wallet that affords 300: exactly 300 succeed, never below zero', async () => {
    const [payer] = ownersOn(parts(), 0, 1, 3000);
    const payees = ownersOn(parts(), 1, 10, 3100);
    await topUp(client(), payer!, 300);
    const results = await Promise.allSettled(
      Array.from({ length: 1000 }, (_, i) => transfer(gift(`race-${i}`, payer!, payees[i % payees.length]!, 1), as(payer!, 'viewer'))),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as ServiceError);
    expect(ok.length).toBe(300);
    expect(failed.length).toBe(700);
    for (const err of failed) {
      expect(err.code).toBe(Code.FAILED_PRECONDITION);
      expect(errorInfoOf(err.metadata)?.reason).toBe('INSUFFICIENT_FUNDS');
    }
    const afters = ok.map((r) => BigInt(r.value.payerBalance?.amountMinor ?? '-1'));
    expect(afters.every((b) => b >= 0n)).toBe(true);
    // Every balance from 299 down to 0 was seen exactly once: the debits were serialized, not lost.
    expect(new Set(afters.map(String)).size).toBe(300);
    expect((await balanceOf(client(), payer!, Asset.ASSET_COIN)).amount).toBe(0n);
    await parts().applier.drain();
    let received = 0n;
    for (const p of payees) received += (await balanceOf(client(), p, Asset.ASSET_INCOME)).amount;
    expect(received).toBe(300n);
  });

  it('a retried Transfer returns the original; the same id with other fields is ALREADY_EXISTS', async () => {
    const [payer] = ownersOn(parts(), 0, 1, 4000);
    const [payee] = ownersOn(parts(), 0, 1, 4100);
    await topUp(client(), payer!, 100);
    const first = await transfer(gift('gift:order-1', payer!, payee!, 40), as(payer!, 'viewer'));
    expect(first.replayed).toBe(false);
    expect(first.payerBalance?.amountMinor).toBe('60');
    const retry = await transfer(gift('gift:order-1', payer!, payee!, 40), as(payer!, 'viewer'));
    expect(retry.replayed).toBe(true);
    expect(retry.transfer?.createTime).toEqual(first.transfer?.createTime);
    expect(retry.payerBalance?.amountMinor).toBe('60');
    const reused = await failure(transfer(gift('gift:order-1', payer!, payee!, 41), as(payer!, 'viewer')));
    expect(reused.code).toBe(Code.ALREADY_EXISTS);
    expect(errorInfoOf(reused.metadata)).toMatchObject({ reason: 'IDEMPOTENCY_KEY_REUSED', metadata: { field: 'transfer_id' } });
    expect((await balanceOf(client(), payer!, Asset.ASSET_COIN)).amount).toBe(60n);
    const stranger = await failure(transfer(gift('not-mine', payer!, payee!, 1), as(payee!, 'viewer')));
    expect(stranger.code).toBe(Code.PERMISSION_DENIED);
    expect(errorInfoOf(stranger.metadata)?.reason).toBe('NOT_ACCOUNT_OWNER');
  });

  it('a cross-shard gift is debited at once and credited through the outbox, then listed on both accounts', async () => {
    const [payer] = ownersOn(parts(), 0, 1, 5000);
    const [payee] = ownersOn(parts(), 1, 1, 5100);
    await topUp(client(), payer!, 1000);
    for (let i = 0; i < 5; i++) await transfer(gift(`x-${i}`, payer!, payee!, 10 + i), as(payer!, 'viewer'));
    await parts().applier.drain();
    expect(await balanceOf(client(), payee!, Asset.ASSET_INCOME)).toEqual({ amount: 60n, pending: 0n });
    const { transfer: t } = await call(client().getTransfer, client(), { transferId: 'x-4', homeOwnerId: payer! }, as(payee!, 'streamer'));
    expect(t?.status).toBe(TransferStatus.TRANSFER_STATUS_SETTLED);
    expect(t?.entries.map((e) => [e.account?.ownerId, e.amountMinor, e.balanceAfterMinor, e.bucket])).toEqual([
      [payer, '14', '940', bucketOf(payer!)],
      [payee, '14', '60', bucketOf(payee!)],
    ]);
    // The payee's history comes from the payee's shard, newest first, in pages.
    const page1 = await call(client().listTransfers, client(), { account: { ownerId: payee!, asset: Asset.ASSET_INCOME }, page: { pageSize: 3, pageToken: '' }, kinds: [], startTime: undefined, endTime: undefined }, as(payee!, 'streamer'));
    expect(page1.transfers.map((x) => x.transferId)).toEqual(['x-4', 'x-3', 'x-2']);
    const page2 = await call(
      client().listTransfers,
      client(),
      { account: { ownerId: payee!, asset: Asset.ASSET_INCOME }, page: { pageSize: 3, pageToken: page1.page!.nextPageToken }, kinds: [], startTime: undefined, endTime: undefined },
      as(payee!, 'streamer'),
    );
    expect(page2.transfers.map((x) => x.transferId)).toEqual(['x-1', 'x-0']);
    expect(page2.page?.nextPageToken).toBe('');
    const payerSide = await call(client().listTransfers, client(), { account: { ownerId: payer!, asset: Asset.ASSET_COIN }, page: undefined, kinds: [TransferKind.TRANSFER_KIND_GIFT], startTime: undefined, endTime: undefined }, as(payer!, 'viewer'));
    expect(payerSide.transfers).toHaveLength(5);
    expect(payerSide.transfers.every((x) => x.status === TransferStatus.TRANSFER_STATUS_SETTLED)).toBe(true);
  });

  it('credits to one hot payee are aggregated: many transfers, few balance updates, every transfer recorded', async () => {
    const payers = ownersOn(parts(), 0, 40, 6000);
    const [star] = ownersOn(parts(), 1, 1, 6500);
    await Promise.all(payers.map((p) => topUp(client(), p, 100)));
    // The applier is running; aggregation shows as soon as credits arrive faster than one per cycle.
    const before = { ...parts().applier.stats };
    await Promise.all(payers.flatMap((p) => Array.from({ length: 5 }, (_, i) => transfer(gift(`hot-${p}-${i}`, p, star!, 3), as(p, 'viewer')))));
    await parts().applier.drain();
    const credits = parts().applier.stats.credits - before.credits;
    const updates = parts().applier.stats.balanceUpdates - before.balanceUpdates;
    expect(credits).toBe(200);
    expect(updates).toBeLessThan(credits);
    // The same figures on /metrics.
    const metric = (name: string) => server.current.host.metrics.registry.getSingleMetricAsString(name).then((t) => Number(/\} (\d+)$/m.exec(t)?.[1]));
    expect(await metric('ledger_credits_applied_total')).toBe(parts().applier.stats.credits);
    expect(await metric('ledger_credit_balance_updates_total')).toBe(parts().applier.stats.balanceUpdates);
    expect(await balanceOf(client(), star!, Asset.ASSET_INCOME)).toEqual({ amount: 600n, pending: 0n });
    const seen = new Set<string>();
    let token = '';
    do {
      const page = await call(client().listTransfers, client(), { account: { ownerId: star!, asset: Asset.ASSET_INCOME }, page: { pageSize: 200, pageToken: token }, kinds: [], startTime: undefined, endTime: undefined }, ADMIN());
      for (const t of page.transfers) seen.add(t.transferId);
      token = page.page?.nextPageToken ?? '';
    } while (token);
    expect(seen.size).toBe(200);
  });

  it('GetBalances derives the level from EXP', async () => {
    const [viewer] = ownersOn(parts(), 1, 1, 7000);
    const grant = (id: string, amount: number) =>
      transfer({ transferId: id, kind: TransferKind.TRANSFER_KIND_EXP_GRANT, payer: { ownerId: '0', asset: Asset.ASSET_EXP }, payee: { ownerId: viewer!, asset: Asset.ASSET_EXP }, amountMinor: String(amount), reference: '' });
    const zero = await call(client().getBalances, client(), { ownerId: '0', assets: [] }, as(viewer!, 'viewer'));
    expect(zero.level).toMatchObject({ level: 0, expMinor: '0' });
    expect(zero.balances.map((b) => b.asset)).toEqual([Asset.ASSET_COIN, Asset.ASSET_INCOME, Asset.ASSET_EXP]);
    await grant('exp:1', 150);
    const res = await call(client().getBalances, client(), { ownerId: '0', assets: [Asset.ASSET_COIN] }, as(viewer!, 'viewer'));
    expect(res.balances.map((b) => b.asset)).toEqual([Asset.ASSET_COIN]);
    expect(res.level).toEqual({ level: 2, expMinor: '150', levelStartExpMinor: '101', nextLevelExpMinor: '401' });
    const other = await failure(call(client().getBalances, client(), { ownerId: '12345', assets: [] }, as(viewer!, 'viewer')));
    expect(other.code).toBe(Code.PERMISSION_DENIED);
  });

  it('CreateTransfers mints a batch together: repeated accounts add up in request order, and a grant that would overflow fails alone', async () => {
    const [a, b] = ownersOn(parts(), 1, 2, 7500);
    const grant = (id: string, owner: string, amount: number) => ({
      transferId: id,
      kind: TransferKind.TRANSFER_KIND_EXP_GRANT,
      payer: { ownerId: '0', asset: Asset.ASSET_EXP },
      payee: { ownerId: owner, asset: Asset.ASSET_EXP },
      amountMinor: String(amount),
      reference: '',
    });
    const batch = Array.from({ length: 20 }, (_, i) => grant(`mint-${i}`, i % 5 === 4 ? b! : a!, i + 1));
    const first = await call(client().createTransfers, client(), { transfers: batch }, ADMIN());
    expect(first.results.map((r) => r.error?.message ?? '')).toEqual(batch.map(() => ''));
    // Every grant to one account sees the ones before it: its credit's balance-after is the running sum.
    const totals = new Map<string, bigint>();
    for (const owner of [a!, b!]) {
      const mine = batch.map((t, i) => ({ t, r: first.results[i]! })).filter(({ t }) => t.payee.ownerId === owner);
      let sum = 0n;
      const expected = mine.map(({ t }) => String((sum += BigInt(t.amountMinor))));
      expect(mine.map(({ r }) => r.transfer?.transfer?.entries[1]?.balanceAfterMinor), `balance after each grant to ${owner}`).toEqual(expected);
      expect((await balanceOf(client(), owner, Asset.ASSET_EXP)).amount).toBe(sum);
      totals.set(owner, sum);
    }

    // Put b right under the ledger's maximum behind its back; the next grant to b cannot fit.
    const MAX = 1_000_000_000_000_000_000n;
    const shard = parts().router.shardFor(bucketOf(b!));
    const conn = await mysql.createConnection(mysqlOptions(server.iso.urls.mysqlUrl, shard.database));
    try {
      await conn.query('UPDATE accounts SET balance = ? WHERE owner_id = ? AND asset = ?', [MAX - 5n, BigInt(b!), Asset.ASSET_EXP]);
      const second = await call(client().createTransfers, client(), { transfers: [grant('over-a-1', a!, 1), grant('over-b', b!, 10), grant('over-a-2', a!, 2)] }, ADMIN());
      expect(second.results[1]?.error).toMatchObject({ code: Code.FAILED_PRECONDITION, message: expect.stringMatching(/maximum/) });
      expect([second.results[0], second.results[2]].map((r) => r?.transfer?.transfer?.transferId)).toEqual(['over-a-1', 'over-a-2']);
      expect((await balanceOf(client(), a!, Asset.ASSET_EXP)).amount).toBe(totals.get(a!)! + 3n);
      expect((await balanceOf(client(), b!, Asset.ASSET_EXP)).amount).toBe(MAX - 5n);
    } finally {
      // Back to what its transfers say, for the invariants checked at the end of this file.
      await conn.query('UPDATE accounts SET balance = ? WHERE owner_id = ? AND asset = ?', [totals.get(b!) ?? 0n, BigInt(b!), Asset.ASSET_EXP]);
      await conn.end();
    }
  });

  it('VoidTransfer makes an unused id unusable and hands back a used one', async () => {
    const [payer, payee] = ownersOn(parts(), 0, 2, 8000);
    await topUp(client(), payer!, 50);
    const voided = await call(client().voidTransfer, client(), { transferId: 'gift:lost-order', homeOwnerId: payer!, reason: 'recovery' }, ADMIN());
    expect(voided).toEqual({ voided: true, transfer: undefined });
    const late = await failure(transfer(gift('gift:lost-order', payer!, payee!, 5), as(payer!, 'viewer')));
    expect(late.code).toBe(Code.FAILED_PRECONDITION);
    expect(errorInfoOf(late.metadata)?.reason).toBe('TRANSFER_VOIDED');
    expect((await failure(call(client().getTransfer, client(), { transferId: 'gift:lost-order', homeOwnerId: payer! }, ADMIN()))).code).toBe(Code.FAILED_PRECONDITION);
    await transfer(gift('gift:paid-order', payer!, payee!, 5), as(payer!, 'viewer'));
    const existing = await call(client().voidTransfer, client(), { transferId: 'gift:paid-order', homeOwnerId: payer!, reason: '' }, ADMIN());
    expect(existing.voided).toBe(false);
    expect(existing.transfer?.transferId).toBe('gift:paid-order');
    expect((await balanceOf(client(), payer!, Asset.ASSET_COIN)).amount).toBe(45n);
  });

  it('keeps daily income from the credits; Reconcile finds and repairs a corrupted day', async () => {
    const [streamer] = ownersOn(parts(), 1, 1, 9000);
    const payers = ownersOn(parts(), 0, 3, 9100);
    await Promise.all(payers.map((p) => topUp(client(), p, 100)));
    for (const [i, p] of payers.entries()) await transfer(gift(`inc-${i}`, p, streamer!, 10 * (i + 1)), as(p, 'viewer'));
    await parts().applier.drain();
    const today = dayOf(new Date(), 'UTC');
    const read = () => call(client().getDailyIncome, client(), { streamerId: '0', startDay: today, endDay: today }, as(streamer!, 'streamer'));
    const before = await read();
    expect(before.timeZone).toBe('UTC');
    expect(before.days).toHaveLength(1);
    expect(before.days[0]).toMatchObject({ day: today, incomeMinor: '60', transferCount: '3', reconciled: false });
    // Lose an update behind the Ledger's back.
    const shard = parts().router.shardFor(bucketOf(streamer!));
    const conn = await mysql.createConnection(mysqlOptions(server.iso.urls.mysqlUrl, shard.database));
    await conn.query('UPDATE daily_income SET income = income - 20, transfer_count = transfer_count - 1 WHERE streamer_id = ?', [BigInt(streamer!)]);
    await conn.end();
    const dry = await call(client().reconcile, client(), { day: today, streamerId: '0', dryRun: true }, ADMIN());
    expect(dry.mismatches).toContainEqual({ streamerId: streamer, recordedIncomeMinor: '40', computedIncomeMinor: '60', recordedTransferCount: '2', computedTransferCount: '3' });
    expect(dry.repaired).toBe(false);
    expect((await read()).days[0]?.incomeMinor).toBe('40');
    const fixed = await call(client().reconcile, client(), { day: today, streamerId: '0', dryRun: false }, ADMIN());
    expect(fixed.repaired).toBe(true);
    expect((await read()).days[0]).toMatchObject({ incomeMinor: '60', transferCount: '3', reconciled: true });
    const again = await call(client().reconcile, client(), { day: today, streamerId: '0', dryRun: false }, ADMIN());
    expect(again.mismatchCount).toBe('0');
    expectBadField(await failure(call(client().reconcile, client(), { day: '2999-01-01', streamerId: '0', dryRun: true }, ADMIN())), 'day');
  });

  it('the invariants hold over everything above', async () => {
    await parts().applier.drain();
    const report = await call(client().checkInvariants, client(), { assets: [] }, ADMIN());
    expect(report.violations).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.unbalancedTransferCount).toBe('0');
    expect(report.negativeBalanceCount).toBe('0');
    expect(report.assets.map((a) => a.holds)).toEqual([true, true, true]);
    expect(Number(report.transfersChecked)).toBeGreaterThan(500);
  });

  it('concurrent checks share one scan of the shards; a later check scans again', async () => {
    const check = () => call(client().checkInvariants, client(), { assets: [] }, ADMIN());
    const burst = await Promise.all(Array.from({ length: 20 }, check));
    expect(burst.every((r) => r.ok)).toBe(true);
    // One shared report: the same instant for every caller of the burst.
    expect(burst[0]?.checkTime).toBeDefined();
    expect(new Set(burst.map((r) => JSON.stringify(r.checkTime))).size).toBe(1);
    await new Promise((r) => setTimeout(r, 5));
    const later = await check();
    expect(JSON.stringify(later.checkTime)).not.toBe(JSON.stringify(burst[0]?.checkTime));
  });
});
