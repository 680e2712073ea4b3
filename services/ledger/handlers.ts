import type { LedgerServiceServer, TransferRequest, TransferResponse } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import type { AccessTable } from '../../kit/auth.js';
import { toStatusMessage } from '../../kit/grpc-errors.js';
import { unary } from '../../kit/handler.js';
import type { Logger } from '../../kit/logger.js';
import type { Ledger, TransferInput } from './ledger.js';
import type { TransferOutcome } from './ports.js';
import { toDuration, toProtoBalance, toProtoLevel, toProtoMigration, toProtoShardMap, toProtoTransfer } from './mapping.js';

/**
 * Which callers each RPC accepts besides users (whose rights the Ledger's domain checks): money
 * is made only by the BFF's payment callback, moved in batches only by Gift, and the operations
 * RPCs answer operators' admin tokens, never an app user's.
 */
export const LEDGER_ACCESS: AccessTable = {
  TopUp: { services: ['bff'], users: false },
  Transfer: { services: ['gift'] },
  CreateTransfers: { services: ['gift'], users: false },
  VoidTransfer: { services: ['gift'], users: false },
  Reconcile: { users: false },
  CheckInvariants: { users: false },
  GetShardMap: { users: false },
  MigrateBucket: { users: false },
  GetMigration: { users: false },
};

/** The gRPC face of the Ledger: wire messages in, use cases, wire messages out. */
export function ledgerHandlers(ledger: Ledger, log: Logger): LedgerServiceServer {
  return {
    topUp: unary(log, async (req, ctx) => {
      const out = await ledger.topUp(ctx.caller, { owner: req.ownerId, amount: req.amountMinor, paymentReference: req.paymentReference, provider: req.provider });
      return { transfer: toProtoTransfer(out.transfer), balance: out.payeeBalance ? toProtoBalance(out.payeeBalance) : undefined, replayed: out.replayed };
    }),
    transfer: unary(log, async (req, ctx) => transferResponse(await ledger.transfer(ctx.caller, transferInput(req)))),
    createTransfers: unary(log, async (req, ctx) => {
      const outcomes = await ledger.transfers(ctx.caller, req.transfers.map(transferInput));
      return { results: outcomes.map((o) => (o.ok ? { transfer: transferResponse(o.value) } : { error: toStatusMessage(o.error, log, ctx.method) })) };
    }),
    getBalances: unary(log, async (req, ctx) => {
      const out = await ledger.balances(ctx.caller, req.ownerId, req.assets);
      return { ownerId: out.owner, balances: out.balances.map(toProtoBalance), level: toProtoLevel(out.level) };
    }),
    getTransfer: unary(log, async (req, ctx) => ({ transfer: toProtoTransfer(await ledger.getTransfer(ctx.caller, req.transferId, req.homeOwnerId)) })),
    voidTransfer: unary(log, async (req, ctx) => {
      const out = await ledger.voidTransfer(ctx.caller, req.transferId, req.homeOwnerId, req.reason);
      return { voided: out.voided, transfer: out.transfer ? toProtoTransfer(out.transfer) : undefined };
    }),
    listTransfers: unary(log, async (req, ctx) => {
      const out = await ledger.history(ctx.caller, {
        account: req.account ? { owner: req.account.ownerId, asset: req.account.asset } : undefined,
        pageSize: req.page?.pageSize ?? 0,
        pageToken: req.page?.pageToken ?? '',
        startTime: req.startTime,
        endTime: req.endTime,
        kinds: req.kinds,
      });
      return { transfers: out.transfers.map(toProtoTransfer), page: { nextPageToken: out.nextPageToken } };
    }),
    getDailyIncome: unary(log, async (req, ctx) => {
      const out = await ledger.dailyIncome(ctx.caller, req.streamerId, req.startDay, req.endDay);
      return {
        days: out.days.map((d) => ({ day: d.day, incomeMinor: String(d.income), transferCount: String(d.count), reconciled: d.reconciled, updateTime: d.updatedAt ?? undefined })),
        totalIncomeMinor: String(out.total),
        timeZone: out.timeZone,
        asOfTime: out.asOf,
      };
    }),
    reconcile: unary(log, async (req, ctx) => {
      const r = await ledger.reconcile(ctx.caller, req.day, req.streamerId, req.dryRun);
      return {
        day: r.day,
        streamersChecked: String(r.streamersChecked),
        transfersScanned: String(r.transfersScanned),
        mismatchCount: String(r.mismatchCount),
        mismatches: r.mismatches.map((m) => ({
          streamerId: m.streamer,
          recordedIncomeMinor: String(m.recordedIncome),
          computedIncomeMinor: String(m.computedIncome),
          recordedTransferCount: String(m.recordedCount),
          computedTransferCount: String(m.computedCount),
        })),
        repaired: r.repaired,
        duration: toDuration(r.durationMs),
      };
    }),
    checkInvariants: unary(log, async (req, ctx) => {
      const r = await ledger.checkInvariants(ctx.caller, req.assets);
      return {
        ok: r.ok,
        assets: r.assets.map((a) => ({
          asset: a.asset,
          balanceSumMinor: String(a.balanceSum),
          pendingCreditMinor: String(a.pendingCredit),
          mintedMinor: String(a.minted),
          burnedMinor: String(a.burned),
          holds: a.holds,
        })),
        transfersChecked: String(r.transfersChecked),
        unbalancedTransferCount: String(r.unbalancedTransfers),
        negativeBalanceCount: String(r.negativeBalances),
        violations: r.violations,
        checkTime: r.checkedAt,
      };
    }),
    getShardMap: unary(log, (_req, ctx) => Promise.resolve({ shardMap: toProtoShardMap(ledger.shardMap(ctx.caller)) })),
    migrateBucket: unary(log, async (req, ctx) => ({ migration: toProtoMigration(await ledger.migrateBucket(ctx.caller, req.bucket, req.targetShardId, req.requestId)) })),
    getMigration: unary(log, async (req, ctx) => ({ migration: toProtoMigration(await ledger.migration(ctx.caller, req.migrationId)) })),
  };
}

const transferInput = (req: TransferRequest): TransferInput => ({
  transferId: req.transferId,
  kind: req.kind,
  payer: req.payer ? { owner: req.payer.ownerId, asset: req.payer.asset } : undefined,
  payee: req.payee ? { owner: req.payee.ownerId, asset: req.payee.asset } : undefined,
  amount: req.amountMinor,
  reference: req.reference,
});

const transferResponse = (out: TransferOutcome): TransferResponse => ({
  transfer: toProtoTransfer(out.transfer),
  payerBalance: out.payerBalance ? toProtoBalance(out.payerBalance) : undefined,
  replayed: out.replayed,
});
