/**
 * What every benchmark shares: flags, server processes (started, probed until SERVING, stopped
 * with a drain), a closed-loop load driver with a fixed number of calls in flight, per-process CPU
 * from /proc, percentiles, and Ctrl-C handling that stops children and removes bench data.
 *
 * Benchmarks print; they never pass or fail on their numbers.
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { status as Code, type ServiceError } from '@grpc/grpc-js';
import { Interrupted, killAllChildren, stopServer as stopProcess, type Server } from '../mesh.js';
import { percentile, processCpuSeconds } from '../stats.js';

let tag = 'bench:';

/** Names the benchmark in every progress line ("bench room:"). */
export function setBenchTag(name: string): void {
  tag = `bench ${name}:`;
}

export const say = (line: string): void => void process.stdout.write(`${tag} ${line}\n`);

export interface BenchOptions {
  seconds: number;
  concurrency: number;
  warmup: number;
}

/** --seconds N (measured window), --concurrency N (calls in flight), --warmup N (seconds). */
export function parseArgs(argv: string[], defaults: BenchOptions = { seconds: 5, concurrency: 32, warmup: 1 }): BenchOptions {
  const opts = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const [flag, inline] = arg.includes('=') ? (arg.split('=', 2) as [string, string]) : [arg, undefined];
    const key = { '--seconds': 'seconds', '--concurrency': 'concurrency', '--warmup': 'warmup' }[flag] as keyof typeof opts | undefined;
    if (!key) {
      process.stderr.write(`${tag} unknown argument ${JSON.stringify(arg)}; flags: --seconds N, --concurrency N, --warmup N\n`);
      process.exit(2);
    }
    const raw = inline ?? argv[++i];
    const value = Number(raw);
    const min = key === 'warmup' ? 0 : key === 'seconds' ? 0.1 : 1;
    if (!Number.isFinite(value) || value < min || (key === 'concurrency' && !Number.isInteger(value))) {
      process.stderr.write(`${tag} ${flag} needs a number >= ${min}${key === 'concurrency' ? ' (integer)' : ''} (got ${JSON.stringify(raw)})\n`);
      process.exit(2);
    }
    opts[key] = value;
  }
  return opts;
}

// ---------------------------------------------------------------------------------------------
// Server processes: the tooling's one supervisor (scripts/mesh.ts) starts and stops them

export { Interrupted, serverNodeArgs, startProcess, startServer, type ProbeChannel, type Server } from '../mesh.js';

/** SIGTERM and wait for the drain (SIGKILL after 20 s); an unexpected exit is reported under the bench's tag. */
export const stopServer = (server: Server): Promise<void> => stopProcess(server, { log: say });

// ---------------------------------------------------------------------------------------------
// Load

export type Fire = (done: (err: ServiceError | null) => void) => void;

