import { randomBytes } from 'node:crypto';
import type { PoolConnection } from 'mysql2/promise';
import { idempotencyKeyReused } from '../../../kit/domain-error.js';
import type { Logger } from '../../../kit/logger.js';
import { untilDone } from '../../../kit/streams.js';
import { bucketAlreadyOnShard, migrationInProgress, migrationNotFound, shardNotFound } from '../errors.js';
import { BucketDb } from './buckets-db.js';
import { affected, sleep, type Row, type Shard } from './db.js';
import type { BucketRouter } from './router.js';
import { BUCKET_TABLES, bindable, decodeKey, keyMatch, tableSpec, upsertSql, type BucketTable } from './schema.js';
import { hashedKey, type ShardMapStore } from './shard-map.js';
import type { MigrationPhase, MigrationRecord } from '../ports.js';

export type { MigrationPhase, MigrationRecord } from '../ports.js';

export interface MigratorOptions {
  log: Logger;
  /** Rows per copy chunk and per replayed change batch. */
  chunkRows: number;
  /** Keep catching up while more than this many changes are waiting; then fence. */
  fenceBelowLag: number;
  /** Named MySQL locks make sure one replica drives a migration; they live on this shard's server. */
  lockShard: Shard;
  /** Distinguishes this deployment's lock names from another's on the same server. */
  lockScope: string;
}

const terminal = (p: MigrationPhase) => p === 'DONE' || p === 'FAILED';
const migrationKey = (id: string) => `migration.${id}`;

/**
 * Online bucket migration. One replica drives each migration (a MySQL named lock; if the driver
 * dies the lock goes with its connection and another replica resumes from the recorded phase):
 *
 * 1. COPYING: the source marks the bucket MIGRATING, from which moment every writer also records
 *    the keys it changes (bucket_changes, in the same transaction); then the bucket's rows are
 *    copied to the target in primary-key chunks while the source keeps serving.
 * 2. CATCHING_UP: recorded changes are replayed (the row as it is now on the source, or its
 *    deletion) until few remain.
 * 3. FENCED: the source marks the bucket FENCED, which waits for in-flight writers and holds new
 *    ones (they wait, they do not fail); the last changes are replayed and the copy is checked.
 * 4. CUT_OVER: the target takes the bucket, the source lets go, the map moves; held writers
 *    follow the map to the target.
 * 5. CLEANING: the source's copy is deleted.
 *
 * Nothing is lost or duplicated because the writers and the migration meet at one row lock per
 * bucket: every change either committed before the copy read it, or was logged and replayed, and
 * none can commit between the last replay and the cut-over.
 */
export class Migrator {
  private readonly running = new Set<string>();
  private resumer: NodeJS.Timeout | undefined;
  private stopWatch: (() => void) | undefined;

  constructor(
    private readonly router: BucketRouter,
    private readonly store: ShardMapStore,
    private readonly opts: MigratorOptions,
  ) {}

