/**
 * `npm run bench:ledger`: transfers per second through the Ledger, next to the same MariaDB's raw
 * rate of single-row autocommit INSERTs over the same number of connections, all in one run.
 *
 *   1. raw INSERT: N connections, each inserting one row per autocommit transaction (one durable
 *      commit per row, which is what a one-transaction-per-transfer ledger would pay at best);
 *   2. engine, many payers -> many payees, in this process (TransferEngine.submit);
 *   3. engine, many payers -> one hot payee, in this process;
 *   4. a bare grpc-js echo at the same concurrency, the baseline for what gRPC costs alone;
 *   5. and 6. the same two workloads through gRPC against the real Ledger process
 *      (dist/services/ledger/main.js), from a grpc-js client in this process.
 *
 * Every Ledger run uses two shard databases and N connections in total (N/2 per shard, shared by
 * the transfer engine and the credit applier, which runs throughout: credits are part of the work,
 * not deferred past the measurement). After each in-process run the applier is drained and the
 * time it needed is reported; at the end CheckInvariants must hold, or the run says it is broken.
 * Transfers are gifts of 1 minor unit between funded accounts; latency is per transfer, from
 * submit to the commit of its debit (the credit follows asynchronously by design).
 *
 * Columns: "Ledger CPU" is the CPU of the process running the Ledger per transfer (this process
 * for the raw and in-process runs, load generator included; the server process over gRPC);
 * "MariaDB CPU" is the local mariadbd's, when it runs on this machine.
 *
 * Flags: --seconds N (default 5), --warmup N (2), --connections N (16, even), --concurrency N
 * (transfers in flight, 256), --accounts N (payers and payees each, 2000), --skip-grpc.
 * LEDGER_* environment variables (LEDGER_BATCHES_PER_SHARD, LEDGER_BATCH_MAX, …) reach the Ledger.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import mysql from 'mysql2/promise';
import { pino } from 'pino';
import { Asset } from '../../gen/ts/livemesh/common/v1/common.js';
import { LedgerServiceClient, TransferKind } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { kitConfigShape, parseConfig, resolveKitDefaults } from '../../kit/config.js';
import type { Role } from '../../kit/identity.js';
import { createMysqlPool, mysqlOptions, quoteIdent } from '../../kit/mysql.js';
import { fromRoot, repoRoot } from '../../kit/paths.js';
import { ServiceHost, type KitConfigValues } from '../../kit/server.js';
import { GrpcCallError } from '../../kit/grpc-errors.js';
import { Asset as DomainAsset, Kind } from '../../services/ledger/model.js';
import { ledgerConfigShape, wireLedger, type LedgerConfig, type LedgerParts } from '../../services/ledger/service.js';
import type { TransferCommand } from '../../services/ledger/store/transfer-engine.js';
import { ensureInfra, infraUrlsFromEnv } from '../infra.js';
import { isolate, type Isolation } from '../isolation.js';
import { sharedUserMetadata } from '../tokens.js';
import { localDatabasePid } from './costs.js';
import { EchoClient } from './echo.js';
import { drive, Interrupted, interruptible, machineLine, runBench, say, setBenchTag, startServer, stopServer, type Fire } from './harness.js';
import { percentile, processCpuSeconds } from '../stats.js';

setBenchTag('ledger');

interface Options {
  seconds: number;
  warmup: number;
  connections: number;
  concurrency: number;
  accounts: number;
  grpc: boolean;
}

function parseOptions(argv: string[]): Options {
  const opts: Options = { seconds: 5, warmup: 2, connections: 16, concurrency: 256, accounts: 2000, grpc: true };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] ?? '';
    if (flag === '--skip-grpc') {
      opts.grpc = false;
      continue;
    }
    const key = ({ '--seconds': 'seconds', '--warmup': 'warmup', '--connections': 'connections', '--concurrency': 'concurrency', '--accounts': 'accounts' } as const)[flag];
    const value = Number(argv[++i]);
    if (!key || !Number.isFinite(value) || value < (key === 'warmup' ? 0 : 1) || (key === 'connections' && (value < 4 || value % 2 !== 0))) {
      process.stderr.write(`bench ledger: bad argument ${flag}; flags: --seconds N, --warmup N, --connections N (even, >= 4), --concurrency N, --accounts N, --skip-grpc\n`);
      process.exit(2);
    }
    opts[key] = value;
  }
  return opts;
}

// ---------------------------------------------------------------------------------------------
// Measuring

interface Result {
  label: string;
  perSec: number;
  p50: number;
  p99: number;
  errors: number;
  ledgerCpuUs: number;
  /** This process's CPU per transfer when it is only the gRPC client. */
  clientCpuUs: number | undefined;
  dbCpuUs: number | undefined;
  notes: string[];
}

