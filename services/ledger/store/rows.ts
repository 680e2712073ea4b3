import type { Asset, Kind, TransferRecord, TransferStatus } from '../model.js';
import { big, dateOf } from './db.js';

/** transfers.status */
export const StatusDb = { PENDING: 1, SETTLED: 2, VOIDED: 3 } as const;
/** entries.side */
export const SideDb = { DEBIT: 1, CREDIT: 2 } as const;

const STATUS_OF: Record<number, TransferStatus> = { 1: 'pending', 2: 'settled', 3: 'voided' };

export const TRANSFER_COLUMNS =
  'bucket, home_owner_id, transfer_id, status, kind, payer_owner_id, payer_asset, payer_bucket, payee_owner_id, payee_asset, payee_bucket, ' +
  'amount, debit_balance_after, credit_balance_after, reference, request_hash, created_by, created_at, settled_at, day';

export const ENTRY_COLUMNS =
  'bucket, owner_id, asset, created_at, home_owner_id, transfer_id, side, kind, amount, balance_after, payer_owner_id, payer_asset, payer_bucket, ' +
  'payee_owner_id, payee_asset, payee_bucket, debit_balance_after, reference, created_by, applied_at, day';

export const OUTBOX_COLUMNS =
  'bucket, home_owner_id, transfer_id, kind, payer_owner_id, payer_asset, payer_bucket, payee_owner_id, payee_asset, payee_bucket, ' +
  'amount, debit_balance_after, reference, created_by, created_at, day';

export type TransferRow = Record<string, unknown> & { request_hash: Buffer };

export function transferFromRow(r: Record<string, unknown>): TransferRecord {
  return {
    transferId: String(r.transfer_id),
    homeOwner: String(r.home_owner_id),
    kind: Number(r.kind) as Kind,
    status: STATUS_OF[Number(r.status)] ?? 'pending',
    payer: { owner: String(r.payer_owner_id), asset: Number(r.payer_asset) as Asset },
    payee: { owner: String(r.payee_owner_id), asset: Number(r.payee_asset) as Asset },
    payerBucket: Number(r.payer_bucket),
    payeeBucket: Number(r.payee_bucket),
    amount: big(r.amount),
    debitBalanceAfter: big(r.debit_balance_after),
    creditBalanceAfter: big(r.credit_balance_after),
    reference: String(r.reference ?? ''),
    createdBy: String(r.created_by),
    createdAt: dateOf(r.created_at),
    settledAt: r.settled_at === null || r.settled_at === undefined ? null : dateOf(r.settled_at),
    day: String(r.day),
  };
}

const statusDb = (s: TransferStatus) => (s === 'pending' ? StatusDb.PENDING : s === 'settled' ? StatusDb.SETTLED : StatusDb.VOIDED);

export function transferValues(t: TransferRecord, homeBucket: number, requestHash: Buffer): unknown[] {
  return [
    homeBucket,
    BigInt(t.homeOwner),
    t.transferId,
    statusDb(t.status),
    t.kind,
    BigInt(t.payer.owner),
    t.payer.asset,
    t.payerBucket,
    BigInt(t.payee.owner),
    t.payee.asset,
    t.payeeBucket,
    t.amount,
    t.debitBalanceAfter,
    t.creditBalanceAfter,
    t.reference,
    requestHash,
    BigInt(t.createdBy),
    t.createdAt,
    t.settledAt,
    t.day,
  ];
}

/** One side of a transfer as an entries row; the transfer's fields travel with it. */
export function entryValues(t: TransferRecord, side: 'debit' | 'credit', balanceAfter: bigint, appliedAt: Date): unknown[] {
  const account = side === 'debit' ? t.payer : t.payee;
  return [
    side === 'debit' ? t.payerBucket : t.payeeBucket,
    BigInt(account.owner),
    account.asset,
    t.createdAt,
    BigInt(t.homeOwner),
    t.transferId,
    side === 'debit' ? SideDb.DEBIT : SideDb.CREDIT,
    t.kind,
    t.amount,
    balanceAfter,
    BigInt(t.payer.owner),
    t.payer.asset,
    t.payerBucket,
    BigInt(t.payee.owner),
    t.payee.asset,
    t.payeeBucket,
    t.debitBalanceAfter,
    t.reference,
    BigInt(t.createdBy),
    appliedAt,
    t.day,
  ];
}

export function outboxValues(t: TransferRecord, homeBucket: number): unknown[] {
  return [
    homeBucket,
    BigInt(t.homeOwner),
    t.transferId,
    t.kind,
    BigInt(t.payer.owner),
    t.payer.asset,
    t.payerBucket,
    BigInt(t.payee.owner),
    t.payee.asset,
    t.payeeBucket,
    t.amount,
    t.debitBalanceAfter,
    t.reference,
    BigInt(t.createdBy),
    t.createdAt,
    t.day,
  ];
}

/** An outbox row as the pending transfer it stands for. */
export function transferFromOutbox(r: Record<string, unknown>): TransferRecord {
  return transferFromRow({ ...r, status: StatusDb.PENDING, credit_balance_after: 0, settled_at: null });
}

/**
 * A transfer as seen from one account's history: the entry row, completed by the transfer row
 * when it lives on the same shard (a debit, or a mint's credit), otherwise settled by definition
 * (a credit entry exists only once the credit was applied).
 */
export function transferFromEntry(r: Record<string, unknown>): TransferRecord {
  if (r.t_status !== null && r.t_status !== undefined) {
    return transferFromRow({ ...r, status: r.t_status, credit_balance_after: r.t_credit_balance_after, settled_at: r.t_settled_at });
  }
  return transferFromRow({ ...r, status: StatusDb.SETTLED, credit_balance_after: r.balance_after, settled_at: r.applied_at });
}
