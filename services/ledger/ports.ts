import type { AccountKey, Asset, BalanceRecord, Kind, TransferRecord } from './model.js';

/**
 * What the Ledger's use cases (ledger.ts) need from storage, and the records that cross that line.
 * The use cases see only these interfaces; store/ implements them against the shard databases and
 * NATS KV, and service.ts hands the implementations in. Keeping SQL, shard routing and the map's
 * KV behind them is what lets the validation and authorization rules be read (and changed) without
 * reading the transfer engine.
 */

/** A validated, authorized transfer request: what the engine is asked to record. */
export interface TransferCommand {
  transferId: string;
  kind: Kind;
  payer: AccountKey;
  payee: AccountKey;
  amount: bigint;
  reference: string;
  createdBy: string;
  /** Hash of the fields that make a retry identical (see ledger.ts). */
  requestHash: Buffer;
}

export interface TransferOutcome {
  transfer: TransferRecord;
  /** The payer's balance right after the debit; undefined for a mint. */
  payerBalance: BalanceRecord | undefined;
  /** The payee's balance right after a mint's credit; undefined otherwise. */
  payeeBalance: BalanceRecord | undefined;
  replayed: boolean;
}

export interface HistoryQuery {
  account: AccountKey;
  limit: number;
  /** Position after which to continue (from a previous page). */
  after?: HistoryCursor;
  startTime?: Date;
  endTime?: Date;
  kinds: Kind[];
}

/** Where a page of history ended: the last entry's sort key. */
export interface HistoryCursor {
  createdAt: string;
  homeOwner: string;
  transferId: string;
  side: number;
}

export interface DailyIncomeRow {
  day: string;
  income: bigint;
  count: bigint;
  reconciled: boolean;
  updatedAt: Date | null;
}

export type MigrationPhase = 'COPYING' | 'CATCHING_UP' | 'FENCED' | 'CUT_OVER' | 'CLEANING' | 'DONE' | 'FAILED';

export interface MigrationRecord {
  id: string;
  requestId: string;
  bucket: number;
  source: number;
  target: number;
  phase: MigrationPhase;
  rowsTotal: number;
  rowsCopied: number;
  lagRows: number;
  /** How long writes were held, once the fence is over. */
  fenceMs: number | null;
  error: string;
  createdAt: string;
  updatedAt: string;
  endedAt: string | null;
}

export interface AssetInvariant {
  asset: Asset;
  balanceSum: bigint;
  pendingCredit: bigint;
  minted: bigint;
  burned: bigint;
  holds: boolean;
}

export interface InvariantReport {
  ok: boolean;
  assets: AssetInvariant[];
  transfersChecked: number;
  unbalancedTransfers: number;
  negativeBalances: number;
  violations: string[];
  checkedAt: Date;
}

export interface IncomeMismatch {
  streamer: string;
  recordedIncome: bigint;
  computedIncome: bigint;
  recordedCount: bigint;
  computedCount: bigint;
}

export interface ReconcileReport {
  day: string;
  streamersChecked: number;
  transfersScanned: number;
  mismatchCount: number;
  mismatches: IncomeMismatch[];
  repaired: boolean;
  durationMs: number;
}

/** What GetShardMap shows for a bucket. Routing only needs `shard`; the rest is for operators. */
export type BucketRouteState = 'serving' | 'migrating' | 'fenced';

export interface ShardMapData {
  /** Bumped on every change; a replica never replaces a newer map with an older one. */
  version: number;
  bucketCount: number;
  /**
   * The ledger every shard database of this map belongs to (each carries it, store/identity.ts).
   * Absent only in a map written before identities existed, until the first replica that knows them starts.
   */
  ledgerId?: string;
  /** `uid`: the identity of the database that is this shard, recorded by the first replica to start with it. */
  shards: Array<{ id: number; name: string; uid?: string }>;
  buckets: Array<{ shard: number; state: BucketRouteState; migrationId: string }>;
  updatedAt: string;
}

/** Records transfers; the batching transfer engine in production. */
export interface TransferSubmitter {
  submit(cmd: TransferCommand): Promise<TransferOutcome>;
  /** One promise per command, in order; the commands may share group commits. */
  submitMany(cmds: TransferCommand[]): Array<Promise<TransferOutcome>>;
}

/** Reads, each from the shard that serves the owner's bucket. */
export interface LedgerReadPort {
  balances(owner: string, assets: readonly Asset[]): Promise<BalanceRecord[]>;
  transfer(homeOwner: string, transferId: string): Promise<TransferRecord | undefined>;
  /** The same transfers with their credit side filled in where it was applied on another shard. */
  complete(transfers: TransferRecord[]): Promise<TransferRecord[]>;
  history(q: HistoryQuery): Promise<{ transfers: TransferRecord[]; next: HistoryCursor | undefined }>;
  dailyIncome(streamer: string, startDay: string, endDay: string): Promise<DailyIncomeRow[]>;
  /** When the oldest credit still waiting for the applier was created: income is complete up to then. */
  oldestPendingCredit(): Promise<Date | undefined>;
}

/** Writes of one row outside the batched transfer path; they wait out a migration's fence like transfers do. */
export interface SingleWrites {
  /** Claims a payment reference for (owner, amount), or returns what it was first claimed for. */
  claimPaymentReference(input: { reference: string; owner: string; amount: bigint; provider: string; now: Date }): Promise<{ owner: string; amount: bigint }>;
  /** Makes a transfer id unusable unless a transfer already has it (then returns that transfer). */
  voidTransfer(input: { homeOwner: string; transferId: string; reason: string; by: string; now: Date; timeZone: string }): Promise<{ voided: boolean; transfer: TransferRecord | undefined }>;
}

/** Whole-ledger checks an operator runs: they scan every shard. */
export interface Audits {
  /** Recomputes one day's income statistics and, unless `dryRun`, repairs them; one caller per day at a time. */
  reconcileDay(opts: { day: string; streamer: string | undefined; dryRun: boolean }): Promise<ReconcileReport>;
  checkInvariants(assets: readonly Asset[]): Promise<InvariantReport>;
}

/** Bucket migrations between shards. */
export interface Migrations {
  start(bucket: number, target: number, requestId: string): Promise<MigrationRecord>;
  get(id: string): Promise<MigrationRecord>;
}

/** This replica's view of the shard map. */
export interface ShardMapSource {
  readonly current: ShardMapData;
}
