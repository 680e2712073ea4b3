/**
 * `npm run bench:gift`: SendGift end to end on the mesh as `npm start` runs it — Room, Gift,
 * Ledger, Chat and Ranking each their own process, all four effects required (EXP and COMBO in
 * Gift, BARRAGE in Chat, RANKING in Ranking), events through JetStream.
 *
 *   baselines: a bare grpc-js echo server, and the same MariaDB's raw single-row INSERT rate
 *              (autocommit) at the same concurrency;
 *   A. many viewers sending to many rooms (closed loop, --concurrency calls in flight);
 *   B. every viewer sending to one hot room;
 *   C. open loop at half of A's rate: latency when not saturated, and for a sample of orders the
 *      time from the send until the order is DONE (all four effects applied);
 *   D. A again on a mesh of two replicas of every service, the client balancing over both Gift
 *      replicas with lb/ (as the BFF and internal teams do);
 *   E. A's workload on three meshes side by side, OpenTelemetry off, on at 1% and on at 100%
 *      sampling, in alternating slices (`--tracing-only` runs just these); target ≤ 10%
 *      throughput cost at 1%;
 *   plus what one send costs, per send and amortized over A's window: MySQL statements and
 *   transactions (MariaDB's own counters), service-to-service gRPC calls (the services' served
 *   calls less the load generator's), and the CPU of every process involved.
 *
 * Flags: --seconds N (default 8), --concurrency N (default 64), --warmup N.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import { credentials, type Metadata, type ServiceError } from '@grpc/grpc-js';
import mysql from 'mysql2/promise';
import {
  GiftServiceClient,
  OrderState,
  type ListRoomGiftsResponse,
  type SendGiftRequest,
  type SendGiftResponse,
} from '../../gen/ts/livemesh/gift/v1/gift.js';
import { LedgerServiceClient } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { RoomServiceClient } from '../../gen/ts/livemesh/room/v1/room.js';
import { encodeGiftList } from '../../services/gift/store/redis-catalog.js';
import { serviceClient, type RequestOf, type ResponseOf, type UnaryMethod } from '../../kit/clients.js';
import { DEV_AUTH_DIR } from '../../kit/config.js';
import { MeshCredentials } from '../../kit/credentials.js';
import type { Role } from '../../kit/identity.js';
import { mysqlOptions, quoteIdent } from '../../kit/mysql.js';
import { fromRoot, repoRoot } from '../../kit/paths.js';
import { ensureInfra, infraUrlsFromEnv } from '../infra.js';
import { isolate, type Isolation } from '../isolation.js';
import { startMesh, type Mesh } from '../mesh.js';
import { sharedUserMetadata } from '../tokens.js';
import { costsBetween, DatabaseCounters, localDatabasePid, localPid, snapshot, type Costs, type CostWatch } from './costs.js';
import { EchoClient } from './echo.js';
import { drive, formatK, Interrupted, interruptible, machineLine, measure, measureInterleaved, parseArgs, runBench, say, serverNodeArgs, setBenchTag, startServer, stopServer, type BenchOptions, type Fire, type Row, type Server, type Variant } from './harness.js';
import { percentile } from '../stats.js';
import { startOtlpSink, tracingEnv, TRACING_MODES } from './otlp-sink.js';

setBenchTag('gift');

const VIEWERS = 2000;
const ROOMS = 50;
const STREAMER_BASE = 800_000;
const VIEWER_BASE = 900_000;

/** A user's token as the BFF mints it (an operator's admin token for `admin`), in metadata shared across calls and renewed before it expires. */
const md = (userId: string, role: Role) => sharedUserMetadata(userId, role);
/** The catalog, top-ups (which take no user's token) and order reads. */
const admin = () => md('1', 'admin');
/** Viewer `v`'s metadata (VIEWERS distinct viewers, each with their own token). */
const viewerMd = (v: number) => md(String(VIEWER_BASE + v), 'viewer');

/**
 * What the bench's lb/ clients (serviceClient) need: the mesh's public keys, and a process's own
 * token for calls that carry none. The bench stands in for the BFF, so it holds the BFF's
 * development key; its calls all carry a user's or an operator's token anyway.
 */
