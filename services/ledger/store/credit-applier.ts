import type { PoolConnection } from 'mysql2/promise';
import type { Logger } from '../../../kit/logger.js';
import { BUCKET_COUNT } from '../buckets.js';
import { Asset, Kind, type TransferRecord } from '../model.js';
import { bucketStates, ChangeLog, isWritable, lockBuckets } from './buckets-db.js';
import { affected, big, retrying, rowsOf, sleep, Statements, withConnection, type Row, type Shard } from './db.js';
import type { BucketRouter } from './router.js';
import { compareAccounts } from './transfer-engine.js';
import { ENTRY_COLUMNS, entryValues, OUTBOX_JOIN, SideDb, TRANSFER_COLUMNS_T, transferFromOutbox } from './rows.js';
import { keyIn, keyMatch, tableSpec } from './schema.js';

export interface ApplierOptions {
  /** Most outbox rows claimed per cycle; all credits to one account among them become one balance update. */
  batchSize: number;
  /** Pause when a shard's outbox is empty (a local debit wakes the applier at once; this bounds the wait for other replicas' credits). */
  idleMs: number;
  /** Cycles running side by side per shard (they claim disjoint rows with SKIP LOCKED). */
  loopsPerShard: number;
  log: Logger;
  /**
   * Fault injection for the exactly-once test: SIGKILL this process right after a cross-shard
   * credit commits on the payee's shard and before the payer's shard marks it settled, the one
   * moment where a crash could apply a credit twice if the design were wrong. Off unless set.
   */
  killAfterCreditCommit?: boolean;
  clock?: () => Date;
}

export interface ApplierStats {
  cycles: number;
  /** Credits applied (each exactly once). */
  credits: number;
  /** Balance-row updates that carried them: fewer than credits when credits were aggregated. */
  balanceUpdates: number;
  /** Claimed credits found already applied (a previous attempt died before settling them). */
  alreadyApplied: number;
}

const ENTRIES = tableSpec('entries');
const ACCOUNTS = tableSpec('accounts');
const OUTBOX = tableSpec('outbox');


/**
 * The credit side of every user-to-user transfer. It claims rows from a shard's outbox
 * (`FOR UPDATE SKIP LOCKED`, so any number of replicas can run it side by side), applies the
 * credits on the payees' shards and then, on the payer's shard, deletes the outbox rows and marks
 * the transfers settled.
 *
 * Exactly once: the credit entry's primary key is fixed by the transfer, and the payee's shard
 * commits the entry together with the balance change. If the process dies after that commit and
 * before the payer's shard settles, the outbox row is claimed again, the entry is found, and the
 * credit is settled without being applied a second time.
 *
 * Aggregation: the credits of one cycle are summed per account, so a streamer receiving thousands
 * of gifts a second gets one balance update per cycle, while every transfer still gets its own
 * entry with its own balance-after.
 */
export class CreditApplier {
  readonly stats: ApplierStats = { cycles: 0, credits: 0, balanceUpdates: 0, alreadyApplied: 0 };
  private running = false;
  private loops: Promise<void>[] = [];
  private readonly wakers = new Map<number, Set<() => void>>();
  private readonly nudged = new Set<number>();
  private readonly clock: () => Date;
  private nextStart = 0;

  constructor(
    private readonly router: BucketRouter,
    private readonly opts: ApplierOptions,
  ) {
    this.clock = opts.clock ?? (() => new Date());
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    for (const shard of this.router.shards.values()) {
      for (let i = 0; i < this.opts.loopsPerShard; i++) this.loops.push(this.loop(shard));
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const set of this.wakers.values()) for (const wake of set) wake();
    await Promise.all(this.loops);
    this.loops = [];
  }

  /** New credits are waiting in this shard's outbox. */
  nudge(shardId: number): void {
    this.nudged.add(shardId);
    const set = this.wakers.get(shardId);
    if (set) for (const wake of set) wake();
  }

