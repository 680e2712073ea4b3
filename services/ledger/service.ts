import { createHash } from 'node:crypto';
import { Counter, Gauge } from 'prom-client';
import { z } from 'zod';
import { LedgerServiceService } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { ConfigError, flag, int, list, port } from '../../kit/config.js';
import { migrate } from '../../kit/migrate.js';
import { databaseInUrl } from '../../kit/mysql.js';
import { connectNats } from '../../kit/nats.js';
import { untilDone } from '../../kit/streams.js';
import { fromRoot } from '../../kit/paths.js';
import type { ServiceConfig, ServiceHost } from '../../kit/server.js';
import { checkTimeZone } from './days.js';
import { LEDGER_ACCESS, ledgerHandlers } from './handlers.js';
import { Ledger } from './ledger.js';
import { ShardAudits } from './store/audits.js';
import { ensureBucketRows, loadOrCreateMap } from './store/bootstrap.js';
import { CreditApplier } from './store/credit-applier.js';
import { createShardPool, serverOf, type Shard } from './store/db.js';
import { Migrator } from './store/migrator.js';
import { LedgerReads } from './store/reads.js';
import { BucketRouter } from './store/router.js';
import { kvName, ShardMapStore, ShardMapView } from './store/shard-map.js';
import { RoutedSingleWrites } from './store/single-writes.js';
import { TransferEngine } from './store/transfer-engine.js';

/** The Ledger's own settings, on top of the kit's. */
export const ledgerConfigShape = {
  /** Ledger listens on 50053 unless told otherwise (second local replica: 50153). */
  PORT: port(50053),
  /** Base name of the shard databases (`<base>_shard0`, `_shard1`, …); defaults to MYSQL_URL's path, else livemesh_ledger. */
  MYSQL_DATABASE: z.string().regex(/^[A-Za-z0-9_]{1,50}$/, { error: 'must be 1-50 letters, digits or underscores' }).optional(),
  /**
   * Number of shards (default: as many as LEDGER_SHARD_URLS lists, else 2). Adding one later adds an
   * empty shard; buckets move to it by migration.
   */
  LEDGER_SHARDS: z.coerce
    .number({ error: 'must be an integer between 1 and 64' })
    .int({ error: 'must be an integer between 1 and 64' })
    .min(1, { error: 'must be an integer between 1 and 64' })
    .max(64, { error: 'must be an integer between 1 and 64' })
    .optional(),
  /**
   * One MySQL URL per shard, comma-separated in shard order, so each shard can live on its own
   * server; empty puts every shard on MYSQL_URL. A URL's path names that shard's database (default
   * `<base>_shard<N>`). Every replica must list the same servers: each shard database carries an
   * identity that the shard map records, and a replica whose servers do not match refuses to start.
   */
  LEDGER_SHARD_URLS: list().refine((urls) => urls.every(isMysqlUrl), { error: 'must be a comma-separated list of URLs starting with mysql:// or mariadb://' }),
  /** IANA zone that business days (daily income) are counted in. */
  LEDGER_TIME_ZONE: z
    .string()
    .default('UTC')
    .refine(
      (zone) => {
        try {
          checkTimeZone(zone);
          return true;
        } catch {
          return false;
        }
      },
      { error: 'must be an IANA time zone such as UTC or Asia/Shanghai' },
    ),
  /** Most transfers committed together in one shard transaction. */
  LEDGER_BATCH_MAX: int(1, 2000, 200),
  /**
   * Transfer transactions in flight per shard (each holds a pooled connection; keep below
   * MYSQL_POOL_SIZE). Two by default: one collects while the other commits, so batches stay large
   * and CPU per transfer low; more only helps when commits are slow and CPU is plentiful.
   */
  LEDGER_BATCHES_PER_SHARD: int(1, 256, 2),
  /** Whether this replica runs the credit applier (any number of replicas may). */
  LEDGER_APPLIER: flag(true),
  /** Outbox rows per applier cycle. */
  LEDGER_APPLIER_BATCH: int(1, 20_000, 2000),
  /** Applier pause when an outbox is empty; local transfers wake it at once. */
  LEDGER_APPLIER_IDLE_MS: int(1, 60_000, 100),
  /** How long a call may wait for a fenced bucket before it gets UNAVAILABLE. */
  LEDGER_FENCE_WAIT_MS: int(100, 600_000, 30_000),
  /** Fault injection for tests: SIGKILL after a cross-shard credit commits, before it is settled. */
  LEDGER_FAULT_KILL_AFTER_CREDIT_COMMIT: flag(false),
};