const DB_PID = localDatabasePid();

const dbCpu = () => (DB_PID === undefined ? undefined : processCpuSeconds(DB_PID));

/** Adapts a promise to the harness's callback driver; a non-gRPC error counts as UNKNOWN. */
function fireOf(op: () => Promise<unknown>, firstError: { message: string }): Fire {
  return (done) =>
    void op().then(
      () => done(null),
      (err: unknown) => {
        firstError.message ||= (err as Error).message;
        done(GrpcCallError.from(err));
      },
    );
}

async function run(step: string, label: string, opts: Options, op: () => Promise<unknown>, signal: AbortSignal, serverPid = process.pid, inFlight = opts.concurrency): Promise<Result> {
  const firstError = { message: '' };
  const fire = fireOf(op, firstError);
  if (opts.warmup > 0) {
    say(`${step} ${label}: warming up ${opts.warmup}s`);
    await drive(fire, { concurrency: inFlight, ms: opts.warmup * 1000, serverPid, signal });
  }
  if (signal.aborted) throw new Interrupted();
  const db0 = dbCpu();
  const w = await drive(fire, {
    concurrency: inFlight,
    ms: opts.seconds * 1000,
    serverPid,
    signal,
    tick: (ms, calls) => say(`${step} ${label}: ${Math.round(ms / 1000)}s/${opts.seconds}s, ${calls} transfers`),
  });
  const db1 = dbCpu();
  if (signal.aborted) throw new Interrupted();
  const sorted = Float64Array.from(w.latenciesMs).sort();
  const errors = [...w.errors.values()].reduce((a, b) => a + b, 0);
  const r: Result = {
    label,
    perSec: (w.calls - errors) / (w.elapsedMs / 1000),
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    errors,
    ledgerCpuUs: (w.serverCpuS * 1e6) / w.calls,
    clientCpuUs: serverPid === process.pid ? undefined : (w.clientCpuS * 1e6) / w.calls,
    dbCpuUs: db0 !== undefined && db1 !== undefined ? ((db1 - db0) * 1e6) / w.calls : undefined,
    notes: firstError.message ? [`first error: ${firstError.message}`] : [],
  };
  say(`${step} ${label}: ${Math.round(r.perSec)}/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, errors ${errors}`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// The runs

async function rawInserts(iso: Isolation, opts: Options, signal: AbortSignal): Promise<Result> {
  const db = `${iso.database}_raw`;
  const admin = await mysql.createConnection(mysqlOptions(iso.urls.mysqlUrl));
  await admin.query(`CREATE DATABASE ${quoteIdent(db)}`);
  await admin.query(
    `CREATE TABLE ${quoteIdent(db)}.raw_insert (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, owner_id BIGINT UNSIGNED NOT NULL, amount BIGINT NOT NULL, created_at DATETIME(3) NOT NULL) ENGINE=InnoDB`,
  );
  await admin.end();
  const pool = createMysqlPool(iso.urls.mysqlUrl, db, opts.connections);
  let i = 0;
  try {
    // The Ledger's path through the driver (query, client-side placeholders), one row per autocommit.
    const insert = () => pool.query('INSERT INTO raw_insert (owner_id, amount, created_at) VALUES (?, ?, ?)', [BigInt(1_000_000 + (i++ % 100_000)), 1n, new Date()]);
    return await run('[1/6]', 'raw single-row INSERT (autocommit)', opts, insert, signal, process.pid, opts.connections);
  } finally {
    await pool.end();
  }
}

function ledgerEnv(iso: Isolation, opts: Options): Record<string, string> {
  return {
    ...iso.env,
    MYSQL_POOL_SIZE: String(opts.connections / 2),
    METRICS_PORT: '-1',
    LOG_LEVEL: 'warn',
    DRAIN_GRACE_MS: '0',
    // LEDGER_* from the environment override, for tuning runs.
    ...Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[0].startsWith('LEDGER_') && e[1] !== undefined)),
  };
}

const owners = (base: number, n: number) => Array.from({ length: n }, (_, i) => String(base + i));

interface Workload {
  payers: string[];
  payees: string[];
  hot: string;
}

