import type { Duration } from '../../gen/ts/google/protobuf/duration.js';
import { msToDuration } from '../../kit/contract-rules.js';
import {
  BucketState,
  EntrySide,
  MigrationPhase,
  TransferStatus,
  type Balance,
  type Entry,
  type Migration,
  type ShardMap,
  type Transfer,
} from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import type { Level } from './levels.js';
import type { AccountKey, BalanceRecord, TransferRecord } from './model.js';
import type { MigrationRecord, ShardMapData } from './ports.js';

/** Domain records to wire messages. The enums share their numbering with the domain on purpose. */

const account = (a: AccountKey) => ({ ownerId: a.owner, asset: a.asset as number });

export function toProtoTransfer(t: TransferRecord): Transfer {
  const settled = t.status === 'settled';
  const debit: Entry = {
    side: EntrySide.ENTRY_SIDE_DEBIT,
    account: account(t.payer),
    amountMinor: String(t.amount),
    balanceAfterMinor: String(t.debitBalanceAfter),
    bucket: t.payerBucket,
    applyTime: t.createdAt,
  };
  const credit: Entry = {
    side: EntrySide.ENTRY_SIDE_CREDIT,
    account: account(t.payee),
    amountMinor: String(t.amount),
    balanceAfterMinor: String(t.creditBalanceAfter),
    bucket: t.payeeBucket,
    applyTime: settled ? (t.settledAt ?? undefined) : undefined,
  };
  return {
    transferId: t.transferId,
    kind: t.kind,
    entries: [debit, credit],
    reference: t.reference,
    status: settled ? TransferStatus.TRANSFER_STATUS_SETTLED : TransferStatus.TRANSFER_STATUS_CREDIT_PENDING,
    createTime: t.createdAt,
    settleTime: settled ? (t.settledAt ?? undefined) : undefined,
    createdBy: t.createdBy,
  };
}

export function toProtoBalance(b: BalanceRecord): Balance {
  return {
    asset: b.asset,
    amountMinor: String(b.amount),
    pendingCreditMinor: String(b.pendingCredit),
    allowNegative: b.allowNegative,
    updateTime: b.updatedAt ?? undefined,
  };
}

export const toProtoLevel = (l: Level) => ({
  level: l.level,
  expMinor: String(l.exp),
  levelStartExpMinor: String(l.levelStart),
  nextLevelExpMinor: String(l.nextLevelStart),
});

export const toDuration: (ms: number) => Duration = msToDuration;

const BUCKET_STATE = { serving: BucketState.BUCKET_STATE_SERVING, migrating: BucketState.BUCKET_STATE_MIGRATING, fenced: BucketState.BUCKET_STATE_FENCED };

export function toProtoShardMap(m: ShardMapData): ShardMap {
  return {
    version: String(m.version),
    bucketCount: m.bucketCount,
    shards: m.shards.map((s) => ({ shardId: s.id, name: s.name, databaseUid: s.uid ?? '' })),
    buckets: m.buckets.map((b, bucket) => ({ bucket, shardId: b.shard, state: BUCKET_STATE[b.state], migrationId: b.migrationId })),
    updateTime: new Date(m.updatedAt),
    ledgerId: m.ledgerId ?? '',
  };
}

const PHASE: Record<MigrationRecord['phase'], MigrationPhase> = {
  COPYING: MigrationPhase.MIGRATION_PHASE_COPYING,
  CATCHING_UP: MigrationPhase.MIGRATION_PHASE_CATCHING_UP,
  FENCED: MigrationPhase.MIGRATION_PHASE_FENCED,
  CUT_OVER: MigrationPhase.MIGRATION_PHASE_CUT_OVER,
  CLEANING: MigrationPhase.MIGRATION_PHASE_CLEANING,
  DONE: MigrationPhase.MIGRATION_PHASE_DONE,
  FAILED: MigrationPhase.MIGRATION_PHASE_FAILED,
};

export function toProtoMigration(m: MigrationRecord): Migration {
  return {
    migrationId: m.id,
    bucket: m.bucket,
    sourceShardId: m.source,
    targetShardId: m.target,
    phase: PHASE[m.phase],
    rowsTotal: String(m.rowsTotal),
    rowsCopied: String(m.rowsCopied),
    lagRows: String(m.lagRows),
    fenceDuration: m.fenceMs === null ? undefined : toDuration(m.fenceMs),
    error: m.error,
    createTime: new Date(m.createdAt),
    updateTime: new Date(m.updatedAt),
    endTime: m.endedAt ? new Date(m.endedAt) : undefined,
  };
}