export type LedgerConfig = ServiceConfig<typeof ledgerConfigShape>;

const isMysqlUrl = (value: string) => {
  try {
    return ['mysql:', 'mariadb:'].includes(new URL(value).protocol);
  } catch {
    return false;
  }
};

/** Where one shard lives. */
export interface ShardPlace {
  id: number;
  url: string;
  database: string;
}

/**
 * Each shard's server and database, from LEDGER_SHARD_URLS (one server per shard) or MYSQL_URL (all
 * on one). Throws a ConfigError for settings that contradict each other.
 */
export function shardPlaces(config: Pick<LedgerConfig, 'MYSQL_DATABASE' | 'MYSQL_URL' | 'LEDGER_SHARDS' | 'LEDGER_SHARD_URLS'>): { base: string; places: ShardPlace[] } {
  const base = config.MYSQL_DATABASE ?? databaseInUrl(config.MYSQL_URL) ?? 'livemesh_ledger';
  const urls = config.LEDGER_SHARD_URLS;
  if (urls.length > 0 && config.LEDGER_SHARDS !== undefined && config.LEDGER_SHARDS !== urls.length) {
    throw new ConfigError([`LEDGER_SHARDS is ${config.LEDGER_SHARDS} but LEDGER_SHARD_URLS lists ${urls.length} servers: one URL per shard, or leave LEDGER_SHARDS unset`]);
  }
  const count = urls.length || (config.LEDGER_SHARDS ?? 2);
  if (count > 64) throw new ConfigError([`LEDGER_SHARD_URLS lists ${count} servers; at most 64 shards`]);
  const places = Array.from({ length: count }, (_, id): ShardPlace => {
    const url = urls[id] ?? config.MYSQL_URL;
    const database = (urls[id] === undefined ? undefined : databaseInUrl(url)) ?? `${base}_shard${id}`;
    if (!/^[A-Za-z0-9_]{1,64}$/.test(database)) throw new ConfigError([`LEDGER_SHARD_URLS entry ${id} names the database ${JSON.stringify(database)}; use letters, digits and underscores`]);
    return { id, url, database };
  });
  const seen = new Map<string, number>();
  for (const p of places) {
    const key = `${serverOf(p.url)}/${p.database}`;
    const other = seen.get(key);
    if (other !== undefined) throw new ConfigError([`LEDGER_SHARD_URLS puts shards ${other} and ${p.id} in the same database ${p.database} on ${serverOf(p.url)}`]);
    seen.set(key, p.id);
  }
  return { base, places };
}

/** Everything a running Ledger is made of, for the process, the tests and the benchmark. */
export interface LedgerParts {
  ledger: Ledger;
  engine: TransferEngine;
  applier: CreditApplier;
  router: BucketRouter;
  migrator: Migrator;
  mapStore: ShardMapStore;
  reads: LedgerReads;
  shards: Map<number, Shard>;
}

/**
 * Connects the Ledger's dependencies, creates and migrates its shard databases, loads (or on a
 * first start creates) the shard map, follows it, and registers the service on the host.
 */
