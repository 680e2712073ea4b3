/**
 * `npm run bench:kit`: what the service kit costs per unary call.
 *
 * Three servers, each in its own child process (so client and server never share an event loop),
 * driven one after the other from this process over one grpc-js channel with a fixed number of
 * calls in flight:
 *
 *   A. a bare grpc-js server, no interceptors, Health/Check answering SERVING (the baseline);
 *   B. the same Health/Check through a kit ServiceHost with its default configuration
 *      (observe interceptor: lm-load header and trailer, ORCA trailer, call metrics);
 *   C. the real Room process answering GetRoom for a room created first (a Redis read per
 *      call), for scale, on its own database, Redis prefix and NATS prefix, removed afterwards.
 *
 * For each: warm up, then measure calls/s, p50/p99 latency, errors and the server's CPU time per
 * call (from /proc/<pid>/stat). A benchmark, not a timed test: it prints numbers, it does not
 * pass or fail on them.
 *
 * Flags: --seconds N (measured window, default 5), --concurrency N (calls in flight, default 32),
 * --warmup N (seconds, default 1).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { credentials, Metadata, status as Code, type ServiceError } from '@grpc/grpc-js';
import { HealthCheckResponse_ServingStatus as Serving, HealthClient } from '../../gen/ts/grpc/health/v1/health.js';
import { RoomServiceClient } from '../../gen/ts/livemesh/room/v1/room.js';
import { fromRoot, repoRoot } from '../../services/kit/paths.js';
import { ensureInfra, InfraError, infraUrlsFromEnv, type InfraHandle } from '../infra.js';
import { isolate } from '../isolation.js';
import { freePorts } from '../net.js';

const TAG = 'bench kit:';
const say = (line: string) => process.stdout.write(`${TAG} ${line}\n`);

// ---------------------------------------------------------------------------------------------
// Options

function parseArgs(argv: string[]): { seconds: number; concurrency: number; warmup: number } {
  const opts = { seconds: 5, concurrency: 32, warmup: 1 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const [flag, inline] = arg.includes('=') ? (arg.split('=', 2) as [string, string]) : [arg, undefined];
    const key = { '--seconds': 'seconds', '--concurrency': 'concurrency', '--warmup': 'warmup' }[flag] as keyof typeof opts | undefined;
    if (!key) {
      process.stderr.write(`${TAG} unknown argument ${JSON.stringify(arg)}; flags: --seconds N, --concurrency N, --warmup N\n`);
      process.exit(2);
    }
    const raw = inline ?? argv[++i];
    const value = Number(raw);
    const min = key === 'warmup' ? 0 : key === 'seconds' ? 0.1 : 1;
    if (!Number.isFinite(value) || value < min || (key === 'concurrency' && !Number.isInteger(value))) {
      process.stderr.write(`${TAG} ${flag} needs a number >= ${min}${key === 'concurrency' ? ' (integer)' : ''} (got ${JSON.stringify(raw)})\n`);
      process.exit(2);
    }
    opts[key] = value;
  }
  return opts;
}

// ---------------------------------------------------------------------------------------------
// Child processes

const CLK_TCK = (() => {
  const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(out.stdout?.trim());
  return Number.isInteger(n) && n > 0 ? n : 100;
})();

/** utime + stime of a process, in seconds (fields 14 and 15 of /proc/<pid>/stat). */
function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may contain spaces: count from after it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

interface Server {
  label: string;
  child: ChildProcess;
  pid: number;
  address: string;
  /** The last lines the child printed, for when it dies. */
  tail(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const live = new Set<ChildProcess>();

/**
 * Starts a server process and waits until its Health/Check("") answers SERVING.
 * Detached (its own process group), so a Ctrl-C reaches only this process, which then stops the
 * child with SIGTERM and lets it drain, rather than the child draining on its own mid-run.
 */
async function startServer(label: string, script: string, env: Record<string, string>, ipc: boolean, signal: AbortSignal): Promise<Server> {
  const [port] = (await freePorts(1)) as [number];
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), ...env },
    stdio: ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  live.add(child);
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) if (line.trim()) lines.push(line);
    if (lines.length > 40) lines.splice(0, lines.length - 40);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, sig) => {
      live.delete(child);
      resolve({ code, signal: sig });
    }),
  );
  let dead = false;
  void exited.then(() => (dead = true));
  if (child.pid === undefined) throw new Error(`${label}: could not start ${script}`);
  const server: Server = { label, child, pid: child.pid, address: `127.0.0.1:${port}`, tail: () => lines.join('\n'), exited };

  const probe = new HealthClient(server.address, credentials.createInsecure());
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (signal.aborted) throw new Interrupted();
      if (dead) throw new Error(`${label} exited before serving:\n${server.tail()}`);
      if (Date.now() > deadline) throw new Error(`${label} did not report SERVING within 60 s:\n${server.tail()}`);
      const status = await new Promise<Serving | undefined>((resolve) =>
        probe.check({ service: '' }, new Metadata(), { deadline: Date.now() + 1000 }, (err, res) => resolve(err ? undefined : res.status)),
      );
      if (status === Serving.SERVING) return server;
      await sleep(100);
    }
  } catch (err) {
    await stopServer(server);
    throw err;
  } finally {
    probe.close();
  }
}

