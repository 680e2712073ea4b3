/**
 * `npm run bench:ledger`: transfers per second through the Ledger, next to the same MariaDB's raw
 * rate of single-row autocommit INSERTs over the same number of connections, all in one run.
 *
 *   1. raw INSERT: N connections, each inserting one row per autocommit transaction (the baseline:
 *      one durable commit per row, which is what a naive one-transaction-per-transfer ledger pays);
 *   2. engine, many payers -> many payees, in this process (TransferEngine.submit);
 *   3. engine, many payers -> one hot payee, in this process;
 *   4. and 5. the same two workloads through gRPC against the real Ledger process
 *      (dist/services/ledger/main.js), from a grpc-js client in this process.
 *
 * Every Ledger run uses two shard databases and N connections in total (N/2 per shard, shared by
 * the transfer engine and the credit applier, which runs throughout: credits are part of the
 * work, not deferred past the measurement). After each run the applier is drained and the time it
 * needed is reported; at the end CheckInvariants must hold, or the run is reported as broken.
 * Transfers are gifts of 1 minor unit between funded accounts; "p50/p99" is per transfer, from
 * submit to its durable commit (the debit; the credit follows asynchronously by design).
 *
 * Flags: --seconds N (default 5), --warmup N (1), --connections N (16), --concurrency N
 * (transfers in flight, 256), --accounts N (payers and payees each, 2000), --skip-grpc.
 * LEDGER_* environment variables (LEDGER_BATCHES_PER_SHARD, LEDGER_BATCH_MAX, …) reach the Ledger.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { credentials, Metadata } from '@grpc/grpc-js';
import mysql from 'mysql2/promise';
import { pino } from 'pino';
import { Asset } from '../../gen/ts/livemesh/common/v1/common.js';
import { LedgerServiceClient, TransferKind } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { kitConfigShape, parseConfig, resolveKitDefaults } from '../../services/kit/config.js';
import { createMysqlPool, mysqlOptions, quoteIdent } from '../../services/kit/mysql.js';
import { fromRoot, repoRoot } from '../../services/kit/paths.js';
import { ServiceHost, type KitConfigValues } from '../../services/kit/server.js';
import { Asset as DomainAsset, Kind } from '../../services/ledger/model.js';
import { ledgerConfigShape, wireLedger, type LedgerConfig, type LedgerParts } from '../../services/ledger/service.js';
import type { TransferCommand } from '../../services/ledger/store/transfer-engine.js';
import { ensureInfra, infraUrlsFromEnv } from '../infra.js';
import { isolate, type Isolation } from '../isolation.js';
import { freePorts } from '../net.js';

const TAG = 'bench ledger:';
const say = (line: string) => process.stdout.write(`${TAG} ${line}\n`);

interface Options {
  seconds: number;
  warmup: number;
  connections: number;
  concurrency: number;
  accounts: number;
  grpc: boolean;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { seconds: 5, warmup: 1, connections: 16, concurrency: 256, accounts: 2000, grpc: true };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] ?? '';
    if (flag === '--skip-grpc') {
      opts.grpc = false;
      continue;
    }
    const key = ({ '--seconds': 'seconds', '--warmup': 'warmup', '--connections': 'connections', '--concurrency': 'concurrency', '--accounts': 'accounts' } as const)[flag];
    const value = Number(argv[++i]);
    if (!key || !Number.isFinite(value) || value < (key === 'warmup' ? 0 : 1) || (key === 'connections' && (value < 4 || value % 2 !== 0))) {
      process.stderr.write(`${TAG} bad argument ${flag}; flags: --seconds N, --warmup N, --connections N (even, >= 4), --concurrency N, --accounts N, --skip-grpc\n`);
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
  ops: number;
  perSec: number;
  p50: number;
  p99: number;
  errors: number;
  /** CPU of the process running the Ledger per operation (µs): this one in-process, the server over gRPC. */
  ledgerCpuUs: number;
  /** CPU of this process per operation when it is only the client (gRPC runs). */
  clientCpuUs: number | undefined;
  /** CPU of the local MariaDB server per operation (µs), when it runs on this machine. */
  dbCpuUs: number | undefined;
  note: string;
}

const CLK_TCK = 100;

/** The local mysqld/mariadbd, if there is one: its CPU time shows what each workload costs the database. */
function dbServerPid(): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const comm = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
      if (comm === 'mariadbd' || comm === 'mysqld') return Number(entry);
    } catch {
      // a process that just ended
    }
  }
  return undefined;
}

function cpuSecondsOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return undefined;
  }
}

const DB_PID = dbServerPid();

/** `concurrency` closed-loop workers calling `op` for `ms`; latencies of successful calls only. */
async function measure(label: string, concurrency: number, ms: number, op: (i: number) => Promise<unknown>, progress: boolean, serverPid?: number): Promise<Result> {
  const latencies: number[] = [];
  let errors = 0;
  let seq = 0;
  let firstError = '';
  const cpu0 = process.cpuUsage();

  const db0 = cpuSecondsOf(DB_PID);
  const server0 = cpuSecondsOf(serverPid);
  const start = performance.now();
  const end = start + ms;
  const ticker = progress ? setInterval(() => say(`  ${label}: ${Math.round((performance.now() - start) / 1000)}s, ${latencies.length} transfers`), 1000) : undefined;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          await op(seq++);
          latencies.push(performance.now() - t0);
        } catch (err) {
          errors++;
          firstError ||= (err as Error).message;
        }
      }
    }),
  );
  if (ticker) clearInterval(ticker);
  const elapsed = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);

  const db1 = cpuSecondsOf(DB_PID);
  const server1 = cpuSecondsOf(serverPid);
  const ops = Math.max(1, latencies.length);
  const own = (cpu.user + cpu.system) / ops;
  latencies.sort((a, b) => a - b);
  const pct = (q: number) => latencies[Math.min(latencies.length - 1, Math.max(0, Math.ceil(q * latencies.length) - 1))] ?? NaN;
  return {
    label,
    ops: latencies.length,
    perSec: latencies.length / elapsed,
    p50: pct(0.5),
    p99: pct(0.99),
    errors,
    ledgerCpuUs: server0 !== undefined && server1 !== undefined ? ((server1 - server0) * 1e6) / ops : own,
    clientCpuUs: serverPid === undefined ? undefined : own,
    dbCpuUs: db0 !== undefined && db1 !== undefined ? ((db1 - db0) * 1e6) / ops : undefined,
    note: firstError ? `first error: ${firstError}` : '',
  };
}

async function run(step: string, label: string, opts: Options, op: (i: number) => Promise<unknown>, serverPid?: number): Promise<Result> {
  if (opts.warmup > 0) {
    say(`${step} ${label}: warming up ${opts.warmup}s`);
    await measure(label, opts.concurrency, opts.warmup * 1000, op, false);
  }
  say(`${step} ${label}: measuring ${opts.seconds}s`);
  const r = await measure(label, opts.concurrency, opts.seconds * 1000, op, true, serverPid);
  say(`${step} ${label}: ${Math.round(r.perSec)}/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, errors ${r.errors}${r.note ? ` (${r.note})` : ''}`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// The runs

async function rawInserts(iso: Isolation, opts: Options): Promise<Result> {
  const db = `${iso.database}_raw`;
  const admin = await mysql.createConnection(mysqlOptions(iso.urls.mysqlUrl));
  await admin.query(`CREATE DATABASE ${quoteIdent(db)}`);
  await admin.query(
    `CREATE TABLE ${quoteIdent(db)}.raw_insert (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, owner_id BIGINT UNSIGNED NOT NULL, amount BIGINT NOT NULL, created_at DATETIME(3) NOT NULL) ENGINE=InnoDB`,
  );
  await admin.end();
  const pool = createMysqlPool(iso.urls.mysqlUrl, db, opts.connections);
  try {
    // Same text-protocol path the Ledger uses (query, client-side placeholders), one row per autocommit.
    return await run('[1/5]', 'raw single-row INSERT (autocommit)', { ...opts, concurrency: opts.connections }, (i) =>
      pool.query('INSERT INTO raw_insert (owner_id, amount, created_at) VALUES (?, ?, ?)', [BigInt(1_000_000 + (i % 100_000)), 1n, new Date()]),
    );
  } finally {
    await pool.end();
  }
}

function ledgerEnv(iso: Isolation, opts: Options): Record<string, string> {
  const perShard = opts.connections / 2;
  return {
    ...iso.env,
    MYSQL_POOL_SIZE: String(perShard),
    // The applier can hold two connections of a shard at once (its own cycle, and another shard's credits).
    LEDGER_BATCHES_PER_SHARD: String(Math.max(1, perShard - 2)),
    LOG_LEVEL: 'warn',
    // LEDGER_* from the environment (LEDGER_BATCH_MAX, LEDGER_BATCHES_PER_SHARD, …) override, for tuning runs.
    ...Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[0].startsWith('LEDGER_') && e[1] !== undefined)),
  };
}

