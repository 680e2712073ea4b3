import type { PoolConnection } from 'mysql2/promise';
import { reconcileInProgress } from '../errors.js';
import { BUCKET_COUNT } from '../buckets.js';
import { Asset, Kind } from '../model.js';
import { BucketDb, ChangeLog } from './buckets-db.js';
import { big, retrying, sleep, Statements, withConnection, type Row, type Shard } from './db.js';
import type { BucketRouter } from './router.js';
import { SideDb } from './rows.js';
import type { ReconcileReport } from '../ports.js';

export type { IncomeMismatch, ReconcileReport } from '../ports.js';

const MAX_REPORTED = 1000;

/**
 * Recomputes one day's income statistics from the credit entries (the detail) and, unless
 * `dryRun`, writes the computed figures back and marks them reconciled. One replica at a time
 * per day (a named lock), and per shard one REPEATABLE READ transaction that locks the day's
 * statistics rows before reading the detail: a credit committed earlier is in both, a credit
 * still running waits on those locks and lands on top of the repaired figure, so the repair
 * never loses a concurrent update.
 */
export async function reconcileDay(
  router: BucketRouter,
  opts: { day: string; streamer: string | undefined; dryRun: boolean; lockShard: Shard; lockScope: string },
): Promise<ReconcileReport> {
  const started = Date.now();
  const lockName = `lm_ledger_rec_${opts.lockScope}_${opts.day}`.slice(0, 64);
  return withConnection(opts.lockShard.pool, async (lockConn) => {
    const [got] = await lockConn.query<Row[]>('SELECT GET_LOCK(?, 0) AS ok', [lockName]);
    if (Number(got[0]?.ok) !== 1) throw reconcileInProgress(opts.day);
    try {
      const report: ReconcileReport = { day: opts.day, streamersChecked: 0, transfersScanned: 0, mismatchCount: 0, mismatches: [], repaired: false, durationMs: 0 };
      // Shards are visited one after another (on their own servers), so a bucket a migration moves
      // meanwhile can be on a visited shard when it is time for it, or on a shard not yet visited
      // and then also on the next: each bucket is reconciled once, on the shard that serves it when
      // its turn comes, and a bucket no pass found is looked for again.
      const covered = new Set<number>();
      for (let pass = 0; pass < 10 && covered.size < BUCKET_COUNT; pass++) {
        for (const shard of router.shards.values()) {
          // A deadlock retried mid-shard reruns the shard's transaction: its figures join the report
          // only once that transaction committed, so a retry never counts twice.
          const done = await retrying(() => withConnection(shard.pool, (conn) => reconcileShard(conn, opts, covered)));
          for (const b of done.buckets) covered.add(b);
          report.streamersChecked += done.found.streamersChecked;
          report.transfersScanned += done.found.transfersScanned;
          report.mismatchCount += done.found.mismatchCount;
          report.mismatches.push(...done.found.mismatches.slice(0, MAX_REPORTED - report.mismatches.length));
        }
      }
      report.repaired = !opts.dryRun && report.mismatchCount > 0;
      report.durationMs = Date.now() - started;
      return report;
    } finally {
      await lockConn.query('SELECT RELEASE_LOCK(?)', [lockName]);
    }
  });
}

type Findings = Pick<ReconcileReport, 'streamersChecked' | 'transfersScanned' | 'mismatchCount' | 'mismatches'>;