let benchCredentials: MeshCredentials | undefined;
const credentialsOfBff = () => (benchCredentials ??= MeshCredentials.load('bff', { AUTH_PUBLIC_KEYS_DIR: join(DEV_AUTH_DIR, 'public'), AUTH_SIGNING_KEY: '', GRPC_TLS_DIR: '' }));

function rpc<C extends object, M extends UnaryMethod<C>>(client: C, method: M, req: RequestOf<C, M>, m: Metadata): Promise<ResponseOf<C, M>> {
  const fn = (client as Record<string, unknown>)[method] as (req: RequestOf<C, M>, m: Metadata, cb: (err: ServiceError | null, res: ResponseOf<C, M>) => void) => unknown;
  return new Promise((resolve, reject) => fn.call(client, req, m, (err: ServiceError | null, res: ResponseOf<C, M>) => (err ? reject(err) : resolve(res))));
}

interface EchoStub {
  echo(req: Buffer, m: Metadata, cb: (err: ServiceError | null, res: Buffer) => void): void;
  close(): void;
}

/** Raw MariaDB: single-row INSERT transactions (autocommit), `concurrency` connections, for `ms`. */
async function rawInsertRate(url: string, database: string, concurrency: number, ms: number): Promise<number> {
  const admin = await mysql.createConnection(mysqlOptions(url));
  await admin.query(`CREATE DATABASE IF NOT EXISTS ${quoteIdent(database)}`);
  await admin.end();
  const pool = mysql.createPool({ ...mysqlOptions(url, database), connectionLimit: concurrency });
  try {
    await pool.query('CREATE TABLE IF NOT EXISTS raw_insert (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, a BIGINT NOT NULL, b VARCHAR(64) NOT NULL, t DATETIME(3) NOT NULL) ENGINE=InnoDB');
    let n = 0;
    const end = performance.now() + ms;
    await Promise.all(
      Array.from({ length: concurrency }, async (_, w) => {
        while (performance.now() < end) {
          await pool.execute('INSERT INTO raw_insert (a, b, t) VALUES (?, ?, ?)', [w, `row-${n}`, new Date()]);
          n++;
        }
      }),
    );
    return n / (ms / 1000);
  } finally {
    await pool.end();
  }
}

/** The bench's mesh: every service, `replicas` each, no BFF, in the run's isolation; default pools and batching. */
function startBenchMesh(iso: Isolation, replicas: number, extraEnv: Record<string, string> = {}): Promise<Mesh> {
  return startMesh({
    env: { ...iso.env, LOG_LEVEL: 'warn', ...extraEnv },
    replicas,
    bff: false,
    nodeArgs: serverNodeArgs(),
    onLine: (p, line, stream) => stream === 'stderr' && say(`${p.name} | ${line}`),
  });
}

/** Every mesh process and the local servers it uses, for CPU; every gRPC process's metrics page, for served calls. */
function costWatch(mesh: Mesh): CostWatch {
  const processes = new Map<string, number>();
  const metrics = new Map<string, string>();
  for (const p of mesh.processes) {
    const label = p.service;
    if (p.pid !== undefined) processes.set(`${label}#${p.name}`, p.pid);
    if (p.metricsPort !== undefined) metrics.set(p.name, `http://127.0.0.1:${p.metricsPort}/metrics`);
  }
  const infra: Array<[string, number | undefined]> = [
    ['MariaDB', localDatabasePid()],
    ['NATS', localPid(['nats-server'])],
    ['Redis', localPid(['redis-server'])],
  ];
  for (const [label, pid] of infra) if (pid !== undefined) processes.set(label, pid);
  return { processes, metrics };
}

interface World {
  giftIds: string[];
  roomIds: string[];
  list: ListRoomGiftsResponse;
  closers: Array<{ close(): void }>;
}