const owners = (base: number, n: number) => Array.from({ length: n }, (_, i) => String(base + i));

function giftCommand(payer: string, payee: string, id: string): TransferCommand {
  return {
    transferId: id,
    kind: Kind.GIFT,
    payer: { owner: payer, asset: DomainAsset.COIN },
    payee: { owner: payee, asset: DomainAsset.INCOME },
    amount: 1n,
    reference: '',
    createdBy: payer,
    requestHash: Buffer.alloc(16, 1),
  };
}

async function inProcess(iso: Isolation, opts: Options, payers: string[], payees: string[], hot: string): Promise<Result[]> {
  const config = resolveKitDefaults(
    parseConfig({ ...kitConfigShape, ...ledgerConfigShape }, { PORT: '0', METRICS_PORT: '-1', DRAIN_GRACE_MS: '0', ...ledgerEnv(iso, opts) }) as KitConfigValues,
  ) as LedgerConfig;
  const host = new ServiceHost('ledger', config, pino({ level: 'warn' }));
  const parts = await wireLedger(host, config);
  try {
    say(`seeding: ${payers.length} payers topped up`);
    await Promise.all(payers.map((p) => parts.ledger.topUp({ userId: '1', role: 'admin', name: '' }, { owner: p, amount: '1000000000', paymentReference: `bench-${p}`, provider: 'bench' })));
    const results: Result[] = [];
    let n = 0;
    const spread = (i: number) => giftCommand(payers[i % payers.length]!, payees[(i * 7919) % payees.length]!, `a-${n++}`);
    results.push(await run('[2/5]', 'engine in-process, many payers -> many payees', opts, (i) => parts.engine.submit(spread(i))));
    results.at(-1)!.note = await drainNote(parts);
    const toHot = (i: number) => giftCommand(payers[i % payers.length]!, hot, `b-${n++}`);
    results.push(await run('[3/5]', 'engine in-process, many payers -> one hot payee', opts, (i) => parts.engine.submit(toHot(i))));
    results.at(-1)!.note = await drainNote(parts);
    return results;
  } finally {
    await host.drain();
  }
}

async function drainNote(parts: LedgerParts): Promise<string> {
  const t0 = performance.now();
  const pending = await parts.applier.pendingCount();
  await parts.applier.drain(600_000);
  const s = parts.applier.stats;
  return `credits left when the window closed: ${pending}, applied ${Math.round(performance.now() - t0)} ms later; applier so far: ${s.credits} credits in ${s.balanceUpdates} balance updates`;
}

