import { modeOf, type Asset, type Kind, type TransferRecord, type TransferStatus } from '../model.js';
import { big, dateOf } from './db.js';

/** entries.side */
export const SideDb = { DEBIT: 1, CREDIT: 2 } as const;

/** Columns written by an INSERT into transfers. */
export const TRANSFER_COLUMNS =
  'bucket, home_owner_id, transfer_id, voided, kind, payer_owner_id, payer_asset, payer_bucket, payee_owner_id, payee_asset, payee_bucket, ' +
  'amount, debit_balance_after, credit_balance_after, reference, request_hash, created_by, created_at, settled_at, day';

/**
 * A transfer as read (FROM transfers t): its columns and whether its credit is still in the
 * outbox, which is what "pending" means; a transfer row itself never changes.
 */
export const TRANSFER_SELECT = `${TRANSFER_COLUMNS.split(', ').map((c) => `t.${c}`).join(', ')}, EXISTS (SELECT 1 FROM outbox o WHERE o.bucket = t.bucket AND o.home_owner_id = t.home_owner_id AND o.transfer_id = t.transfer_id) AS pending`;

export const ENTRY_COLUMNS =
  'bucket, owner_id, asset, created_at, home_owner_id, transfer_id, side, kind, amount, balance_after, payer_owner_id, payer_asset, payer_bucket, ' +
  'payee_owner_id, payee_asset, payee_bucket, debit_balance_after, reference, created_by, applied_at, day';

export type TransferRow = Record<string, unknown> & { request_hash: Buffer };

/** The credit side of a settled user-to-user transfer, as recorded by its entry on the payee's shard. */
export interface AppliedCredit {
  balanceAfter: bigint;
  appliedAt: Date;
}

/**
 * A transfer from its row (read with TRANSFER_SELECT, or any row with a `pending` column). A
 * settled user-to-user transfer's credit details live on the payee's shard: pass them as `credit`
 * when they were looked up, otherwise they read as unknown (0, no settle time).
 */
export function transferFromRow(r: Record<string, unknown>, credit?: AppliedCredit): TransferRecord {
  const payer = { owner: String(r.payer_owner_id), asset: Number(r.payer_asset) as Asset };
  const payee = { owner: String(r.payee_owner_id), asset: Number(r.payee_asset) as Asset };
  const move = modeOf(payer, payee) === 'move';
  const voided = Number(r.voided) === 1;
  const pending = move && Number(r.pending) === 1;
  const status: TransferStatus = voided ? 'voided' : pending ? 'pending' : 'settled';
  const settledAt = r.settled_at === null || r.settled_at === undefined ? null : dateOf(r.settled_at);
  return {
    transferId: String(r.transfer_id),
    homeOwner: String(r.home_owner_id),
    kind: Number(r.kind) as Kind,
    status,
    payer,
    payee,
    payerBucket: Number(r.payer_bucket),
    payeeBucket: Number(r.payee_bucket),
    amount: big(r.amount),
    debitBalanceAfter: big(r.debit_balance_after),
    creditBalanceAfter: move ? (status === 'settled' ? (credit?.balanceAfter ?? 0n) : 0n) : big(r.credit_balance_after),
    reference: String((r.reference as string | null) ?? ''),
    createdBy: String(r.created_by),
    createdAt: dateOf(r.created_at),
    settledAt: move ? (status === 'settled' ? (credit?.appliedAt ?? null) : null) : settledAt,
    day: String(r.day),
  };
}

/** payer_owner_id, payer_asset, payer_bucket, payee_owner_id, payee_asset, payee_bucket: in every row that describes a transfer. */
const parties = (t: TransferRecord): unknown[] => [BigInt(t.payer.owner), t.payer.asset, t.payerBucket, BigInt(t.payee.owner), t.payee.asset, t.payeeBucket];

export function transferValues(t: TransferRecord, homeBucket: number, requestHash: Buffer): unknown[] {
  const move = modeOf(t.payer, t.payee) === 'move';
  return [
    homeBucket,
    BigInt(t.homeOwner),
    t.transferId,
    0,
    t.kind,
    ...parties(t),
    t.amount,
    t.debitBalanceAfter,
    move ? 0n : t.creditBalanceAfter,
    t.reference,
    requestHash,
    BigInt(t.createdBy),
    t.createdAt,
    move ? null : t.settledAt,
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
    ...parties(t),
    t.debitBalanceAfter,
    t.reference,
    BigInt(t.createdBy),
    appliedAt,
    t.day,
  ];
}

/** A transfer read through its outbox row (its credit is in flight). */
export function transferFromOutbox(r: Record<string, unknown>): TransferRecord {
  return transferFromRow({ ...r, pending: 1 });
}

/** The transfer columns, each prefixed with `t.` (for joins). */
export const TRANSFER_COLUMNS_T = TRANSFER_COLUMNS.split(', ').map((c) => `t.${c}`).join(', ');

/** outbox o JOIN transfers t: a credit in flight with the transfer it belongs to. */
export const OUTBOX_JOIN = 'outbox o JOIN transfers t ON t.bucket = o.bucket AND t.home_owner_id = o.home_owner_id AND t.transfer_id = o.transfer_id';

/**
 * A transfer as seen from one account's history: the entry row, completed by the transfer row
 * when it lives on the same shard (a debit, or a mint's credit; joined as t_*), otherwise settled
 * by definition (a credit entry exists only once the credit was applied) with the entry's own
 * balance and time.
 */
export function transferFromEntry(r: Record<string, unknown>, credit?: AppliedCredit): TransferRecord {
  if (r.t_kind !== null && r.t_kind !== undefined) {
    return transferFromRow({ ...r, voided: 0, pending: r.t_pending, credit_balance_after: r.t_credit_balance_after, settled_at: r.t_settled_at }, credit);
  }
  return transferFromRow({ ...r, voided: 0, pending: 0 }, { balanceAfter: big(r.balance_after), appliedAt: dateOf(r.applied_at) });
}