  async start(bucket: number, target: number, requestId: string): Promise<MigrationRecord> {
    const requestKey = hashedKey('migreq', requestId);
    const earlier = await this.store.getJson<{ id: string; bucket: number; target: number }>(requestKey);
    if (earlier) {
      if (earlier.bucket !== bucket || earlier.target !== target) throw idempotencyKeyReused(requestId, 'request_id');
      return this.get(earlier.id);
    }
    if (!this.router.shards.has(target)) throw shardNotFound(target);
    const id = `mig-${bucket}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    let source = -1;
    await this.store.update((map) => {
      const b = map.buckets[bucket];
      if (!b) throw new Error(`bucket ${bucket} missing from the map`);
      if (!map.shards.some((s) => s.id === target)) throw shardNotFound(target);
      if (b.state !== 'serving') throw migrationInProgress(bucket, b.migrationId);
      if (b.shard === target) throw bucketAlreadyOnShard(bucket, target);
      source = b.shard;
      map.buckets[bucket] = { shard: b.shard, state: 'migrating', migrationId: id };
      return map;
    });
    const now = new Date().toISOString();
    const record: MigrationRecord = {
      id,
      requestId,
      bucket,
      source,
      target,
      phase: 'COPYING',
      rowsTotal: 0,
      rowsCopied: 0,
      lagRows: 0,
      fenceMs: null,
      error: '',
      createdAt: now,
      updatedAt: now,
      endedAt: null,
    };
    await this.store.putJson(migrationKey(id), record);
    await this.store.putJson(requestKey, { id, bucket, target });
    void this.drive(record);
    return record;
  }

  async get(id: string): Promise<MigrationRecord> {
    const record = /^[A-Za-z0-9-]{1,64}$/.test(id) ? await this.store.getJson<MigrationRecord>(migrationKey(id)) : undefined;
    if (!record) throw migrationNotFound(id);
    return record;
  }

  /**
   * Looks for unfinished migrations whose driver is gone, now and every `everyMs`, and resumes
   * them. The records are followed with one KV watch, kept in memory, so the periodic look costs
   * NATS nothing; listing the keys every time created an ephemeral consumer per look.
   */
  startResuming(everyMs = 2000): void {
    const unfinished = new Map<string, MigrationRecord>();
    const scan = async () => {
      for (const record of [...unfinished.values()]) {
        if (this.running.has(record.id)) continue;
        try {
          await this.drive(record);
        } catch (err) {
          this.opts.log.warn({ err, migration: record.id }, 'migration: resuming an unfinished migration failed');
        }
      }
    };
    const stopped = new AbortController();
    this.stopWatch = () => stopped.abort();
    void untilDone(
      'migration watch',
      () =>
        this.store.watchJson<MigrationRecord>('migration.*', (key, record) => {
          if (record && !terminal(record.phase)) unfinished.set(key, record);
          else unfinished.delete(key);
        }, this.opts.log),
      this.opts.log,
      { signal: stopped.signal },
    ).then((watch) => {
      if (stopped.signal.aborted) watch.stop();
      else this.stopWatch = () => watch.stop();
      void scan();
    }, () => undefined);
    this.resumer = setInterval(() => void scan(), everyMs);
    this.resumer.unref();
  }

  stopResuming(): void {
    if (this.resumer) clearInterval(this.resumer);
    this.stopWatch?.();
  }

  /** Drives a migration if no other replica is: holds the bucket's named lock for the whole run. */
  private async drive(record: MigrationRecord): Promise<void> {
    if (this.running.has(record.id)) return;
    this.running.add(record.id);
    let lockConn: PoolConnection | undefined;
    const lockName = `lm_ledger_mig_${this.opts.lockScope}_${record.bucket}`.slice(0, 64);
    try {
      lockConn = await this.opts.lockShard.pool.getConnection();
      const [rows] = await lockConn.query<Row[]>('SELECT GET_LOCK(?, 0) AS ok', [lockName]);
      if (Number(rows[0]?.ok) !== 1) return;
      const fresh = await this.store.getJson<MigrationRecord>(migrationKey(record.id));
      if (!fresh || terminal(fresh.phase)) return;
      await new Run(fresh, this.router, this.store, this.opts).execute();
    } catch (err) {
      this.opts.log.error({ err, migration: record.id }, 'migration: driver failed');
    } finally {
      this.running.delete(record.id);
      if (lockConn) {
        await lockConn.query('SELECT RELEASE_LOCK(?)', [lockName]).catch(() => {});
        lockConn.release();
      }
    }
  }
}

/** One migration being driven. */
class Run {
  private lastSaved = 0;
  /** Logged changes replayed onto the target (catch-up and fence), for the log. */
  private replayed = 0;
  private readonly source: Shard;
  private readonly target: Shard;

  constructor(
    private readonly m: MigrationRecord,
    private readonly router: BucketRouter,
    private readonly store: ShardMapStore,
    private readonly opts: MigratorOptions,
  ) {
    const source = router.shards.get(m.source);
    const target = router.shards.get(m.target);
    if (!source || !target) throw new Error(`migration ${m.id}: shard ${m.source} or ${m.target} not configured here`);
    this.source = source;
    this.target = target;
  }

  async execute(): Promise<void> {
    const log = this.opts.log.child({ migration: this.m.id, bucket: this.m.bucket, source: this.m.source, target: this.m.target });
    log.info({ phase: this.m.phase }, 'migration: driving');
    try {
      if (this.m.phase === 'COPYING' || this.m.phase === 'CATCHING_UP') {
        await this.copy();
        await this.catchUp();
        await this.fence();
      } else if (this.m.phase === 'FENCED') {
        await this.fence();
      }
      if (this.m.phase === 'CUT_OVER') await this.cutOver();
      if (this.m.phase === 'CLEANING') await this.clean();
      log.info({ fenceMs: this.m.fenceMs, rows: this.m.rowsCopied, replayed: this.replayed }, 'migration: done');
    } catch (err) {
      log.error({ err }, 'migration: failed');
      if (this.m.phase === 'COPYING' || this.m.phase === 'CATCHING_UP' || this.m.phase === 'FENCED') await this.abort(err);
      else throw err;
    }
  }

  private async save(phase?: MigrationPhase, force = true): Promise<void> {
    if (phase) this.m.phase = phase;
    if (!force && Date.now() - this.lastSaved < 250) return;
    this.m.updatedAt = new Date().toISOString();
    if (terminal(this.m.phase)) this.m.endedAt = this.m.updatedAt;
    this.lastSaved = Date.now();
    await this.store.putJson(migrationKey(this.m.id), this.m);
  }

  private async setState(shard: Shard, state: number, from: number[]): Promise<number> {
    const [res] = await shard.pool.query('UPDATE bucket_state SET state = ?, migration_id = ?, updated_at = ? WHERE bucket = ? AND state IN (?)', [
      state,
      state === BucketDb.NOT_OWNED || state === BucketDb.OWNED ? '' : this.m.id,
      new Date(),
      this.m.bucket,
      from,
    ]);
    return affected(res);
  }

  private async copy(): Promise<void> {
    await this.save('COPYING');
    const b = this.m.bucket;
    const [targetState] = await this.target.pool.query<Row[]>('SELECT state FROM bucket_state WHERE bucket = ?', [b]);
    if (Number(targetState[0]?.state) !== BucketDb.NOT_OWNED) throw new Error(`target shard ${this.m.target} already serves bucket ${b}`);
    // Leftovers of an earlier attempt on the target, and of its change log on the source.
    for (const t of BUCKET_TABLES) await deleteBucketRows(this.target, t.name, b, this.opts.chunkRows);
    await this.source.pool.query('DELETE FROM bucket_changes WHERE bucket = ?', [b]);
    // From here on every write to the bucket on the source is logged.
    if ((await this.setState(this.source, BucketDb.MIGRATING, [BucketDb.OWNED, BucketDb.MIGRATING])) !== 1) {
      throw new Error(`source shard ${this.m.source} does not own bucket ${b}`);
    }
    let total = 0;
    for (const t of BUCKET_TABLES) {
      const [rows] = await this.source.pool.query<Row[]>(`SELECT COUNT(*) AS n FROM ${t.name} WHERE bucket = ?`, [b]);
      total += Number(rows[0]?.n ?? 0);
    }
    this.m.rowsTotal = total;
    this.m.rowsCopied = 0;
    await this.save();
    for (const t of BUCKET_TABLES) {
      let after: unknown[] | undefined;
      for (;;) {
        const { sql, params } = afterKey(t, after);
        const [rows, fields] = await this.source.pool.query<Row[]>(
          `SELECT * FROM ${t.name} WHERE bucket = ?${sql ? ` AND (${sql})` : ''} ORDER BY ${t.key.map(([c]) => c).join(', ')} LIMIT ?`,
          [b, ...params, this.opts.chunkRows],
        );
        if (rows.length === 0) break;
        const { columns, values } = bindable(rows, fields);
        await this.target.pool.query(upsertSql(t, columns), [values]);
        const last = rows[rows.length - 1]!;
        after = t.key.slice(1).map(([c]): unknown => last[c]);
        this.m.rowsCopied += rows.length;
        await this.save(undefined, false);
        if (rows.length < this.opts.chunkRows) break;
      }
    }
    await this.save();
  }

  private async catchUp(): Promise<void> {
    await this.save('CATCHING_UP');
    for (let round = 0; round < 200; round++) {
      await this.replay(this.opts.chunkRows);
      this.m.lagRows = await this.lag();
      await this.save(undefined, false);
      if (this.m.lagRows <= this.opts.fenceBelowLag) return;
    }
  }

  private async lag(): Promise<number> {
    const [rows] = await this.source.pool.query<Row[]>('SELECT COUNT(*) AS n FROM bucket_changes WHERE bucket = ?', [this.m.bucket]);
    return Number(rows[0]?.n ?? 0);
  }

  /** Replays up to `limit` logged changes: each row as it is now on the source, or its deletion. */
  private async replay(limit: number): Promise<number> {
    const [changes] = await this.source.pool.query<Row[]>('SELECT id, table_name, row_key FROM bucket_changes WHERE bucket = ? ORDER BY id LIMIT ?', [
      this.m.bucket,
      limit,
    ]);
    if (changes.length === 0) return 0;
    const byTable = new Map<string, Map<string, unknown[]>>();
    for (const c of changes) {
      const t = tableSpec(String(c.table_name));
      let keys = byTable.get(t.name);
      if (!keys) byTable.set(t.name, (keys = new Map<string, unknown[]>()));
      keys.set(String(c.row_key), decodeKey(t, String(c.row_key)));
    }
    for (const [name, keys] of byTable) {
      const t = tableSpec(name);
      const list = [...keys.values()];
      const m = keyMatch(t, list);
      const [rows, fields] = await this.source.pool.query<Row[]>(`SELECT * FROM ${name} WHERE ${m.sql}`, m.params);
      if (rows.length > 0) {
        const { columns, values } = bindable(rows, fields);
        await this.target.pool.query(upsertSql(t, columns), [values]);
      }
      if (rows.length < list.length) {
        const present = new Set(rows.map((r) => keyText(t.key.map(([c]): unknown => r[c]))));
        const gone = list.filter((k) => !present.has(keyText(k)));
        if (gone.length > 0) {
          const d = keyMatch(t, gone);
          await this.target.pool.query(`DELETE FROM ${name} WHERE ${d.sql}`, d.params);
        }
      }
    }
    await this.source.pool.query('DELETE FROM bucket_changes WHERE id IN (?)', [changes.map((c) => BigInt(String(c.id)))]);
    this.replayed += changes.length;
    return changes.length;
  }

  private async fence(): Promise<void> {
    await this.save('FENCED');
    const fencedAt = Date.now();
    // Waits for writers holding the bucket; new writers queue behind this and then see FENCED.
    await this.setState(this.source, BucketDb.FENCED, [BucketDb.MIGRATING, BucketDb.FENCED]);
    while ((await this.replay(this.opts.chunkRows)) > 0);
    this.m.lagRows = 0;
    for (const t of BUCKET_TABLES) {
      const [a] = await this.source.pool.query<Row[]>(`SELECT COUNT(*) AS n FROM ${t.name} WHERE bucket = ?`, [this.m.bucket]);
      const [b] = await this.target.pool.query<Row[]>(`SELECT COUNT(*) AS n FROM ${t.name} WHERE bucket = ?`, [this.m.bucket]);
      if (Number(a[0]?.n) !== Number(b[0]?.n)) throw new Error(`copy check failed for ${t.name}: source ${a[0]?.n} rows, target ${b[0]?.n}`);
    }
    this.m.phase = 'CUT_OVER';
    await this.save();
    await this.cutOver(fencedAt);
  }

  private async cutOver(fencedAt?: number): Promise<void> {
    await this.setState(this.target, BucketDb.OWNED, [BucketDb.NOT_OWNED, BucketDb.OWNED]);
    await this.setState(this.source, BucketDb.NOT_OWNED, [BucketDb.FENCED, BucketDb.NOT_OWNED]);
    if (fencedAt !== undefined) this.m.fenceMs = Date.now() - fencedAt;
    await this.store.update((map) => {
      map.buckets[this.m.bucket] = { shard: this.m.target, state: 'serving', migrationId: '' };
      return map;
    });
    await this.save('CLEANING');
  }

  private async clean(): Promise<void> {
    for (const t of BUCKET_TABLES) await deleteBucketRows(this.source, t.name, this.m.bucket, this.opts.chunkRows);
    await this.source.pool.query('DELETE FROM bucket_changes WHERE bucket = ?', [this.m.bucket]);
    await this.save('DONE');
  }

  /** Before the cut-over nothing has moved: give the bucket back to the source and record why. */
  private async abort(err: unknown): Promise<void> {
    try {
      await this.setState(this.source, BucketDb.OWNED, [BucketDb.MIGRATING, BucketDb.FENCED]);
      await this.source.pool.query('DELETE FROM bucket_changes WHERE bucket = ?', [this.m.bucket]);
      await this.store.update((map) => {
        map.buckets[this.m.bucket] = { shard: this.m.source, state: 'serving', migrationId: '' };
        return map;
      });
      for (const t of BUCKET_TABLES) await deleteBucketRows(this.target, t.name, this.m.bucket, this.opts.chunkRows);
    } finally {
      this.m.error = err instanceof Error ? err.message : String(err);
      await this.save('FAILED');
    }
  }
}

/** Keyset condition "key after `after`" over the key columns following the bucket. */
function afterKey(t: BucketTable, after: unknown[] | undefined): { sql: string; params: unknown[] } {
  if (!after) return { sql: '', params: [] };
  const cols = t.key.slice(1);
  // BIGINT values arrive as strings; bound as bigint they compare as integers, not doubles.
  const bind = (i: number) => (cols[i]?.[1] === 'bigint' ? BigInt(String(after[i])) : after[i]);
  const parts: string[] = [];
  const params: unknown[] = [];
  cols.forEach(([col], i) => {
    parts.push(`(${[...cols.slice(0, i).map(([c]) => `${c} = ?`), `${col} > ?`].join(' AND ')})`);
    for (let j = 0; j <= i; j++) params.push(bind(j));
  });
  return { sql: parts.join(' OR '), params };
}

/** A key as comparable text, whether it came from a row (strings, Dates) or from decodeKey (bigint, Dates). */
const keyText = (values: unknown[]) => JSON.stringify(values.map((v) => (v instanceof Date ? v.toISOString() : String(v))));

async function deleteBucketRows(shard: Shard, table: string, bucket: number, chunk: number): Promise<void> {
  for (;;) {
    const [res] = await shard.pool.query(`DELETE FROM ${table} WHERE bucket = ? LIMIT ?`, [bucket, chunk]);
    if (affected(res) < chunk) return;
    await sleep(0);
  }
}