/** SIGTERM and wait for the drain; SIGKILL if it has not exited after 20 s. */
async function stopServer(server: Server): Promise<void> {
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGTERM');
  const timer = setTimeout(() => {
    say(`${server.label} still running 20 s after SIGTERM; killing it`);
    server.child.kill('SIGKILL');
  }, 20_000);
  const { code, signal } = await server.exited;
  clearTimeout(timer);
  if (code !== 0 && signal !== 'SIGTERM') say(`note: ${server.label} exited with ${code ?? signal}:\n${server.tail()}`);
}

// ---------------------------------------------------------------------------------------------
// Load

class Interrupted extends Error {
  constructor() {
    super('interrupted');
  }
}

type Fire = (done: (err: ServiceError | null) => void) => void;

interface Window {
  calls: number;
  errors: Map<string, number>;
  latenciesMs: Float64Array;
  elapsedMs: number;
  serverCpuS: number;
  clientCpuS: number;
}

/**
 * Keeps `concurrency` calls in flight for `ms`: each completed call launches the next until the
 * time is up; the window ends when the last call in flight returns.
 */
function drive(
  fire: Fire,
  opts: { concurrency: number; ms: number; serverPid: number; signal: AbortSignal; tick?: (elapsedMs: number, calls: number) => void },
): Promise<Window> {
  return new Promise((resolve) => {
    let latencies = new Float64Array(1 << 16);
    let calls = 0;
    let inflight = 0;
    const errors = new Map<string, number>();
    const cpu0 = processCpuSeconds(opts.serverPid);
    const client0 = process.cpuUsage();
    const start = performance.now();
    const end = start + opts.ms;
    const ticker = opts.tick ? setInterval(() => opts.tick?.(performance.now() - start, calls), 1000) : undefined;
    const finish = (at: number) => {
      if (ticker) clearInterval(ticker);
      const client = process.cpuUsage(client0);
      resolve({
        calls,
        errors,
        latenciesMs: latencies.subarray(0, calls),
        elapsedMs: at - start,
        serverCpuS: processCpuSeconds(opts.serverPid) - cpu0,
        clientCpuS: (client.user + client.system) / 1e6,
      });
    };
    const launch = () => {
      inflight++;
      const t0 = performance.now();
      fire((err) => {
        const t1 = performance.now();
        inflight--;
        if (calls === latencies.length) {
          const bigger = new Float64Array(latencies.length * 2);
          bigger.set(latencies);
          latencies = bigger;
        }
        latencies[calls++] = t1 - t0;
        if (err) {
          const key = Code[err.code] ?? String(err.code);
          errors.set(key, (errors.get(key) ?? 0) + 1);
        }
        if (t1 < end && !opts.signal.aborted) launch();
        else if (inflight === 0) finish(t1);
      });
    };
    for (let i = 0; i < opts.concurrency; i++) launch();
  });
}