  /**
   * Applies credits until every shard's outbox is empty (for tests, benchmarks and the ops CLI),
   * or throws after `timeoutMs`. Runs alongside the background loops.
   */
  async drain(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let claimed = 0;
      for (const shard of this.router.shards.values()) claimed += await this.cycle(shard);
      if (claimed === 0 && (await this.pendingCount()) === 0) return;
      if (Date.now() > deadline) throw new Error(`credit applier: outbox not empty after ${timeoutMs} ms`);
      if (claimed === 0) await sleep(20);
    }
  }

  /** Outbox rows in buckets their shard serves, across all shards. */
  async pendingCount(): Promise<number> {
    let n = 0;
    for (const shard of this.router.shards.values()) {
      const [rows] = await shard.pool.query<Row[]>(
        'SELECT COUNT(*) AS n FROM outbox WHERE bucket IN (SELECT bucket FROM bucket_state WHERE state IN (1, 2, 3))',
      );
      n += Number(rows[0]?.n ?? 0);
    }
    return n;
  }

  private async loop(shard: Shard): Promise<void> {
    let failures = 0;
    while (this.running) {
      let claimed = 0;
      try {
        this.nudged.delete(shard.id);
        claimed = await this.cycle(shard);
        failures = 0;
      } catch (err) {
        failures++;
        this.opts.log.warn({ err, shard: shard.id }, 'credit applier: cycle failed; retrying');
        await sleep(Math.min(2000, 50 * 2 ** Math.min(failures, 6)));
        continue;
      }
      if (claimed >= this.opts.batchSize || this.nudged.has(shard.id)) continue;
      await this.idle(shard.id);
    }
  }

  private idle(shardId: number): Promise<void> {
    return new Promise((resolve) => {
      let set = this.wakers.get(shardId);
      if (!set) this.wakers.set(shardId, (set = new Set()));
      const wake = () => {
        clearTimeout(timer);
        set.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, this.opts.idleMs);
      set.add(wake);
    });
  }

  /** One cycle on one payer shard; returns how many outbox rows it claimed. */
  cycle(shard: Shard): Promise<number> {
    return retrying(() => withConnection(shard.pool, (conn) => this.cycleOn(shard, conn)));
  }

  private async cycleOn(shard: Shard, conn: PoolConnection): Promise<number> {
    this.stats.cycles++;
    const st = new Statements();
    st.add('START TRANSACTION');
    const iOwned = st.add('SELECT bucket, state FROM bucket_state WHERE state IN (1, 2) LOCK IN SHARE MODE');
    const homeStates = bucketStates((await st.run(conn))[iOwned]);
    if (homeStates.size === 0) {
      await conn.query('COMMIT');
      return 0;
    }
    // Primary-key order from a start bucket that moves on every cycle: no index to maintain on
    // every debit, and no bucket waits behind a busy one for long.
    const start = this.nextStart++ % BUCKET_COUNT;
    const owned = [...homeStates.keys()];
    const [claimed] = await conn.query<Row[]>(
      `SELECT ${TRANSFER_COLUMNS_T} FROM ${OUTBOX_JOIN} WHERE o.bucket IN (?) AND o.bucket >= ? ORDER BY o.bucket, o.home_owner_id, o.transfer_id LIMIT ? FOR UPDATE SKIP LOCKED`,
      [owned, start, this.opts.batchSize],
    );
    if (claimed.length < this.opts.batchSize && start > 0) {
      const [more] = await conn.query<Row[]>(
        `SELECT ${TRANSFER_COLUMNS_T} FROM ${OUTBOX_JOIN} WHERE o.bucket IN (?) AND o.bucket < ? ORDER BY o.bucket, o.home_owner_id, o.transfer_id LIMIT ? FOR UPDATE SKIP LOCKED`,
        [owned, start, this.opts.batchSize - claimed.length],
      );
      claimed.push(...more);
    }
    if (claimed.length === 0) {
      await conn.query('COMMIT');
      return 0;
    }
    const now = this.clock();
    const byShard = new Map<number, TransferRecord[]>();
    for (const row of claimed) {
      const t = transferFromOutbox(row);
      const dest = this.router.view.shardOf(t.payeeBucket);
      let list = byShard.get(dest);
      if (!list) byShard.set(dest, (list = []));
      list.push(t);
    }
    // Other shards first, each in its own transaction, while this one holds only the claimed
    // rows: a credit transaction never waits for account locks while holding account locks.
    const settled: TransferRecord[] = [];
    let crossed = false;
    for (const [dest, group] of byShard) {
      if (dest === shard.id) continue;
      const target = this.router.shards.get(dest);
      if (!target) continue;
      const done = await retrying(() => withConnection(target.pool, (c) => this.applyCredits(c, group, now, true)));
      settled.push(...done);
      crossed ||= done.length > 0;
    }
    if (crossed && this.opts.killAfterCreditCommit) {
      this.opts.log.warn('fault injection: SIGKILL after a cross-shard credit commit, before settling it');
      process.kill(process.pid, 'SIGKILL');
    }
    const local = byShard.get(shard.id);
    if (local) settled.push(...(await this.applyCredits(conn, local, now, false)));

    // Settling is deleting the outbox row: the transfer row itself never changes.
    const st2 = new Statements();
    const log = new ChangeLog(homeStates);
    if (settled.length > 0) {
      const keys = settled.map((t) => [t.payerBucket, BigInt(t.homeOwner), t.transferId]);
      st2.add(`DELETE FROM outbox WHERE ${keyIn(OUTBOX, keys.length)}`, keys.flat());
      for (const [b, home, id] of keys) log.note(b as number, 'outbox', [b, home, id]);
      log.addTo(st2);
    }
    st2.add('COMMIT');
    await st2.run(conn);
    return claimed.length;
  }

  /**
   * Applies credits on the payees' shard: skips those already applied (found by the entry's key)
   * and those whose bucket the shard cannot write now (fenced, or moved: they stay in the outbox
   * for a later cycle), then one balance update per account and one entry per credit.
   */
  private async applyCredits(conn: PoolConnection, group: TransferRecord[], now: Date, ownTransaction: boolean): Promise<TransferRecord[]> {
    const st = new Statements();
    if (ownTransaction) st.add('START TRANSACTION');
    const iStates = lockBuckets(st, group.map((t) => t.payeeBucket));
    const m = keyMatch(ENTRIES, group.map(creditKey));
    const iDone = st.add(`SELECT home_owner_id, transfer_id FROM entries WHERE ${m.sql}`, m.params);
    const r = await st.run(conn);
    const states = bucketStates(r[iStates]);
    const done = new Set(rowsOf<Row>(r[iDone]).map((x) => `${String(x.home_owner_id)}/${String(x.transfer_id)}`));

    const settled: TransferRecord[] = [];
    const apply: TransferRecord[] = [];
    for (const t of group) {
      if (done.has(`${t.homeOwner}/${t.transferId}`)) {
        settled.push(t);
        this.stats.alreadyApplied++;
      } else if (isWritable(states.get(t.payeeBucket))) apply.push(t);
    }
    if (apply.length === 0) {
      if (ownTransaction) await conn.query('COMMIT');
      return settled;
    }

    // One balance update per account, in lock order.
    const sums = new Map<string, { bucket: number; owner: string; ownerId: bigint; asset: number; sum: bigint }>();
    for (const t of apply) {
      const k = `${t.payeeBucket}/${t.payee.owner}/${t.payee.asset}`;
      let s = sums.get(k);
      if (!s) sums.set(k, (s = { bucket: t.payeeBucket, owner: t.payee.owner, ownerId: BigInt(t.payee.owner), asset: t.payee.asset, sum: 0n }));
      s.sum += t.amount;
    }
    const accounts = [...sums.values()].sort(compareAccounts);
    const st2 = new Statements();
    const iUp = st2.add(
      'INSERT INTO accounts (bucket, owner_id, asset, balance, allow_negative, created_at, updated_at) VALUES ? ' +
        'ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance), updated_at = VALUES(updated_at)',
      [accounts.map((a) => [a.bucket, a.ownerId, a.asset, a.sum, 0, now, now])],
    );
    const bm = keyMatch(ACCOUNTS, accounts.map((a) => [a.bucket, a.ownerId, a.asset]));
    const iBal = st2.add(`SELECT bucket, owner_id, asset, balance FROM accounts WHERE ${bm.sql}`, bm.params);
    const r2 = await st2.run(conn);
    if (affected(r2[iUp]) === 0) throw new Error('credit applier: balance upsert changed nothing');
    const finals = new Map(rowsOf<Row>(r2[iBal]).map((x) => [`${Number(x.bucket)}/${String(x.owner_id)}/${Number(x.asset)}`, big(x.balance)]));

    // Balance-after per credit: the account's balance before this cycle plus the credits up to it.
    const runningBalance = new Map<string, bigint>();
    for (const [k, s] of sums) runningBalance.set(k, (finals.get(k) ?? s.sum) - s.sum);
    const st3 = new Statements();
    const log = new ChangeLog(states);
    const entries: unknown[][] = [];
    const income = new Map<string, { bucket: number; owner: string; day: string; sum: bigint; count: number }>();
    for (const t of apply) {
      const k = `${t.payeeBucket}/${t.payee.owner}/${t.payee.asset}`;
      const after = (runningBalance.get(k) ?? 0n) + t.amount;
      runningBalance.set(k, after);
      entries.push(entryValues(t, 'credit', after, now));
      log.note(t.payeeBucket, 'entries', creditKey(t));
      settled.push(t);
      if (t.kind === Kind.GIFT && t.payee.asset === Asset.INCOME) {
        const ik = `${t.payeeBucket}/${t.payee.owner}/${t.day}`;
        const s = income.get(ik) ?? { bucket: t.payeeBucket, owner: t.payee.owner, day: t.day, sum: 0n, count: 0 };
        s.sum += t.amount;
        s.count++;
        income.set(ik, s);
      }
    }
    for (const a of accounts) log.note(a.bucket, 'accounts', [a.bucket, a.owner, a.asset]);
    st3.add(`INSERT INTO entries (${ENTRY_COLUMNS}) VALUES ?`, [entries]);
    if (income.size > 0) {
      const rows = [...income.values()].sort((a, b) => a.bucket - b.bucket || (BigInt(a.owner) < BigInt(b.owner) ? -1 : 1));
      st3.add(
        'INSERT INTO daily_income (bucket, streamer_id, day, income, transfer_count, reconciled, updated_at) VALUES ? ' +
          'ON DUPLICATE KEY UPDATE income = income + VALUES(income), transfer_count = transfer_count + VALUES(transfer_count), reconciled = 0, updated_at = VALUES(updated_at)',
        [rows.map((s) => [s.bucket, BigInt(s.owner), s.day, s.sum, s.count, 0, now])],
      );
      for (const s of rows) log.note(s.bucket, 'daily_income', [s.bucket, s.owner, s.day]);
    }
    log.addTo(st3);
    if (ownTransaction) st3.add('COMMIT');
    await st3.run(conn);
    this.stats.credits += apply.length;
    this.stats.balanceUpdates += accounts.length;
    return settled;
  }
}

const creditKey = (t: TransferRecord): unknown[] => [t.payeeBucket, BigInt(t.payee.owner), t.payee.asset, t.createdAt, BigInt(t.homeOwner), t.transferId, SideDb.CREDIT];