/** 30 gifts in the default group, ROOMS live rooms, VIEWERS viewers with COIN. */
async function seed(mesh: Mesh, giftC: GiftServiceClient): Promise<World> {
  const roomC = serviceClient(RoomServiceClient, mesh.addresses('room').join(','), credentialsOfBff());
  const ledgerC = serviceClient(LedgerServiceClient, mesh.addresses('ledger').join(','), credentialsOfBff());
  const giftIds: string[] = [];
  for (let i = 0; i < 30; i++) {
    const res = await rpc(giftC, 'upsertGift', { gift: { giftId: '0', name: `gift ${i}`, priceMinor: '10', iconKey: `icons/2026/gift-${i}@3x.png`, effectKey: `fx-${i % 5}`, status: 1, version: '0', updateTime: undefined }, expectedVersion: '0' }, admin());
    giftIds.push(res.gift!.giftId);
  }
  await rpc(giftC, 'upsertGiftGroup', { giftGroup: { giftGroupId: '0', name: 'standard', giftIds, isDefault: true, version: '0', updateTime: undefined }, expectedVersion: '0' }, admin());
  const roomIds: string[] = [];
  for (let i = 0; i < ROOMS; i++) {
    const streamer = md(String(STREAMER_BASE + i), 'streamer');
    const r = await rpc(roomC, 'createRoom', { streamerId: '0', title: `room ${i}`, category: 'music', coverKey: '', notice: '', requestId: `b${i}` }, streamer);
    await rpc(roomC, 'startLive', { roomId: r.room!.roomId }, streamer);
    roomIds.push(r.room!.roomId);
  }
  for (let i = 0; i < VIEWERS; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, VIEWERS - i) }, (_, j) =>
        rpc(ledgerC, 'topUp', { ownerId: String(VIEWER_BASE + i + j), amountMinor: '100000000', paymentReference: `bench-${i + j}`, provider: 'bench' }, admin()),
      ),
    );
    if (i % 500 === 0) say(`seeding: ${i + 50}/${VIEWERS} viewers topped up`);
  }
  // A freshly started replica learns of rooms and gifts through events; wait until a send to the
  // last room is accepted, so the measurement does not start on a half-warm cache.
  const list = await rpc(giftC, 'listRoomGifts', { roomId: roomIds[ROOMS - 1]!, ifNoneMatch: '' }, viewerMd(0));
  return { giftIds, roomIds, list, closers: [roomC, ledgerC] };
}

let seq = 0;
let sent = 0;

const sender = (giftC: GiftServiceClient, world: World, pickRoom: () => string): Fire => (done) => {
  const v = seq++ % VIEWERS;
  const req: SendGiftRequest = { idempotencyKey: `b-${seq}`, roomId: pickRoom(), giftId: world.giftIds[seq % world.giftIds.length]!, count: 1, expectedUnitPriceMinor: '0', senderName: `viewer ${v}` };
  giftC.sendGift(req, viewerMd(v), (err) => {
    if (!err) sent++;
    done(err);
  });
};

interface Measured {
  row: Row;
  costs: Costs;
}

/** A closed-loop window (after its own warm-up) with the system's costs measured around it. */
async function measureWithCosts(step: string, label: string, giftPid: number, fire: Fire, opts: BenchOptions, signal: AbortSignal, db: DatabaseCounters, watch: CostWatch): Promise<Measured> {
  if (opts.warmup > 0) {
    say(`${step} ${label}: warming up ${opts.warmup}s`);
    await drive(fire, { concurrency: opts.concurrency, ms: opts.warmup * 1000, serverPid: giftPid, signal });
  }
  const before = await snapshot(db, watch);
  sent = 0;
  const row = await measure(step, label, { pid: giftPid } as Server, fire, { ...opts, warmup: 0 }, signal);
  const units = sent;
  const after = await snapshot(db, watch);
  return { row, costs: costsBetween(before, after, Math.max(1, units), new Map([['SendGift', units + row.errors]])) };
}

interface TracingRun {
  label: string;
  row: Row;
  exported: { requests: number; bytes: number };
}

/**
 * E: A's workload on three single-replica meshes running side by side, identical but for
 * OpenTelemetry: off (no endpoint: the SDK is not even loaded), and on in every process with
 * parent-based ratio sampling at 1% and at 100%, each exporting over OTLP/HTTP to its own sink in
 * this process. The three are driven in alternating one-second slices (measureInterleaved), so the
 * shared machine's changing load falls on all of them alike; windows one after the other differed
 * by more than the effect being measured. The bench's calls carry no trace context, so Gift's
 * server span decides for the whole send (Ledger, MySQL, JetStream and the consumers follow).
 * Server CPU is Gift's. Target: ≤ 10% throughput cost at 1%.
 */