export interface Window {
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
export function drive(
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

export interface Row {
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

export async function measure(
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


/** One of the variants measureInterleaved alternates between. */
export interface Variant {
  label: string;
  server: Server;
  fire: Fire;
}

/**
 * Measures several variants in alternating slices (a, b, c, a, b, c, …), `opts.seconds` in all
 * for each, after each one's warm-up, and sums each variant's slices into one row. Small
 * differences between variants (a few µs of server CPU per call) then survive a machine whose
 * background load changes from one second to the next, which separate windows one after the other
 * would each catch at a different moment. Also returns, per slice pair, each variant's server
 * CPU per call minus the first variant's, to show the spread.
 */
export async function measureInterleaved(
  step: string,
  variants: Variant[],
  opts: { seconds: number; concurrency: number; warmup: number },
  signal: AbortSignal,
  sliceSeconds = 0.5,
): Promise<{ rows: Row[]; deltas: number[][] }> {
  for (const v of variants) {
    if (opts.warmup <= 0) break;
    say(`${step} ${v.label}: warming up ${opts.warmup}s`);
    await drive(v.fire, { concurrency: opts.concurrency, ms: opts.warmup * 1000, serverPid: v.server.pid, signal });
    if (signal.aborted) throw new Interrupted();
  }
  const rounds = Math.max(1, Math.round(opts.seconds / sliceSeconds));
  const sliceMs = (opts.seconds * 1000) / rounds;
  const windows: Window[][] = variants.map(() => []);
  const deltas: number[][] = variants.map(() => []);
  say(`${step} ${rounds} rounds of ${variants.length} × ${Math.round(sliceMs)} ms, alternating ${variants.map((v) => v.label).join(' / ')}`);
  for (let r = 0; r < rounds; r++) {
    const perCall: number[] = [];
    for (const [i, v] of variants.entries()) {
      const w = await drive(v.fire, { concurrency: opts.concurrency, ms: sliceMs, serverPid: v.server.pid, signal });
      if (signal.aborted) throw new Interrupted();
      windows[i]!.push(w);
      perCall.push((w.serverCpuS * 1e6) / Math.max(1, w.calls));
    }
    for (const [i, x] of perCall.entries()) deltas[i]!.push(x - perCall[0]!);
    if ((r + 1) % Math.max(1, Math.round(rounds / 5)) === 0) say(`${step} round ${r + 1}/${rounds}`);
  }
  const rows = variants.map((v, i): Row => {
    const ws = windows[i]!;
    const calls = ws.reduce((s, w) => s + w.calls, 0);
    const elapsedS = ws.reduce((s, w) => s + w.elapsedMs, 0) / 1000;
    const serverCpuS = ws.reduce((s, w) => s + w.serverCpuS, 0);
    const clientCpuS = ws.reduce((s, w) => s + w.clientCpuS, 0);
    const errors = new Map<string, number>();
    for (const w of ws) for (const [k, n] of w.errors) errors.set(k, (errors.get(k) ?? 0) + n);
    const all = new Float64Array(calls);
    let at = 0;
    for (const w of ws) {
      all.set(w.latenciesMs, at);
      at += w.latenciesMs.length;
    }
    all.sort();
    const errorCount = [...errors.values()].reduce((a, b) => a + b, 0);
    const row: Row = {
      label: v.label,
      callsPerSec: calls / elapsedS,
      p50: percentile(all, 0.5),
      p99: percentile(all, 0.99),
      serverCpuUsPerCall: (serverCpuS * 1e6) / calls,
      clientCpuUsPerCall: (clientCpuS * 1e6) / calls,
      serverCpuShare: serverCpuS / elapsedS,
      errors: errorCount,
      errorKinds: [...errors].map(([k, n]) => `${k} ${n}`).join(', '),
    };
    say(
      `${step} ${v.label}: ${formatK(calls)} calls in ${elapsedS.toFixed(1)}s, ${Math.round(row.callsPerSec)}/s, ` +
        `p50 ${row.p50.toFixed(2)} ms, p99 ${row.p99.toFixed(2)} ms, server ${Math.round(row.serverCpuUsPerCall)} µs/call, errors ${errorCount}${errorCount ? ` (${row.errorKinds})` : ''}`,
    );
    return row;
  });
  return { rows, deltas };
}


export function formatK(n: number): string {
  return n >= 10_000 ? `${Math.round(n / 1000)}k` : n >= 1000 ? `${(n / 1000).toFixed(1)}k` : String(n);
}

export function machineLine(): string {
  const list = cpus();
  const model = (list[0]?.model ?? 'unknown cpu').replace(/\s+/g, ' ').trim();
  const load = loadavg().map((x) => x.toFixed(2)).join(' ');
  return (
    `machine: ${list.length} cpus (${model}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}, ` +
    `${process.platform} ${process.arch}, load average at start ${load}, ${new Date().toISOString()}`
  );
}

/** The run's abort controller, so runBench can tell an interruption from a crash. */
let interruption: AbortController | undefined;

/**
 * First Ctrl-C (or SIGTERM): abort, so the run stops its servers gracefully and removes its data.
 * Second: kill the children at once. Children are also killed if this process exits any other way.
 */
export function interruptible(): AbortController {
  const abort = new AbortController();
  interruption = abort;
  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupts++;
    if (interrupts > 1) {
      say(`second ${sig}: killing the servers now`);
      killAllChildren();
      process.exit(130);
    }
    say(`${sig}: stopping (servers get SIGTERM and drain; bench data is removed)`);
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => {
    killAllChildren();
  });
  return abort;
}

/**
 * Runs a benchmark's main and exits with its code. An interruption (Ctrl-C, then the servers
 * stopped by main's own cleanup) exits 130; a crash prints the stack once.
 */
export function runBench(main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      if (err instanceof Interrupted || interruption?.signal.aborted) {
        say('interrupted; servers stopped');
        process.exit(130);
      }
      process.stderr.write(`${tag} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