/** Reconciles the buckets this shard serves that are not `covered` yet; returns the ones it did and what it found in them. */
async function reconcileShard(
  conn: PoolConnection,
  opts: { day: string; streamer: string | undefined; dryRun: boolean },
  covered: ReadonlySet<number>,
): Promise<{ buckets: number[]; found: Findings }> {
  const report: Findings = { streamersChecked: 0, transfersScanned: 0, mismatchCount: 0, mismatches: [] };
  let states = new Map<number, number>();
  // A fence lasts milliseconds: wait it out rather than skip the bucket.
  for (let attempt = 0; ; attempt++) {
    await conn.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
    await conn.query('START TRANSACTION');
    const [rows] = await conn.query<Row[]>('SELECT bucket, state FROM bucket_state WHERE state IN (1, 2, 3) LOCK IN SHARE MODE');
    states = new Map(rows.map((r) => [Number(r.bucket), Number(r.state)]));
    if (![...states.values()].includes(BucketDb.FENCED) || attempt > 500) break;
    await conn.query('ROLLBACK');
    await sleep(10);
  }
  const buckets = [...states].filter(([b, s]) => s !== BucketDb.FENCED && !covered.has(b)).map(([b]) => b);
  if (buckets.length === 0) {
    await conn.query('COMMIT');
    return { buckets, found: report };
  }
  const streamerFilter = opts.streamer ? ' AND streamer_id = ?' : '';
  const ownerFilter = opts.streamer ? ' AND owner_id = ?' : '';
  const extra = opts.streamer ? [BigInt(opts.streamer)] : [];
  const [recorded] = await conn.query<Row[]>(`SELECT bucket, streamer_id, income, transfer_count FROM daily_income WHERE day = ? AND bucket IN (?)${streamerFilter} FOR UPDATE`, [
    opts.day,
    buckets,
    ...extra,
  ]);
  const [computed] = await conn.query<Row[]>(
    `SELECT bucket, owner_id, SUM(amount) AS income, COUNT(*) AS n FROM entries WHERE day = ? AND asset = ? AND side = ? AND kind = ? AND bucket IN (?)${ownerFilter} GROUP BY bucket, owner_id`,
    [opts.day, Asset.INCOME, SideDb.CREDIT, Kind.GIFT, buckets, ...extra],
  );
  const figures = new Map<string, { bucket: number; streamer: string; rIncome: bigint; rCount: bigint; cIncome: bigint; cCount: bigint }>();
  const at = (bucket: number, streamer: string) => {
    const k = `${bucket}/${streamer}`;
    let f = figures.get(k);
    if (!f) figures.set(k, (f = { bucket, streamer, rIncome: 0n, rCount: 0n, cIncome: 0n, cCount: 0n }));
    return f;
  };
  for (const r of recorded) Object.assign(at(Number(r.bucket), String(r.streamer_id)), { rIncome: big(r.income), rCount: big(r.transfer_count) });
  for (const r of computed) Object.assign(at(Number(r.bucket), String(r.owner_id)), { cIncome: big(r.income), cCount: big(r.n) });

  const now = new Date();
  const fixes: unknown[][] = [];
  const log = new ChangeLog(states);
  for (const f of figures.values()) {
    report.streamersChecked++;
    report.transfersScanned += Number(f.cCount);
    if (f.rIncome === f.cIncome && f.rCount === f.cCount) continue;
    report.mismatchCount++;
    if (report.mismatches.length < MAX_REPORTED) {
      report.mismatches.push({ streamer: f.streamer, recordedIncome: f.rIncome, computedIncome: f.cIncome, recordedCount: f.rCount, computedCount: f.cCount });
    }
    fixes.push([f.bucket, BigInt(f.streamer), opts.day, f.cIncome, f.cCount, 1, now]);
    log.note(f.bucket, 'daily_income', [f.bucket, f.streamer, opts.day]);
  }
  if (opts.dryRun) {
    await conn.query('ROLLBACK');
    return { buckets, found: report };
  }
  if (fixes.length > 0) {
    await conn.query(
      'INSERT INTO daily_income (bucket, streamer_id, day, income, transfer_count, reconciled, updated_at) VALUES ? ' +
        'ON DUPLICATE KEY UPDATE income = VALUES(income), transfer_count = VALUES(transfer_count), reconciled = 1, updated_at = VALUES(updated_at)',
      [fixes],
    );
  }
  for (const r of recorded) if (states.get(Number(r.bucket)) === BucketDb.MIGRATING) log.note(Number(r.bucket), 'daily_income', [r.bucket, r.streamer_id, opts.day]);
  await conn.query(`UPDATE daily_income SET reconciled = 1 WHERE day = ? AND bucket IN (?)${streamerFilter} AND reconciled = 0`, [opts.day, buckets, ...extra]);
  const st = new Statements();
  log.addTo(st);
  st.add('COMMIT');
  await st.run(conn);
  return { buckets, found: report };
}