async function tracingRuns(step: string, opts: BenchOptions, signal: AbortSignal, own: { isolations: Isolation[]; meshes: Mesh[] }): Promise<TracingRun[]> {
  const sinks: Array<Awaited<ReturnType<typeof startOtlpSink>>> = [];
  const closers: Array<{ close(): void }> = [];
  try {
    const variants: Variant[] = [];
    for (const [i, mode] of TRACING_MODES.entries()) {
      const sink = await startOtlpSink();
      sinks.push(sink);
      say(`${step} E. ${mode.label}: starting a mesh (one process per service)${mode.ratio === undefined ? '' : `, exporting to ${sink.url}`}`);
      const iso = isolate(`benchgifttr${i}`, 'livemesh_bench');
      own.isolations.push(iso);
      const mesh = await startBenchMesh(iso, 1, tracingEnv(sink.url, mode.ratio));
      own.meshes.push(mesh);
      const giftC = new GiftServiceClient(mesh.addresses('gift')[0]!, credentials.createInsecure());
      closers.push(giftC);
      const world = await seed(mesh, giftC);
      closers.push(...world.closers);
      variants.push({ label: `E. SendGift as A, ${mode.label}`, server: { pid: mesh.get('gift-1').pid! } as Server, fire: sender(giftC, world, () => world.roomIds[seq % ROOMS]!) });
    }
    for (const sink of sinks) sink.take();
    const { rows } = await measureInterleaved(step, variants, opts, signal, 1);
    // The batch processors export every 5 s: wait for the window's last spans before counting.
    await new Promise((resolve) => setTimeout(resolve, 5500));
    return rows.map((row, i) => ({ label: TRACING_MODES[i]!.label, row, exported: sinks[i]!.take() }));
  } finally {
    for (const c of closers) c.close();
    await Promise.all(own.meshes.splice(own.meshes.length - TRACING_MODES.length).map((m) => m.stop()));
    for (const sink of sinks) await sink.close();
  }
}

function tracingReport(runs: TracingRun[]): string {
  const off = runs[0]!;
  const cost = (r: TracingRun) => 1 - r.row.callsPerSec / off.row.callsPerSec;
  const one = runs.find((r) => r.label.includes('1%'));
  return [
    '',
    'E. tracing (A\'s workload on three one-replica meshes side by side, alternating 1 s slices; OTLP/HTTP export to local sinks):',
    '',
    '| run | calls/s | vs off | p50 ms | p99 ms | Gift CPU µs/send | OTLP exports (requests, bytes) | errors |',
    '|---|---:|---:|---:|---:|---:|---|---:|',
    ...runs.map(
      (r) =>
        `| ${r.label} | ${n0(r.row.callsPerSec)} | ${(r.row.callsPerSec / off.row.callsPerSec).toFixed(3)}× | ${r.row.p50.toFixed(2)} | ${r.row.p99.toFixed(2)} | ${n0(r.row.serverCpuUsPerCall)} | ${r.exported.requests}, ${formatK(r.exported.bytes)} | ${r.row.errors} |`,
    ),
    '',
    one ? `- ≤ 10% throughput cost at 1% sampling: ${(cost(one) * 100).toFixed(1)}% — ${verdict(cost(one) <= 0.1)}` : '',
    '',
  ].join('\n');
}

/** C: sends at a fixed rate; latencies, and every tenth order's id for the time-to-DONE sample. */
async function openLoop(giftC: GiftServiceClient, world: World, rate: number, seconds: number, signal: AbortSignal): Promise<{ latencies: Float64Array; errors: number; sampled: string[] }> {
  const latencies: number[] = [];
  const sampled: string[] = [];
  let errors = 0;
  await new Promise<void>((resolve) => {
    const start = performance.now();
    let fired = 0;
    let inflight = 0;
    let finished = false;
    const timer = setInterval(() => {
      const due = Math.floor(((performance.now() - start) / 1000) * rate);
      if (performance.now() - start >= seconds * 1000 || signal.aborted) {
        clearInterval(timer);
        finished = true;
        if (inflight === 0) resolve();
        return;
      }
      for (; fired < due; fired++) {
        const t0 = performance.now();
        const v = seq++ % VIEWERS;
        const sample = fired % 10 === 0;
        inflight++;
        giftC.sendGift(
          { idempotencyKey: `c-${seq}`, roomId: world.roomIds[seq % ROOMS]!, giftId: world.giftIds[0]!, count: 1, expectedUnitPriceMinor: '0', senderName: '' },
          viewerMd(v),
          (err: ServiceError | null, res: SendGiftResponse) => {
            inflight--;
            latencies.push(performance.now() - t0);
            if (err) errors++;
            else if (sample && res.order) sampled.push(res.order.orderId);
            if (finished && inflight === 0) resolve();
          },
        );
      }
    }, 2);
  });
  if (signal.aborted) throw new Interrupted();
  return { latencies: Float64Array.from(latencies).sort(), errors, sampled };
}