async function overGrpc(iso: Isolation, opts: Options, payers: string[], payees: string[], hot: string): Promise<{ results: Result[]; invariants: string }> {
  const [port] = (await freePorts(1)) as [number];
  const child: ChildProcess = spawn(process.execPath, [fromRoot('dist', 'services', 'ledger', 'main.js')], {
    env: { ...process.env, ...ledgerEnv(iso, opts), HOST: '127.0.0.1', PORT: String(port), METRICS_PORT: '-1', DRAIN_GRACE_MS: '0' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const client = new LedgerServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
  try {
    await waitReady(client);
    const results: Result[] = [];
    const md = (payer: string) => {
      const m = new Metadata();
      m.set('lm-user-id', payer);
      m.set('lm-role', 'viewer');
      return m;
    };
    let n = 0;
    const transfer = (payer: string, payee: string) =>
      new Promise<void>((resolve, reject) =>
        client.transfer(
          { transferId: `g-${n++}`, kind: TransferKind.TRANSFER_KIND_GIFT, payer: { ownerId: payer, asset: Asset.ASSET_COIN }, payee: { ownerId: payee, asset: Asset.ASSET_INCOME }, amountMinor: '1', reference: '' },
          md(payer),
          (err) => (err ? reject(err) : resolve()),
        ),
      );
    results.push(await run('[4/5]', 'gRPC, many payers -> many payees', opts, (i) => transfer(payers[i % payers.length]!, payees[(i * 7919) % payees.length]!), child.pid));
    results.push(await run('[5/5]', 'gRPC, many payers -> one hot payee', opts, (i) => transfer(payers[i % payers.length]!, hot), child.pid));
    return { results, invariants: await invariants(client) };
  } finally {
    client.close();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

async function waitReady(client: LedgerServiceClient): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => client.getShardMap({}, adminMd(), { deadline: Date.now() + 1000 }, (err) => resolve(!err)));
    if (ok) return;
    if (Date.now() > deadline) throw new Error('the Ledger process did not answer within 60 s');
    await new Promise((r) => setTimeout(r, 200));
  }
}

function adminMd(): Metadata {
  const m = new Metadata();
  m.set('lm-user-id', '1');
  m.set('lm-role', 'admin');
  return m;
}

/** Waits for the outbox to empty (pending credits read through GetBalances of the hot payee are not enough: check all). */
async function invariants(client: LedgerServiceClient): Promise<string> {
  for (let attempt = 0; attempt < 600; attempt++) {
    const r = await new Promise<{ ok: boolean; violations: string[]; assets: Array<{ pendingCreditMinor: string }>; transfersChecked: string }>((resolve, reject) =>
      client.checkInvariants({ assets: [] }, adminMd(), { deadline: Date.now() + 120_000 }, (err, res) => (err ? reject(err) : resolve(res))),
    );
    const pending = r.assets.reduce((s, a) => s + BigInt(a.pendingCreditMinor), 0n);
    if (pending === 0n || !r.ok) return `${r.ok ? 'hold' : `BROKEN: ${r.violations.join('; ')}`} over ${r.transfersChecked} transfers`;
    await new Promise((res) => setTimeout(res, 200));
  }
  return 'not checked: credits still pending after 2 minutes';
}

// ---------------------------------------------------------------------------------------------
// Report

function machineLine(): string {
  const list = cpus();
  const model = (list[0]?.model ?? 'unknown cpu').replace(/\s+/g, ' ').trim();
  return `machine: ${list.length} cpus (${model}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}, load average at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}, ${new Date().toISOString()}`;
}

function report(rows: Result[], opts: Options): string {
  const raw = rows[0];
  const spread = rows[1];
  const out = [
    `${opts.connections} MySQL connections in every run; ${opts.concurrency} transfers in flight (the raw baseline: one INSERT in flight per connection); ${opts.warmup}s warm-up, ${opts.seconds}s measured.`,
    '',
    '| run | transfers/s | p50 ms | p99 ms | vs raw INSERT | Ledger CPU µs/op | MariaDB CPU µs/op | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    const ratio = raw ? `${(r.perSec / raw.perSec).toFixed(2)}×` : '';
    const db = r.dbCpuUs === undefined ? 'n/a' : String(Math.round(r.dbCpuUs));
    out.push(`| ${r.label} | ${Math.round(r.perSec).toLocaleString('en-US')} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${ratio} | ${Math.round(r.ledgerCpuUs)} | ${db} | ${r.errors} |`);
    if (r.clientCpuUs !== undefined) r.note = [`gRPC client (this process) ${Math.round(r.clientCpuUs)} µs CPU per transfer`, r.note].filter(Boolean).join('; ');
  }
  out.push('');
  if (raw && spread) out.push(`- target (a): engine in-process >= 1.0× raw: ${(spread.perSec / raw.perSec).toFixed(2)}×`);
  if (spread && rows[2]) out.push(`- target (b): hot payee >= 0.8× (a): ${(rows[2].perSec / spread.perSec).toFixed(2)}×`);
  for (const r of rows) if (r.note) out.push(`- ${r.label}: ${r.note}`);
  return out.join('\n');
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  say(machineLine());
  const infra = await ensureInfra(infraUrlsFromEnv(), { dataDir: join(repoRoot(), '.data'), log: say });
  const iso = isolate('benchledger', 'livemesh_bench');
  const payers = owners(10_000_000, opts.accounts);
  const payees = owners(20_000_000, opts.accounts);
  const hot = '30000000';
  const rows: Result[] = [];
  let invariantLine = '';
  try {
    rows.push(await rawInserts(iso, opts));
    rows.push(...(await inProcess(iso, opts, payers, payees, hot)));
    if (opts.grpc) {
      const g = await overGrpc(iso, opts, payers, payees, hot);
      rows.push(...g.results);
      invariantLine = `- invariants after all runs (CheckInvariants, outbox drained): ${g.invariants}`;
    }
  } finally {
    await iso.cleanup().catch((err: unknown) => say(`cleanup failed: ${(err as Error).message}`));
    say(`cleanup: dropped ${iso.database}_* databases`);
    await infra.stop();
  }
  process.stdout.write(`\n${machineLine()}\n${report(rows, opts)}\n${invariantLine}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${TAG} ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
