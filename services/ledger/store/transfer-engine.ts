import type { PoolConnection } from 'mysql2/promise';
import { idempotencyKeyReused } from '../../../kit/domain-error.js';
import type { Logger } from '../../../kit/logger.js';
import { bucketOf } from '../buckets.js';
import { dayOf } from '../days.js';
import { balanceOverflow, insufficientFunds, transferVoided } from '../errors.js';
import { homeOwnerOf, modeOf, type Asset, type BalanceRecord, type TransferMode, type TransferRecord } from '../model.js';
import { BucketDb, bucketStates, ChangeLog, isWritable, lockBuckets } from './buckets-db.js';
import { affected, big, isCheckViolation, isDuplicate, retrying, rowsOf, Statements, withConnection, type Shard } from './db.js';
import type { BucketRouter, Refusal } from './router.js';
import { ENTRY_COLUMNS, entryValues, transferFromRow, transferValues, TRANSFER_COLUMNS, TRANSFER_SELECT, type TransferRow } from './rows.js';
import { keyIn, keyMatch, tableSpec } from './schema.js';
import type { TransferCommand, TransferOutcome } from '../ports.js';

export type { TransferCommand, TransferOutcome } from '../ports.js';

interface Planned extends TransferCommand {
  mode: TransferMode;
  homeOwner: string;
  homeBucket: number;
  payerBucket: number;
  payeeBucket: number;
}

interface Item {
  cmd: Planned;
  resolve: (o: TransferOutcome) => void;
  reject: (err: unknown) => void;
  startedAt: number;
  mapVersion: number;
  /** Run alone: its batch failed in a way one member can cause (a balance past its limit). */
  solo: boolean;
}

type Action = { done: TransferOutcome } | { fail: unknown } | { refusal: Refusal } | { again: true };

/** A batch lost an insert race on a transfer id (another replica, or VoidTransfer): run it again. */
class DuplicateRace extends Error {}

export interface EngineOptions {
  /** Most transfers per database transaction. */
  maxBatch: number;
  /** Transactions in flight per shard (each holds one pooled connection). */
  batchesPerShard: number;
  timeZone: string;
  log: Logger;
  clock?: () => Date;
  /** Called after a batch that left credits in a shard's outbox, so the applier starts at once. */
  onCredits?: (shardId: number) => void;
}

const key = (homeOwner: string, transferId: string) => `${homeOwner}/${transferId}`;
const TRANSFERS = tableSpec('transfers');
const ACCOUNTS = tableSpec('accounts');

interface LockKey {
  bucket: number;
  owner: string;
  ownerId: bigint;
  asset: Asset;
}

/** Lock order for account rows: every transaction locks accounts in this order, so batches never deadlock each other. */
export function compareAccounts(a: { bucket: number; ownerId: bigint; asset: number }, b: { bucket: number; ownerId: bigint; asset: number }): number {
  if (a.bucket !== b.bucket) return a.bucket - b.bucket;
  if (a.ownerId !== b.ownerId) return a.ownerId < b.ownerId ? -1 : 1;
  return a.asset - b.asset;
}

/**
 * The transfer engine: group commit for the debit side. Requests for one shard queue up while
 * that shard's transactions are busy; each transaction then takes up to `maxBatch` of them and
 * settles the whole group in two round trips and one commit:
 *
 * 1. share-lock the home buckets' state rows and look up the transfer ids (replays, voids); then
 *    one conditional `UPDATE … WHERE balance >= amount` per debit, in account order: the check and
 *    the debit are one atomic statement, and a debit that does not fit changes nothing; then the
 *    balances as left, from which every debit's balance-after is worked out;
 * 2. insert the transfers, their entries and the outbox rows for credits, and COMMIT.
 *
 * One fsync then carries the whole group, which is what lets a ledger keep up with single-row
 * autocommit inserts. Credits to other users never happen here: they go to the outbox and the
 * credit applier adds them up per account, so a hot payee's balance row is in no debit's way.
 */
export class TransferEngine {
  private readonly lanes = new Map<number, { queue: Item[]; running: number; scheduled: boolean }>();
  private readonly clock: () => Date;

  constructor(
    private readonly router: BucketRouter,
    private readonly opts: EngineOptions,
  ) {
    this.clock = opts.clock ?? (() => new Date());
  }

  submit(cmd: TransferCommand): Promise<TransferOutcome> {
    return this.submitMany([cmd])[0]!;
  }

  /**
   * Several transfers at once: all are queued before any batch starts, so they share group
   * commits instead of the first one or two running alone while the rest wait.
   */
  submitMany(cmds: TransferCommand[]): Array<Promise<TransferOutcome>> {
    const shards = new Map<number, Shard>();
    const out = cmds.map(
      (cmd) =>
        new Promise<TransferOutcome>((resolve, reject) => {
          const shard = this.enqueue({ cmd: this.plan(cmd), resolve, reject, startedAt: Date.now(), mapVersion: 0, solo: false });
          if (shard) shards.set(shard.id, shard);
        }),
    );
    for (const shard of shards.values()) this.schedule(shard);
    return out;
  }