/** Server-side create → DONE time of each sampled order (polled; orders not DONE within a minute are left out and counted). */
async function timesToDone(giftC: GiftServiceClient, orderIds: string[]): Promise<Float64Array> {
  const doneMs: number[] = [];
  const deadline = Date.now() + 60_000;
  for (const orderId of orderIds) {
    for (;;) {
      const o = (await rpc(giftC, 'getOrder', { orderId }, admin())).order;
      if (o?.state === OrderState.ORDER_STATE_DONE && o.endTime && o.createTime) {
        doneMs.push(o.endTime.getTime() - o.createTime.getTime());
        break;
      }
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return Float64Array.from(doneMs).sort();
}

const n0 = (x: number) => Math.round(x).toLocaleString('en-US');
const n1 = (x: number) => x.toFixed(x < 10 ? 2 : 1);
const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');

function costLines(label: string, m: Measured): string[] {
  const c = m.costs;
  const cpu = [...c.cpuUs].filter(([, us]) => us >= 0.5);
  const total = cpu.reduce((s, [, us]) => s + us, 0);
  const byService = new Map<string, number>();
  for (const [name, us] of cpu) {
    const service = name.split('#')[0]!;
    byService.set(service, (byService.get(service) ?? 0) + us);
  }
  return [
    `| ${label} | ${n1(c.statements)} | ${c.transactions === undefined ? 'n/a' : n1(c.transactions)} | ${n1(c.explicitCommits)} | ${n1(c.serviceCalls)} | ` +
      `${[...byService].map(([s, us]) => `${s} ${n0(us)}`).join(', ')} | ${n0(total)} |`,
  ];
}

function report(r: {
  machine: string;
  opts: BenchOptions;
  echo: Row;
  rawRate: number;
  a: Measured;
  b: Measured;
  d: Measured;
  rate: number;
  c: { latencies: Float64Array; errors: number; sampled: string[] };
  doneMs: Float64Array;
  list: ListRoomGiftsResponse;
}): string {
  const { echo, a, b, d, c } = r;
  const x = (row: Row) => `${(row.callsPerSec / echo.callsPerSec).toFixed(3)}×`;
  const fmt = (row: Row) => `| ${row.label} | ${n0(row.callsPerSec)} | ${x(row)} | ${row.p50.toFixed(2)} | ${row.p99.toFixed(2)} | ${row.errors}${row.errors ? ` (${row.errorKinds})` : ''} |`;
  const raw = encodeGiftList(r.list.gifts.map((g) => ({ ...g, status: 'active' as const, updatedAt: g.updateTime ?? new Date() })));
  const zipped = gzipSync(raw);
  const cP99 = percentile(c.latencies, 0.99);
  const doneP99 = percentile(r.doneMs, 0.99);
  const methods = [...a.costs.serviceCallsByMethod].sort((p, q) => q[1] - p[1]).map(([m, n]) => `${m} ${n.toFixed(3)}`).join(', ');
  return [
    '',
    r.machine,
    `${r.opts.concurrency} calls in flight, ${r.opts.warmup}s warm-up, ${r.opts.seconds}s measured; A–C: Room, Gift, Ledger (2 shards), Chat and Ranking one process each; ` +
      'D: two of each; every order needs all four effects (EXP, BARRAGE, RANKING, COMBO) to be DONE.',
    '',
    '| run | calls/s | × echo | p50 ms | p99 ms | errors |',
    '|---|---:|---:|---:|---:|---:|',
    fmt(echo),
    `| raw MariaDB single-row INSERT (autocommit, ${r.opts.concurrency} connections) | ${n0(r.rawRate)} | | | | |`,
    fmt(a.row),
    fmt(b.row),
    `| C. SendGift open loop at ${r.rate}/s | ${n0(c.latencies.length / r.opts.seconds)} | | ${percentile(c.latencies, 0.5).toFixed(2)} | ${cP99.toFixed(2)} | ${c.errors} |`,
    fmt(d.row),
    '',
    'What one send costs (amortized over the measured window; MySQL counters are MariaDB\'s own and global, so exact only on an otherwise idle server):',
    '',
    '| run | MySQL statements | transactions (InnoDB rw commits) | of which BEGIN…COMMIT | service-to-service gRPC calls | CPU µs by process | CPU µs total |',
    '|---|---:|---:|---:|---:|---|---:|',
    ...costLines('A', a),
    ...costLines('B', b),
    ...costLines('D (2 replicas)', d),
    '',
    `Statements in A by kind, per send: ${Object.entries(a.costs.byKind).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`,
    `Service-to-service calls in A by method, per send: ${methods || 'none'}`,
    `Send → DONE (server times, ${r.doneMs.length}/${c.sampled.length} sampled orders from C): p50 ${percentile(r.doneMs, 0.5).toFixed(0)} ms, p99 ${doneP99.toFixed(0)} ms`,
    `Gift list of ${r.list.gifts.length} gifts in Redis: ${raw.length} bytes of protobuf, ${zipped.length} bytes gzip (${((zipped.length / raw.length) * 100).toFixed(0)}%)`,
    '',
    'Targets (issue 14):',
    `- A ≥ 0.25× echo: ${x(a.row)} (${n0(a.row.callsPerSec)} vs ${n0(0.25 * echo.callsPerSec)}/s) — ${verdict(a.row.callsPerSec >= 0.25 * echo.callsPerSec)}`,
    `- B ≥ A: ${(b.row.callsPerSec / a.row.callsPerSec).toFixed(2)}× — ${verdict(b.row.callsPerSec >= a.row.callsPerSec)}`,
    `- C p99 ≤ 25 ms at half of A: ${cP99.toFixed(1)} ms — ${verdict(cP99 <= 25)}`,
    `- send → DONE p99 ≤ 1 s with all four effects: ${doneP99.toFixed(0)} ms over ${r.doneMs.length}/${c.sampled.length} orders — ${verdict(doneP99 <= 1000 && r.doneMs.length === c.sampled.length)}`,
    `- ≤ 4 MySQL statements per send: ${n1(a.costs.statements)} — ${verdict(a.costs.statements <= 4)}`,
    `- ≤ 1.1 service-to-service calls per send: ${n1(a.costs.serviceCalls)} — ${verdict(a.costs.serviceCalls <= 1.1)}`,
    `- D (two replicas) ≥ A: ${(d.row.callsPerSec / a.row.callsPerSec).toFixed(2)}× A, ${x(d.row)} echo`,
    `Total sends: ${formatK(seq)}.`,
    '',
  ].join('\n');
}

async function main(): Promise<number> {
  // --tracing-only: just E (tracing off, 1%, 100%), for checking the tracing cost without the rest.
  const tracingOnly = process.argv.includes('--tracing-only');
  const opts = parseArgs(process.argv.slice(2).filter((a) => a !== '--tracing-only'), { seconds: 8, concurrency: 64, warmup: 1 });
  const abort = interruptible();
  const machine = machineLine();
  say(machine);
  const urls = infraUrlsFromEnv();
  const infra = await ensureInfra(urls, { dataDir: join(repoRoot(), '.data'), log: (l) => say(l) });
  const isolations: Isolation[] = [];
  const meshes: Mesh[] = [];
  const closers: Array<{ close(): void }> = [];
  const rows: Row[] = [];
  const db = await DatabaseCounters.open(urls.mysqlUrl);
  try {
    if (tracingOnly) {
      const runs = await tracingRuns('[E]', opts, abort.signal, { isolations, meshes });
      process.stdout.write(`\n${machine}\n${opts.concurrency} calls in flight, ${opts.warmup}s warm-up, ${opts.seconds}s measured.\n${tracingReport(runs)}`);
      return 0;
    }
    say('[1/9] bare grpc-js echo');
    const bare = await startServer('bare', fromRoot('dist', 'scripts', 'bench', 'bare-server.js'), {}, true, abort.signal);
    const echo = new EchoClient(bare.address, credentials.createInsecure()) as unknown as EchoStub;
    const payload = Buffer.alloc(60, 7);
    const echoRow = await measure('[1/9]', 'bare grpc-js echo', bare, (done) => void echo.echo(payload, viewerMd(0), (err) => done(err)), opts, abort.signal);
    echo.close();
    await stopServer(bare);

    say(`[2/9] raw MariaDB single-row INSERT, autocommit, ${opts.concurrency} connections, ${opts.seconds}s`);
    const iso1 = isolate('benchgift', 'livemesh_bench');
    isolations.push(iso1);
    const rawRate = await rawInsertRate(urls.mysqlUrl, `${iso1.database}_raw`, opts.concurrency, opts.seconds * 1000);
    say(`[2/9] raw inserts: ${Math.round(rawRate)}/s`);

    say('[3/9] starting the mesh: Room, Gift, Ledger, Chat and Ranking, one process each');
    const mesh1 = await startBenchMesh(iso1, 1);
    meshes.push(mesh1);
    const watch = costWatch(mesh1);
    const giftC = new GiftServiceClient(mesh1.addresses('gift')[0]!, credentials.createInsecure());
    closers.push(giftC);
    say(`[4/9] catalog (30 gifts), ${ROOMS} live rooms, ${VIEWERS} viewers with COIN`);
    const world = await seed(mesh1, giftC);
    closers.push(...world.closers);

    const fireA = sender(giftC, world, () => world.roomIds[seq % ROOMS]!);
    const a = await measureWithCosts('[5/9]', `A. SendGift, ${VIEWERS} viewers → ${ROOMS} rooms`, mesh1.get('gift-1').pid!, fireA, opts, abort.signal, db, watch);
    const fireB = sender(giftC, world, () => world.roomIds[0]!);
    const b = await measureWithCosts('[6/9]', `B. SendGift, ${VIEWERS} viewers → 1 hot room`, mesh1.get('gift-1').pid!, fireB, opts, abort.signal, db, watch);
    rows.push(echoRow, a.row, b.row);

    const rate = Math.max(10, Math.round(a.row.callsPerSec / 2));
    say(`[7/9] C. open loop at ${rate}/s (half of A) for ${opts.seconds}s`);
    const c = await openLoop(giftC, world, rate, opts.seconds, abort.signal);
    say(`C: ${c.latencies.length} sends, p50 ${percentile(c.latencies, 0.5).toFixed(2)} ms, p99 ${percentile(c.latencies, 0.99).toFixed(2)} ms, errors ${c.errors}; waiting for ${c.sampled.length} sampled orders to be DONE`);
    const doneMs = await timesToDone(giftC, c.sampled);
    giftC.close();
    await mesh1.stop();

    say('[8/9] D. the mesh with two replicas of every service; the client balances over both Gift replicas (lb/ P2C)');
    const iso2 = isolate('benchgift2', 'livemesh_bench');
    isolations.push(iso2);
    const mesh2 = await startBenchMesh(iso2, 2);
    meshes.push(mesh2);
    const giftLb = serviceClient(GiftServiceClient, mesh2.addresses('gift').join(','), credentialsOfBff());
    closers.push(giftLb);
    const world2 = await seed(mesh2, giftLb);
    closers.push(...world2.closers);
    const d = await measureWithCosts(
      '[8/9]',
      `D. SendGift on 2 replicas of everything, ${VIEWERS} viewers → ${ROOMS} rooms`,
      mesh2.get('gift-1').pid!,
      sender(giftLb, world2, () => world2.roomIds[seq % ROOMS]!),
      opts,
      abort.signal,
      db,
      costWatch(mesh2),
    );
    rows.push(d.row);
    await mesh2.stop();

    const traced = await tracingRuns('[9/9]', opts, abort.signal, { isolations, meshes });

    process.stdout.write(
      report({ machine, opts, echo: echoRow, rawRate, a, b, d, rate, c, doneMs, list: world.list }) + tracingReport(traced),
    );
    return 0;
  } finally {
    for (const c of closers) c.close();
    await Promise.all(meshes.map((m) => m.stop()));
    await db.close();
    for (const iso of isolations) {
      const keys = await iso.cleanup();
      say(`cleanup: dropped ${iso.database}* databases, ${keys} Redis keys and the bench's streams`);
    }
    await infra.stop();
  }
}

runBench(main);