interface Row {
  label: string;
  callsPerSec: number;
  p50: number;
  p99: number;
  serverCpuUsPerCall: number;
  clientCpuUsPerCall: number;
  serverCpuShare: number;
  errors: number;
  errorKinds: string;
  skipped?: string;
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

async function measure(
  step: string,
  label: string,
  server: Server,
  fire: Fire,
  opts: { seconds: number; concurrency: number; warmup: number },
  signal: AbortSignal,
): Promise<Row> {
  if (opts.warmup > 0) {
    say(`${step} ${label}: warming up ${opts.warmup}s`);
    await drive(fire, { concurrency: opts.concurrency, ms: opts.warmup * 1000, serverPid: server.pid, signal });
  }
  if (signal.aborted) throw new Interrupted();
  const w = await drive(fire, {
    concurrency: opts.concurrency,
    ms: opts.seconds * 1000,
    serverPid: server.pid,
    signal,
    tick: (ms, calls) => say(`${step} ${label}: ${Math.round(ms / 1000)}s/${opts.seconds}s, ${formatK(calls)} calls`),
  });
  if (signal.aborted) throw new Interrupted();
  const sorted = Float64Array.from(w.latenciesMs).sort();
  const errors = [...w.errors.values()].reduce((a, b) => a + b, 0);
  const row: Row = {
    label,
    callsPerSec: w.calls / (w.elapsedMs / 1000),
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    serverCpuUsPerCall: (w.serverCpuS * 1e6) / w.calls,
    clientCpuUsPerCall: (w.clientCpuS * 1e6) / w.calls,
    serverCpuShare: w.serverCpuS / (w.elapsedMs / 1000),
    errors,
    errorKinds: [...w.errors].map(([k, n]) => `${k} ${n}`).join(', '),
  };
  say(
    `${step} ${label}: ${formatK(w.calls)} calls in ${(w.elapsedMs / 1000).toFixed(1)}s, ${Math.round(row.callsPerSec)}/s, ` +
      `p50 ${row.p50.toFixed(2)} ms, p99 ${row.p99.toFixed(2)} ms, errors ${errors}${errors ? ` (${row.errorKinds})` : ''}`,
  );
  return row;
}

// ---------------------------------------------------------------------------------------------
// The three servers

const healthFire = (client: HealthClient): Fire => {
  const request = { service: '' };
  return (done) => void client.check(request, (err) => done(err));
};

async function benchHealth(step: string, label: string, script: string, env: Record<string, string>, opts: Parameters<typeof measure>[4], signal: AbortSignal): Promise<Row> {
  say(`${step} ${label}: starting ${script.slice(repoRoot().length + 1)}`);
  const server = await startServer(label, script, env, true, signal);
  const client = new HealthClient(server.address, credentials.createInsecure());
  try {
    return await measure(step, label, server, healthFire(client), opts, signal);
  } finally {
    client.close();
    await stopServer(server);
  }
}

async function benchRoom(step: string, label: string, opts: Parameters<typeof measure>[4], signal: AbortSignal): Promise<Row> {
  const iso = isolate('bench', 'livemesh_bench');
  const { database, redisPrefix } = iso;
  const script = fromRoot('dist', 'services', 'room', 'main.js');
  say(`${step} ${label}: starting dist/services/room/main.js (database ${database}, Redis prefix ${redisPrefix})`);
  try {
    const server = await startServer(
      label,
      script,
      {
        ...iso.env,
        METRICS_PORT: '0',
        LOG_LEVEL: 'info',
      },
      false,
      signal,
    );
    const client = new RoomServiceClient(server.address, credentials.createInsecure());
    try {
      const md = new Metadata();
      md.set('lm-user-id', '424242');
      md.set('lm-role', 'streamer');
      const created = await new Promise<string>((resolve, reject) =>
        client.createRoom(
          { streamerId: '0', title: 'bench room', category: 'music', coverKey: 'covers/bench.jpg', notice: 'benchmark', requestId: `bench-${iso.id}` },
          md,
          (err, res) => (err ? reject(err) : res.room ? resolve(res.room.roomId) : reject(new Error('CreateRoom returned no room'))),
        ),
      );
      const request = { roomId: created, readMask: undefined };
      // One call first, so a broken setup fails loudly instead of benchmarking errors.
      await new Promise<void>((resolve, reject) => client.getRoom(request, (err) => (err ? reject(err) : resolve())));
      say(`${step} ${label}: room ${created} created; GetRoom answers`);
      return await measure(step, label, server, (done) => void client.getRoom(request, (err) => done(err)), opts, signal);
    } finally {
      client.close();
      await stopServer(server);
    }
  } finally {
    try {
      const keys = await iso.cleanup();
      say(`cleanup: dropped database ${database} and ${keys} Redis key(s) under ${redisPrefix}`);
    } catch (err) {
      say(`cleanup FAILED for database ${database} / Redis prefix ${redisPrefix}: ${(err as Error).message}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Report

function formatK(n: number): string {
  return n >= 10_000 ? `${Math.round(n / 1000)}k` : n >= 1000 ? `${(n / 1000).toFixed(1)}k` : String(n);
}

function machineLine(): string {
  const list = cpus();
  const model = (list[0]?.model ?? 'unknown cpu').replace(/\s+/g, ' ').trim();
  const load = loadavg().map((x) => x.toFixed(2)).join(' ');
  return (
    `machine: ${list.length} cpus (${model}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}, ` +
    `${process.platform} ${process.arch}, load average at start ${load}, ${new Date().toISOString()}`
  );
}

function table(rows: Row[], opts: { seconds: number; concurrency: number; warmup: number }): string {
  const base = rows[0];
  const out = [
    '| server | calls/s | p50 ms | p99 ms | server CPU µs/call | vs bare |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    if (r.skipped) {
      out.push(`| ${r.label} | skipped: ${r.skipped} | | | | |`);
      continue;
    }
    const ratio = base && !base.skipped ? `${(r.callsPerSec / base.callsPerSec).toFixed(2)}×` : 'n/a';
    out.push(
      `| ${r.label} | ${Math.round(r.callsPerSec).toLocaleString('en-US')} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${Math.round(r.serverCpuUsPerCall)} | ${ratio} |`,
    );
  }
  const notes = rows
    .filter((r) => !r.skipped)
    .map(
      (r) =>
        `${r.label}: errors ${r.errors}${r.errors ? ` (${r.errorKinds})` : ''}, server busy ${(r.serverCpuShare * 100).toFixed(0)}% of a core, ` +
        `client CPU ${Math.round(r.clientCpuUsPerCall)} µs/call`,
    );
  return [
    `${opts.concurrency} calls in flight over one channel, ${opts.warmup}s warm-up, ${opts.seconds}s measured; server CPU from /proc/<pid>/stat (CLK_TCK ${CLK_TCK}).`,
    '',
    ...out,
    '',
    ...notes.map((n) => `- ${n}`),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const abort = new AbortController();
  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupts++;
    if (interrupts > 1) {
      say(`second ${sig}: killing the servers now`);
      for (const child of live) child.kill('SIGKILL');
      process.exit(130);
    }
    say(`${sig}: stopping (servers get SIGTERM and drain; bench data is removed)`);
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });

  const root = repoRoot();
  const machine = machineLine();
  say(machine);
  say(`plan: 3 servers, each ${opts.warmup}s warm-up + ${opts.seconds}s at ${opts.concurrency} calls in flight`);

  let infra: InfraHandle | undefined;
  let infraProblem: string | undefined;
  try {
    infra = await ensureInfra(infraUrlsFromEnv(), { dataDir: join(root, '.data'), log: (line) => say(line) });
  } catch (err) {
    if (!(err instanceof InfraError)) throw err;
    infraProblem = err.message;
    say(`Room run will be skipped: ${err.message}`);
  }

  const rows: Row[] = [];
  try {
    rows.push(await benchHealth('[1/3]', 'bare grpc-js (Health/Check)', fromRoot('dist', 'scripts', 'bench', 'bare-server.js'), {}, opts, abort.signal));
    rows.push(
      await benchHealth('[2/3]', 'kit host (Health/Check)', fromRoot('dist', 'scripts', 'bench', 'kit-server.js'), { METRICS_PORT: '0', LOG_LEVEL: 'info' }, opts, abort.signal),
    );
    if (infraProblem) rows.push({ label: 'Room GetRoom (Redis read)', skipped: 'MariaDB/Redis/NATS not available', callsPerSec: 0, p50: 0, p99: 0, serverCpuUsPerCall: 0, clientCpuUsPerCall: 0, serverCpuShare: 0, errors: 0, errorKinds: '' });
    else rows.push(await benchRoom('[3/3]', 'Room GetRoom (Redis read)', opts, abort.signal));
  } catch (err) {
    if (err instanceof Interrupted || abort.signal.aborted) {
      say('interrupted; servers stopped');
      return 130;
    }
    throw err;
  } finally {
    await infra?.stop();
  }

  process.stdout.write(`\n${machine}\n${table(rows, opts)}\n`);
  return 0;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${TAG} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