async function inProcess(iso: Isolation, opts: Options, w: Workload, signal: AbortSignal): Promise<Result[]> {
  const config = resolveKitDefaults(parseConfig({ ...kitConfigShape, ...ledgerConfigShape }, { PORT: '0', ...ledgerEnv(iso, opts) }) as KitConfigValues) as LedgerConfig;
  const host = new ServiceHost('ledger', config, pino({ level: 'warn' }));
  const parts = await wireLedger(host, config);
  try {
    say(`seeding: ${w.payers.length} payers topped up`);
    await Promise.all(w.payers.map((p) => parts.ledger.topUp({ userId: '1', role: 'admin', name: '' }, { owner: p, amount: '1000000000', paymentReference: `bench-${p}`, provider: 'bench' })));
    let n = 0;
    const gift = (payer: string, payee: string): TransferCommand => ({
      transferId: `e-${n++}`,
      kind: Kind.GIFT,
      payer: { owner: payer, asset: DomainAsset.COIN },
      payee: { owner: payee, asset: DomainAsset.INCOME },
      amount: 1n,
      reference: '',
      createdBy: payer,
      requestHash: Buffer.alloc(16, 1),
    });
    const before = () => ({ ...parts.applier.stats });
    let since = before();
    const spread = await run('[2/6]', 'engine in-process, many payers -> many payees', opts, () => parts.engine.submit(gift(w.payers[n % w.payers.length]!, w.payees[(n * 7919) % w.payees.length]!)), signal);
    spread.notes.push(await drained(parts, since));
    since = before();
    const hot = await run('[3/6]', 'engine in-process, many payers -> one hot payee', opts, () => parts.engine.submit(gift(w.payers[n % w.payers.length]!, w.hot)), signal);
    hot.notes.push(await drained(parts, since));
    return [spread, hot];
  } finally {
    await host.drain();
  }
}

/** Applies the credits still in flight when a window closed; says how long that took and how the run's credits were aggregated. */
async function drained(parts: LedgerParts, since: { credits: number; balanceUpdates: number }): Promise<string> {
  const t0 = performance.now();
  const pending = await parts.applier.pendingCount();
  await parts.applier.drain(600_000);
  const credits = parts.applier.stats.credits - since.credits;
  const updates = parts.applier.stats.balanceUpdates - since.balanceUpdates;
  return (
    `${pending} credits in flight when the window closed, applied ${Math.round(performance.now() - t0)} ms later; ` +
    `this run's ${credits} credits (warm-up included) took ${updates} balance updates (${(credits / Math.max(1, updates)).toFixed(1)} credits per update)`
  );
}

/** The transport alone: a bare grpc-js byte echo sent a Transfer-sized payload at the same concurrency. */
async function echoBaseline(opts: Options, signal: AbortSignal): Promise<Result> {
  const bare = await startServer('bare', fromRoot('dist', 'scripts', 'bench', 'bare-server.js'), {}, true, signal);
  const echo = new EchoClient(bare.address, credentials.createInsecure()) as unknown as { echo(req: Buffer, m: Metadata, cb: (err: ServiceError | null) => void): void; close(): void };
  const payload = Buffer.alloc(90, 7);
  const md = identity('10000000', 'viewer');
  try {
    return await run('[4/6]', 'bare grpc-js echo (baseline for gRPC)', opts, () => new Promise<void>((resolve, reject) => echo.echo(payload, md, (err) => (err ? reject(err) : resolve()))), signal, bare.pid);
  } finally {
    echo.close();
    await stopServer(bare);
  }
}

async function overGrpc(iso: Isolation, opts: Options, w: Workload, signal: AbortSignal): Promise<{ results: Result[]; invariants: string }> {
  const server = await startServer('ledger', fromRoot('dist', 'services', 'ledger', 'main.js'), ledgerEnv(iso, opts), false, signal);
  const client = new LedgerServiceClient(server.address, credentials.createInsecure());
  try {
    let n = 0;
    const transfer = (payer: string, payee: string) =>
      new Promise<void>((resolve, reject) =>
        client.transfer(
          { transferId: `g-${n++}`, kind: TransferKind.TRANSFER_KIND_GIFT, payer: { ownerId: payer, asset: Asset.ASSET_COIN }, payee: { ownerId: payee, asset: Asset.ASSET_INCOME }, amountMinor: '1', reference: '' },
          identity(payer, 'viewer'),
          (err) => (err ? reject(err) : resolve()),
        ),
      );
    const results = [
      await run('[5/6]', 'gRPC, many payers -> many payees', opts, () => transfer(w.payers[n % w.payers.length]!, w.payees[(n * 7919) % w.payees.length]!), signal, server.pid),
      await run('[6/6]', 'gRPC, many payers -> one hot payee', opts, () => transfer(w.payers[n % w.payers.length]!, w.hot), signal, server.pid),
    ];
    return { results, invariants: await invariants(client) };
  } finally {
    client.close();
    await stopServer(server);
  }
}