  private plan(cmd: TransferCommand): Planned {
    const homeOwner = homeOwnerOf(cmd.payer, cmd.payee);
    return {
      ...cmd,
      mode: modeOf(cmd.payer, cmd.payee),
      homeOwner,
      homeBucket: bucketOf(homeOwner),
      payerBucket: bucketOf(cmd.payer.owner),
      payeeBucket: bucketOf(cmd.payee.owner),
    };
  }

  /** Requests waiting or running, for metrics and tests. */
  get backlog(): number {
    let n = 0;
    for (const lane of this.lanes.values()) n += lane.queue.length + lane.running;
    return n;
  }

  private route(item: Item): void {
    const shard = this.enqueue(item);
    if (shard) this.schedule(shard);
  }

  /** Queues an item on its shard's lane without starting a batch; the shard, or undefined if the item was rejected. */
  private enqueue(item: Item): Shard | undefined {
    let shard: Shard;
    try {
      shard = this.router.shardFor(item.cmd.homeBucket);
    } catch (err) {
      item.reject(err);
      return undefined;
    }
    item.mapVersion = this.router.view.current.version;
    this.lane(shard.id).queue.push(item);
    return shard;
  }

  private lane(id: number) {
    let lane = this.lanes.get(id);
    if (!lane) this.lanes.set(id, (lane = { queue: [], running: 0, scheduled: false }));
    return lane;
  }

  /**
   * Starts the shard's next batches at the end of this turn of the event loop rather than at
   * once, so every request one network read delivered (many Transfer calls, or one
   * CreateTransfers) joins the same group commit instead of the first running alone.
   */
  private schedule(shard: Shard): void {
    const lane = this.lane(shard.id);
    if (lane.scheduled || lane.running >= this.opts.batchesPerShard) return;
    lane.scheduled = true;
    setImmediate(() => {
      lane.scheduled = false;
      this.pump(shard);
    });
  }

  private pump(shard: Shard): void {
    const lane = this.lane(shard.id);
    while (lane.running < this.opts.batchesPerShard && lane.queue.length > 0) {
      const batch = takeBatch(lane.queue, this.opts.maxBatch);
      lane.running++;
      void this.runBatch(shard, batch).finally(() => {
        lane.running--;
        this.schedule(shard);
      });
    }
  }

  private async runBatch(shard: Shard, items: Item[]): Promise<void> {
    let actions: Action[];
    try {
      actions = await this.executeWithRetries(shard, items);
    } catch (err) {
      if (isCheckViolation(err) && items.length > 1) {
        // One mint would push a balance past the maximum; find it by running each alone.
        for (const item of items) item.solo = true;
        for (const item of items) this.route(item);
        return;
      }
      const failure = isCheckViolation(err) && items[0] ? balanceOverflow(items[0].cmd.payee.owner) : err;
      for (const item of items) item.reject(failure);
      return;
    }
    let credits = false;
    actions.forEach((action, i) => {
      const item = items[i];
      if (!item) return;
      if ('done' in action) {
        if (!action.done.replayed && item.cmd.mode === 'move') credits = true;
        item.resolve(action.done);
      } else if ('fail' in action) item.reject(action.fail);
      else if ('again' in action) this.route(item);
      else void this.retryLater(item, action.refusal);
    });
    if (credits) this.opts.onCredits?.(shard.id);
  }

  private async retryLater(item: Item, refusal: Refusal): Promise<void> {
    try {
      await this.router.afterRefusal(item.cmd.homeBucket, refusal, item.mapVersion, item.startedAt);
      this.route(item);
    } catch (err) {
      item.reject(err);
    }
  }