export async function wireLedger(host: ServiceHost, config: LedgerConfig): Promise<LedgerParts> {
  const log = host.log;
  const { base, places } = shardPlaces(config);
  for (const p of places) {
    await migrate({ url: p.url, database: p.database, dir: fromRoot('services', 'ledger', 'migrations'), log: (line) => log.info(line) });
  }
  const shards = new Map<number, Shard>();
  for (const p of places) shards.set(p.id, { id: p.id, database: p.database, server: serverOf(p.url), pool: createShardPool(p.url, p.database, config.MYSQL_POOL_SIZE) });
  host.onClose('mysql', () => Promise.all([...shards.values()].map((s) => s.pool.end())));

  const nats = await connectNats(config.NATS_URL, `ledger-${config.REPLICA}`, log, { replicas: config.NATS_REPLICAS });
  host.onClose('nats', () => nats.drain());
  // The map is what routes every call, so the Ledger waits for its bucket (offline while its NATS
  // node is down) rather than exiting, which would only restart it into the same wait.
  const mapStore = await untilDone('shard map bucket', () => ShardMapStore.open(nats, kvName(config.NATS_PREFIX, base)), log);
  const map = await untilDone('shard map', () => loadOrCreateMap(mapStore, shards, log), log);
  await ensureBucketRows(shards, map);
  const view = new ShardMapView(map, mapStore);
  const watch = await untilDone('shard map watch', () => mapStore.follow((m) => view.offer(m), log), log);
  host.onClose('shard map watch', () => watch.stop());

  const router = new BucketRouter(shards, view, config.LEDGER_FENCE_WAIT_MS);
  const applier = new CreditApplier(router, {
    batchSize: config.LEDGER_APPLIER_BATCH,
    idleMs: config.LEDGER_APPLIER_IDLE_MS,
    loopsPerShard: 1,
    log,
    killAfterCreditCommit: config.LEDGER_FAULT_KILL_AFTER_CREDIT_COMMIT,
  });
  if (config.LEDGER_FAULT_KILL_AFTER_CREDIT_COMMIT) log.warn('fault injection is ON: LEDGER_FAULT_KILL_AFTER_CREDIT_COMMIT');
  const engine = new TransferEngine(router, {
    maxBatch: config.LEDGER_BATCH_MAX,
    batchesPerShard: config.LEDGER_BATCHES_PER_SHARD,
    timeZone: config.LEDGER_TIME_ZONE,
    log,
    onCredits: (shardId) => applier.nudge(shardId),
  });
  const lockScope = createHash('sha256').update(base).digest('hex').slice(0, 8);
  // Named locks (one driver per migration, one reconcile per day) live on shard 0's server: with
  // shards on several servers every replica still agrees on it, since its identity matches the map.
  const firstShard = shards.get(0);
  if (!firstShard) throw new Error('no shards configured');
  const migrator = new Migrator(router, mapStore, { log, chunkRows: 500, fenceBelowLag: 200, lockShard: firstShard, lockScope });
  const reads = new LedgerReads(router);
  const audits = new ShardAudits(router, { shard: firstShard, scope: lockScope });
  const ledger = new Ledger({ engine, reads, writes: new RoutedSingleWrites(router), audits, migrator, shardMap: view, timeZone: config.LEDGER_TIME_ZONE });

  exportMetrics(host, { engine, applier, view });
  if (config.LEDGER_APPLIER) applier.start();
  host.onClose('credit applier', () => applier.stop());
  migrator.startResuming();
  host.onClose('migrations', () => migrator.stopResuming());
  host.addService(LedgerServiceService, ledgerHandlers(ledger, log), LEDGER_ACCESS);
  log.info({ shards: places.map((p) => `${p.database}@${serverOf(p.url)}`), ledgerId: map.ledgerId, mapVersion: map.version }, 'ledger shards ready');
  return { ledger, engine, applier, router, migrator, mapStore, reads, shards };
}

/**
 * Ledger figures on /metrics: a growing engine backlog means the shards cannot keep up; credits
 * per balance update shows how much the hot-payee aggregation is saving; the map version shows
 * whether every replica has followed a cut-over.
 */
function exportMetrics(host: ServiceHost, parts: { engine: TransferEngine; applier: CreditApplier; view: ShardMapView }): void {
  const registers = [host.metrics.registry];
  const { engine, applier, view } = parts;
  new Counter({
    name: 'ledger_credits_applied_total',
    help: 'Credits applied by this replica\'s credit applier (each exactly once)',
    registers,
    collect() {
      this.reset();
      this.inc(applier.stats.credits);
    },
  });
  new Counter({
    name: 'ledger_credit_balance_updates_total',
    help: 'Balance-row updates that carried those credits (fewer than credits when aggregated)',
    registers,
    collect() {
      this.reset();
      this.inc(applier.stats.balanceUpdates);
    },
  });
  new Gauge({ name: 'ledger_engine_backlog', help: 'Transfers queued or in a transaction on this replica', registers, collect() { this.set(engine.backlog); } });
  new Gauge({ name: 'ledger_shard_map_version', help: 'Version of the shard map this replica follows', registers, collect() { this.set(view.current.version); } });
}