/** A user's token as the BFF mints it (an operator's for admins), in metadata shared across calls. */
function identity(userId: string, role: Role): Metadata {
  return sharedUserMetadata(userId, role);
}

/** CheckInvariants once the credits in flight have been applied. */
async function invariants(client: LedgerServiceClient): Promise<string> {
  for (let attempt = 0; attempt < 600; attempt++) {
    const r = await new Promise<{ ok: boolean; violations: string[]; assets: Array<{ pendingCreditMinor: string }>; transfersChecked: string }>((resolve, reject) =>
      client.checkInvariants({ assets: [] }, identity('1', 'admin'), { deadline: Date.now() + 120_000 }, (err, res) => (err ? reject(err) : resolve(res))),
    );
    const pending = r.assets.reduce((s, a) => s + BigInt(a.pendingCreditMinor), 0n);
    if (pending === 0n || !r.ok) return `${r.ok ? 'hold' : `BROKEN: ${r.violations.join('; ')}`} over ${r.transfersChecked} transfers`;
    await new Promise((res) => setTimeout(res, 200));
  }
  return 'not checked: credits still in flight after 2 minutes';
}

// ---------------------------------------------------------------------------------------------
// Report

function report(rows: Result[], opts: Options): string {
  const [raw, spread, hot] = rows;
  const out = [
    `${opts.connections} MySQL connections in every run (the raw baseline keeps one INSERT in flight on each); Ledger runs keep ${opts.concurrency} transfers in flight; ` +
      `${opts.warmup}s warm-up, ${opts.seconds}s measured; CPU from /proc/<pid>/stat.`,
    '',
    '| run | transfers/s | p50 ms | p99 ms | vs raw INSERT | Ledger CPU µs/op | MariaDB CPU µs/op | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const ratio = raw ? `${(r.perSec / raw.perSec).toFixed(2)}×` : '';
    const db = r.dbCpuUs === undefined ? 'n/a' : String(Math.round(r.dbCpuUs));
    out.push(`| ${r.label} | ${Math.round(r.perSec).toLocaleString('en-US')} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${ratio} | ${Math.round(r.ledgerCpuUs)} | ${db} | ${r.errors} |`);
  }
  out.push('');
  if (raw && spread) out.push(`- target (a): engine in-process >= 1.0× raw INSERT: ${(spread.perSec / raw.perSec).toFixed(2)}×`);
  if (spread && hot) out.push(`- target (b): hot payee >= 0.8× (a): ${(hot.perSec / spread.perSec).toFixed(2)}×`);
  const echo = rows.find((r) => r.label.startsWith('bare grpc-js echo'));
  const viaGrpc = rows.find((r) => r.label === 'gRPC, many payers -> many payees');
  if (echo && viaGrpc) out.push(`- target (c): Transfer through gRPC >= 0.5× the bare echo: ${(viaGrpc.perSec / echo.perSec).toFixed(2)}× (${Math.round(viaGrpc.perSec)} vs ${Math.round(echo.perSec)}/s)`);
  for (const r of rows) {
    const notes = [...(r.clientCpuUs === undefined ? [] : [`gRPC client (this process) ${Math.round(r.clientCpuUs)} µs CPU per transfer`]), ...r.notes];
    if (notes.length > 0) out.push(`- ${r.label}: ${notes.join('; ')}`);
  }
  return out.join('\n');
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  const abort = interruptible();
  say(machineLine());
  const infra = await ensureInfra(infraUrlsFromEnv(), { dataDir: join(repoRoot(), '.data'), log: say });
  const iso = isolate('benchledger', 'livemesh_bench');
  const w: Workload = { payers: owners(10_000_000, opts.accounts), payees: owners(20_000_000, opts.accounts), hot: '30000000' };
  const rows: Result[] = [];
  let invariantLine = '';
  try {
    rows.push(await rawInserts(iso, opts, abort.signal));
    rows.push(...(await inProcess(iso, opts, w, abort.signal)));
    if (opts.grpc) {
      rows.push(await echoBaseline(opts, abort.signal));
      const g = await overGrpc(iso, opts, w, abort.signal);
      rows.push(...g.results);
      invariantLine = `- invariants after all runs (CheckInvariants once no credit was in flight): ${g.invariants}`;
    }
  } finally {
    await iso.cleanup().catch((err: unknown) => say(`cleanup failed: ${(err as Error).message}`));
    say(`cleanup: dropped ${iso.database}_* databases and the shard map's KV bucket`);
    await infra.stop();
  }
  process.stdout.write(`\n${machineLine()}\n${report(rows, opts)}\n${invariantLine}\n`);
  return 0;
}

runBench(main);