  private async executeWithRetries(shard: Shard, items: Item[]): Promise<Action[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await retrying(() => withConnection(shard.pool, (conn) => this.execute(conn, items)));
      } catch (err) {
        if (!(err instanceof DuplicateRace) || attempt >= 5) throw err instanceof DuplicateRace ? new Error('transfer id insert kept racing', { cause: err }) : err;
      }
    }
  }

  private async execute(conn: PoolConnection, items: Item[]): Promise<Action[]> {
    const now = this.clock();
    const day = dayOf(now, this.opts.timeZone);
    const lockKeys = items.map(({ cmd: c }): LockKey => {
      const [bucket, a] = c.mode === 'mint' ? [c.payeeBucket, c.payee] : [c.payerBucket, c.payer];
      return { bucket, owner: a.owner, ownerId: BigInt(a.owner), asset: a.asset };
    });
    const ordered = items.map((_, i) => i).sort((a, b) => compareAccounts(lockKeys[a]!, lockKeys[b]!));

    // Round trip 1: share-lock the home buckets' states and look up the ids; then every debit (or
    // a mint's credit) in lock order, each debit one statement that checks and applies atomically,
    // each run of mints next to each other in that order one multi-row upsert (a mint checks
    // nothing, and an account twice in the run is simply added to twice); then the balances as
    // left. The debits are sent optimistically, before the lookups are read: if any id turns out
    // to be used already, or a bucket not writable here, the transaction is rolled back and the
    // other requests go round again (rare: retries and migrations).
    const st1 = new Statements();
    st1.add('START TRANSACTION');
    const iStates = lockBuckets(st1, items.map((i) => i.cmd.homeBucket));
    const iExisting = st1.add(
      `SELECT ${TRANSFER_SELECT} FROM transfers t WHERE ${keyIn(TRANSFERS, items.length, 't.')}`,
      items.flatMap((i) => [i.cmd.homeBucket, BigInt(i.cmd.homeOwner), i.cmd.transferId]),
    );
    const opIndex = new Map<number, number>();
    let mints: number[] = [];
    const flushMints = () => {
      if (mints.length === 0) return;
      const at = st1.add(
        'INSERT INTO accounts (bucket, owner_id, asset, balance, allow_negative, created_at, updated_at) VALUES ? ' +
          'ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance), updated_at = VALUES(updated_at)',
        [mints.map((i) => [lockKeys[i]!.bucket, lockKeys[i]!.ownerId, lockKeys[i]!.asset, items[i]!.cmd.amount, 0, now, now])],
      );
      for (const i of mints) opIndex.set(i, at);
      mints = [];
    };
    for (const i of ordered) {
      const c = items[i]!.cmd;
      const a = lockKeys[i]!;
      if (c.mode === 'mint') {
        mints.push(i);
        continue;
      }
      flushMints();
      opIndex.set(
        i,
        st1.add('UPDATE accounts SET balance = balance - ?, updated_at = ? WHERE bucket = ? AND owner_id = ? AND asset = ? AND (balance >= ? OR allow_negative = 1)', [
          c.amount,
          now,
          a.bucket,
          a.ownerId,
          a.asset,
          c.amount,
        ]),
      );
    }
    flushMints();
    const accountKeys = uniqueAccounts(lockKeys);
    const balMatch = keyMatch(ACCOUNTS, accountKeys.map((a) => [a.bucket, a.ownerId, a.asset]));
    const iBalances = st1.add(`SELECT bucket, owner_id, asset, balance FROM accounts WHERE ${balMatch.sql}`, balMatch.params);
    const r1 = await st1.run(conn);
    const states = bucketStates(r1[iStates]);
    const existing = new Map(rowsOf<TransferRow>(r1[iExisting]).map((r) => [key(String(r.home_owner_id), String(r.transfer_id)), r]));
    const finals = new Map(rowsOf<{ bucket: number; owner_id: string; asset: number; balance: string }>(r1[iBalances]).map((r) => [`${r.bucket}/${r.owner_id}/${r.asset}`, big(r.balance)]));

    const actions: Action[] = new Array<Action>(items.length);
    const fresh: number[] = [];
    items.forEach((item, i) => {
      const state = states.get(item.cmd.homeBucket);
      const row = existing.get(key(item.cmd.homeOwner, item.cmd.transferId));
      if (state === BucketDb.FENCED) actions[i] = { refusal: 'fenced' };
      else if (!isWritable(state)) actions[i] = { refusal: 'moved' };
      else if (row) actions[i] = replay(item.cmd, row);
      else fresh.push(i);
    });
    if (fresh.length < items.length) {
      await conn.query('ROLLBACK');
      for (const i of fresh) actions[i] = { again: true };
      return actions;
    }

    // Walk each account's operations backwards from its final balance to get every balance-after
    // (and, for a debit that did not fit, the balance it saw).
    const ok = new Map<number, boolean>();
    const after = new Map<number, bigint>();
    const running = new Map<string, bigint>();
    for (const i of [...ordered].reverse()) {
      const a = lockKeys[i]!;
      const k = `${a.bucket}/${a.owner}/${a.asset}`;
      const bal = running.get(k) ?? finals.get(k) ?? 0n;
      const c = items[i]!.cmd;
      const applied = affected(r1[opIndex.get(i)!]) > 0;
      ok.set(i, applied);
      after.set(i, bal);
      running.set(k, applied ? (c.mode === 'mint' ? bal - c.amount : bal + c.amount) : bal);
    }

    // Round trip 2: record what was applied, and commit.
    const st3 = new Statements();
    const log = new ChangeLog(states);
    const transfers: unknown[][] = [];
    const entries: unknown[][] = [];
    const outbox: unknown[][] = [];
    const records = new Map<number, TransferRecord>();
    for (const i of fresh) {
      const c = items[i]!.cmd;
      if (!ok.get(i)) {
        actions[i] = { fail: insufficientFunds(c.payer.owner, after.get(i) ?? 0n, c.amount) };
        continue;
      }
      const balanceAfter = after.get(i) ?? 0n;
      const t: TransferRecord = {
        transferId: c.transferId,
        homeOwner: c.homeOwner,
        kind: c.kind,
        status: c.mode === 'move' ? 'pending' : 'settled',
        payer: c.payer,
        payee: c.payee,
        payerBucket: c.payerBucket,
        payeeBucket: c.payeeBucket,
        amount: c.amount,
        debitBalanceAfter: c.mode === 'mint' ? 0n : balanceAfter,
        creditBalanceAfter: c.mode === 'mint' ? balanceAfter : 0n,
        reference: c.reference,
        createdBy: c.createdBy,
        createdAt: now,
        settledAt: c.mode === 'move' ? null : now,
        day,
      };
      records.set(i, t);
      transfers.push(transferValues(t, c.homeBucket, c.requestHash));
      log.note(c.homeBucket, 'transfers', [c.homeBucket, c.homeOwner, c.transferId]);
      const a = lockKeys[i]!;
      log.note(a.bucket, 'accounts', [a.bucket, a.owner, a.asset]);
      const side = c.mode === 'mint' ? 'credit' : 'debit';
      entries.push(entryValues(t, side, balanceAfter, now));
      log.note(a.bucket, 'entries', [a.bucket, a.owner, a.asset, now, c.homeOwner, c.transferId, side === 'debit' ? 1 : 2]);
      if (c.mode === 'move') {
        outbox.push([c.homeBucket, BigInt(c.homeOwner), c.transferId]);
        log.note(c.homeBucket, 'outbox', [c.homeBucket, c.homeOwner, c.transferId]);
      }
      const balance: BalanceRecord = { asset: a.asset, amount: balanceAfter, pendingCredit: 0n, allowNegative: false, updatedAt: now };
      actions[i] = {
        done: { transfer: t, payerBalance: c.mode === 'mint' ? undefined : balance, payeeBalance: c.mode === 'mint' ? balance : undefined, replayed: false },
      };
    }
    if (transfers.length > 0) {
      st3.add(`INSERT INTO transfers (${TRANSFER_COLUMNS}) VALUES ?`, [transfers]);
      st3.add(`INSERT INTO entries (${ENTRY_COLUMNS}) VALUES ?`, [entries]);
      if (outbox.length > 0) st3.add('INSERT INTO outbox (bucket, home_owner_id, transfer_id) VALUES ?', [outbox]);
      log.addTo(st3);
    }
    st3.add('COMMIT');
    try {
      await st3.run(conn);
    } catch (err) {
      if (isDuplicate(err)) {
        await conn.query('ROLLBACK');
        throw new DuplicateRace();
      }
      throw err;
    }
    return actions;
  }
}

