import { LedgerErrorReason as R, ledgerErrorReasonToJSON } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { DomainError, reasonName, type ErrorKind, type FieldViolation } from '../../kit/domain-error.js';

/** ErrorInfo.domain for every Ledger-specific reason. */
const LEDGER_DOMAIN = 'livemesh.ledger';

function ledgerError(kind: ErrorKind, reason: R, message: string, metadata: Record<string, string> = {}, violations: FieldViolation[] = []): DomainError {
  return new DomainError(kind, reasonName(ledgerErrorReasonToJSON, reason), message, { domain: LEDGER_DOMAIN, metadata, violations });
}

export const insufficientFunds = (owner: string, balance: bigint, amount: bigint) =>
  ledgerError('failed_precondition', R.LEDGER_ERROR_REASON_INSUFFICIENT_FUNDS, `account of owner ${owner} holds ${balance}, less than ${amount}; nothing was debited`, {
    balance_minor: String(balance),
  });

export const transferNotFound = (homeOwner: string, transferId: string) =>
  ledgerError('not_found', R.LEDGER_ERROR_REASON_TRANSFER_NOT_FOUND, `no transfer ${JSON.stringify(transferId)} for home owner ${homeOwner}`, {
    transfer_id: transferId,
  });

export const transferVoided = (transferId: string) =>
  ledgerError('failed_precondition', R.LEDGER_ERROR_REASON_TRANSFER_VOIDED, `transfer id ${JSON.stringify(transferId)} was voided and can never be used`, {
    transfer_id: transferId,
  });

/**
 * A kind that does not allow these accounts: a client mistake, so INVALID_ARGUMENT naming the
 * field, with the BadRequest every other INVALID_ARGUMENT carries (generic clients read the field
 * from there) and its own reason for clients that tell this case apart.
 */
export const accountsNotAllowed = (field: string, message: string) =>
  ledgerError('invalid_argument', R.LEDGER_ERROR_REASON_ACCOUNTS_NOT_ALLOWED, `${field}: ${message}`, { field }, [{ field, description: message }]);

export const notAccountOwner = (message: string) => ledgerError('permission_denied', R.LEDGER_ERROR_REASON_NOT_ACCOUNT_OWNER, message);

export const balanceOverflow = (owner: string) =>
  ledgerError('failed_precondition', R.LEDGER_ERROR_REASON_BALANCE_OVERFLOW, `the credit would push the balance of owner ${owner} past the ledger's maximum`);

export const migrationNotFound = (id: string) =>
  ledgerError('not_found', R.LEDGER_ERROR_REASON_MIGRATION_NOT_FOUND, `no migration ${JSON.stringify(id)}`, { migration_id: id });

export const migrationInProgress = (bucket: number, id: string) =>
  ledgerError('failed_precondition', R.LEDGER_ERROR_REASON_MIGRATION_IN_PROGRESS, `bucket ${bucket} is already migrating (${id})`, { migration_id: id });

export const shardNotFound = (shard: number) => ledgerError('not_found', R.LEDGER_ERROR_REASON_SHARD_NOT_FOUND, `no shard ${shard}`, { shard_id: String(shard) });

export const bucketAlreadyOnShard = (bucket: number, shard: number) =>
  ledgerError('failed_precondition', R.LEDGER_ERROR_REASON_BUCKET_ALREADY_ON_SHARD, `bucket ${bucket} is already on shard ${shard}`);

export const reconcileInProgress = (day: string) =>
  ledgerError('aborted', R.LEDGER_ERROR_REASON_RECONCILE_IN_PROGRESS, `a reconciliation of ${day} is already running; retry later`, { day });

/** A write waited too long for a bucket to come back (a migration stuck in its fence). */
export const bucketUnavailable = (bucket: number, waitedMs: number) =>
  new DomainError('unavailable', 'DEPENDENCY_UNAVAILABLE', `bucket ${bucket} has been unavailable for ${waitedMs} ms (a migration is cutting over); retry`, {
    metadata: { bucket: String(bucket) },
  });