/** Takes up to `max` items, at most one per transfer id (a concurrent retry waits for the next batch and then replays). */
function takeBatch(queue: Item[], max: number): Item[] {
  const first = queue[0];
  if (first?.solo) return [queue.shift()!];
  const batch: Item[] = [];
  const keys = new Set<string>();
  const rest: Item[] = [];
  for (const item of queue) {
    const k = key(item.cmd.homeOwner, item.cmd.transferId);
    if (batch.length < max && !keys.has(k) && !item.solo) {
      batch.push(item);
      keys.add(k);
    } else rest.push(item);
  }
  queue.splice(0, queue.length, ...rest);
  return batch;
}

function uniqueAccounts<T extends { bucket: number; owner: string; asset: number }>(list: T[]): T[] {
  const seen = new Map<string, T>();
  for (const a of list) seen.set(`${a.bucket}/${a.owner}/${a.asset}`, a);
  return [...seen.values()];
}

/** A transfer id seen before: the original outcome for an identical request, otherwise why not. */
function replay(cmd: Planned, row: TransferRow): Action {
  const t = transferFromRow(row);
  if (t.status === 'voided') return { fail: transferVoided(cmd.transferId) };
  if (!Buffer.from(row.request_hash).equals(cmd.requestHash)) return { fail: idempotencyKeyReused(cmd.transferId, 'transfer_id') };
  const mint = cmd.mode === 'mint';
  const balance: BalanceRecord = {
    asset: mint ? t.payee.asset : t.payer.asset,
    amount: mint ? t.creditBalanceAfter : t.debitBalanceAfter,
    pendingCredit: 0n,
    allowNegative: false,
    updatedAt: mint ? t.settledAt : t.createdAt,
  };
  return { done: { transfer: t, payerBalance: mint ? undefined : balance, payeeBalance: mint ? balance : undefined, replayed: true } };
}
