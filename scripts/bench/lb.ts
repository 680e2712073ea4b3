/**
 * `npm run bench:lb`: client-side balancing policies against four Room replicas, one degraded.
 *
 * Setup, all separate processes on this machine: four Room replicas on one database and Redis
 * prefix; r4 runs with FAULT_CPU_FACTOR=3 (every unit of work costs it three times the CPU, as a
 * noisy neighbour would cause). `--clients` client processes (lb-client.ts) each start calls at a
 * fixed rate (open loop), alternating a cheap RPC (GetRoom of one room, a local-cache hit) and an
 * expensive one (BatchGetRooms of `--batch` rooms), seed 001's scenario. Every replica also burns
 * `--burn` ms of CPU per BatchGetRooms (FAULT_CPU_MS): on two shared cores the real batch alone is
 * too cheap for the replicas, rather than the machine, to be where calls queue.
 *
 * Phases:
 *   1. pick_first, round_robin, weighted_round_robin (grpc-js, fed by the per-call ORCA trailer),
 *      livemesh_p2c, `--rounds` times interleaved (so load from other work on the machine falls on
 *      every policy alike): per policy, throughput, p50/p99/p999, errors, each replica's share of
 *      requests and of CPU, max/avg CPU across the healthy replicas;
 *   2. kill: livemesh_p2c under the same load, r2 SIGKILLed, restarted on its port 3 s later:
 *      errors, time to shed it and to use it again;
 *   3. the picker's own cost per pick next to a grpc-js call's client-side CPU.
 * Writes docs/lb-cpu.svg (each replica's CPU over time in every phase). Prints; never fails on a number.
 *
 * Flags: --seconds N (measured window per run, default 10), --warmup N (default 4), --rate N
 * (calls/s over all clients, default 300), --clients N (default 4), --burn MS (default 4),
 * --batch N (default 50), --rounds N (default 3).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { credentials, experimental, Metadata } from '@grpc/grpc-js';
import { RoomServiceClient } from '../../gen/ts/livemesh/room/v1/room.js';
import { P2cChooser } from '../../lb/p2c.js';
import { P2cPicker, P2C_POLICY } from '../../lb/policy.js';
import { LOAD_METADATA_KEY } from '../../lb/load-report.js';
import { fromRoot, repoRoot } from '../../kit/paths.js';
import { ensureInfra, infraUrlsFromEnv } from '../infra.js';
import { bearer, devUserToken } from '../credentials.js';
import { isolate } from '../isolation.js';
import { freePorts } from '../net.js';
import { formatK, Interrupted, interruptible, machineLine, runBench, say, setBenchTag } from './harness.js';
import { percentile, processCpuSeconds } from '../stats.js';
import { liveChildren } from '../mesh.js';
import { renderCpuChart, type Panel } from './lb-chart.js';
import type { ClientConfig, ClientResult, PolicyName } from './lb-client.js';
import { crashReplica, startReplica, stopReplica, type Replica } from '../replicas.js';

setBenchTag('lb');

interface Options {
  seconds: number;
  warmup: number;
  rate: number;
  clients: number;
  /** CPU ms every replica burns per BatchGetRooms on top of the real work (FAULT_CPU_MS). */
  burn: number;
  /** Rooms per BatchGetRooms. */
  batch: number;
  /** Each policy runs this many times, interleaved, so load from elsewhere hits all alike. */
  rounds: number;
}

function parseFlags(argv: string[]): Options {
  const opts: Options = { seconds: 10, warmup: 4, rate: 300, clients: 4, burn: 4, batch: 50, rounds: 3 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = (argv[i] ?? '').split('=', 2) as [string, string | undefined];
    const key = flag.replace(/^--/, '') as keyof Options;
    if (!(key in opts)) {
      process.stderr.write(`bench lb: unknown argument ${JSON.stringify(argv[i])}; flags: --seconds N, --warmup N, --rate N, --clients N, --burn MS, --batch N, --rounds N\n`);
      process.exit(2);
    }
    const value = Number(inline ?? argv[++i]);
    if (!Number.isFinite(value) || value < 0 || (key !== 'burn' && value === 0) || (['clients', 'batch', 'rounds'].includes(key) && !Number.isInteger(value))) {
      process.stderr.write(`bench lb: --${key} needs a positive number\n`);
      process.exit(2);
    }
    opts[key] = value;
  }
  return opts;
}

type Seed = { roomId: string; batchIds: string[] };

const POLICIES: PolicyName[] = ['pick_first', 'round_robin', 'weighted_round_robin', P2C_POLICY];
const DEGRADED = 3; // r4
const VICTIM = 1; // r2, killed in phase 2
const CPU_FACTOR = 3;
const DEADLINE_MS = 2000;
const now = () => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------------------------------------
// Replica CPU, sampled for the whole run

class CpuSampler {
  readonly samples: Array<{ at: number; cpuS: number[] }> = [];
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly replicas: Replica[]) {}
  start(): void {
    this.timer = setInterval(() => this.samples.push({ at: now(), cpuS: this.read() }), 250);
  }
  stop(): void {
    clearInterval(this.timer);
  }
  /** Cumulative CPU seconds per replica; a replica being restarted reads NaN. */
  read(): number[] {
    return this.replicas.map((r) => {
      try {
        return processCpuSeconds(r.pid);
      } catch {
        return NaN;
      }
    });
  }
  /** Per-sample CPU (% of one core) between `from` and `to`, with times relative to `from`. */
  series(from: number, to: number): Panel['samples'] {
    const out: Panel['samples'] = [];
    const inRange = this.samples.filter((s) => s.at >= from - 250 && s.at <= to);
    for (let i = 1; i < inRange.length; i++) {
      const a = inRange[i - 1]!;
      const b = inRange[i]!;
      const dt = (b.at - a.at) / 1000;
      // A restart changes the pid (its counter starts again at zero): count such a step as 0.
      out.push({ t: (b.at - from) / 1000, cpu: b.cpuS.map((v, k) => (Number.isFinite(v) && Number.isFinite(a.cpuS[k]!) && v >= a.cpuS[k]! ? ((v - a.cpuS[k]!) / dt) * 100 : 0)) });
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Client processes

interface Phase {
  clients: ChildProcess[];
  results: Promise<ClientResult[]>;
}

async function startClients(policy: PolicyName, replicas: Replica[], opts: Options, seed: Seed, samplePicks: boolean): Promise<Phase> {
  const clients: ChildProcess[] = [];
  const ready: Array<Promise<void>> = [];
  const results: Array<Promise<ClientResult>> = [];
  for (let id = 0; id < opts.clients; id++) {
    const cfg: ClientConfig = {
      id,
      policy,
      addresses: replicas.map((r) => r.address),
      rate: opts.rate / opts.clients,
      deadlineMs: DEADLINE_MS,
      roomId: seed.roomId,
      batchIds: seed.batchIds,
      samplePicks,
      wrrBlackoutS: 2,
    };
    const child = fork(fromRoot('dist', 'scripts', 'bench', 'lb-client.js'), [], {
      env: { ...process.env, LB_BENCH_CLIENT: JSON.stringify(cfg) },
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    liveChildren.add(child);
    child.once('exit', () => liveChildren.delete(child));
    clients.push(child);
    ready.push(
      new Promise((resolve, reject) => {
        child.once('message', (m: { type: string }) => (m.type === 'ready' ? resolve() : reject(new Error(`client ${id}: unexpected ${m.type}`))));
        child.once('exit', (code) => reject(new Error(`client ${id} exited with ${code} before it was ready`)));
      }),
    );
    results.push(
      new Promise((resolve, reject) => {
        child.on('message', (m: ClientResult) => m.type === 'result' && resolve(m));
        child.once('exit', (code) => reject(new Error(`client ${id} exited with ${code} without a result`)));
      }),
    );
  }
  await Promise.all(ready);
  return { clients, results: Promise.all(results) };
}

const tell = (phase: Phase, type: string) => phase.clients.forEach((c) => c.send({ type }));

/** Progress lines every 5 s, interruptible. */
async function wait(ms: number, signal: AbortSignal, progress: (elapsedS: number) => void): Promise<void> {
  const until = performance.now() + ms;
  let next = 5000;
  while (performance.now() < until) {
    if (signal.aborted) throw new Interrupted();
    await sleep(Math.min(250, until - performance.now()));
    const elapsed = ms - (until - performance.now());
    if (elapsed >= next) {
      progress(elapsed / 1000);
      next += 5000;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Phase 1: policies

interface PolicyRow {
  policy: PolicyName;
  rps: number;
  calls: number;
  p50: number;
  p99: number;
  p999: number;
  errors: number;
  errorKinds: string;
  requestShare: number[];
  cpuShare: number[];
  cpuCores: number[];
  healthyMaxOverAvg: number;
  clientCpuUsPerCall: number;
  panel: Panel;
}

function mergeResults(results: ClientResult[], replicas: Replica[]) {
  const all = new Float64Array(results.reduce((n, r) => n + r.latencies.length, 0));
  let o = 0;
  for (const r of results) {
    all.set(r.latencies, o);
    o += r.latencies.length;
  }
  all.sort();
  const byPeer = new Map<string, number>();
  const errors = new Map<string, number>();
  for (const r of results) {
    for (const [peer, n] of Object.entries(r.byPeer)) byPeer.set(peer, (byPeer.get(peer) ?? 0) + n);
    for (const [code, n] of Object.entries(r.errors)) errors.set(code, (errors.get(code) ?? 0) + n);
  }
  const calls = all.length;
  const samples = Object.assign({}, ...results.map((r) => r.errorSamples)) as Record<string, string>;
  for (const [code, message] of Object.entries(samples)) say(`  e.g. ${code}: ${message}`);
  return {
    sorted: all,
    calls,
    ok: results.reduce((n, r) => n + r.ok, 0),
    errors: [...errors.values()].reduce((a, b) => a + b, 0),
    errorKinds: [...errors].map(([k, n]) => `${k} ${n}`).join(', '),
    requestShare: replicas.map((rep) => (byPeer.get(rep.address) ?? 0) / Math.max(1, calls)),
    clientCpuUsPerCall: (results.reduce((n, r) => n + r.cpuMs, 0) * 1000) / Math.max(1, calls),
  };
}

/** One measured run of one policy: the clients' raw results and the replicas' CPU over the window. */
interface PolicyRun {
  results: ClientResult[];
  cpuS: number[];
  windowS: number;
  panel: Panel;
}

async function runPolicy(step: string, policy: PolicyName, replicas: Replica[], sampler: CpuSampler, opts: Options, seed: Seed, signal: AbortSignal): Promise<PolicyRun> {
  say(`${step} ${policy}: starting ${opts.clients} client processes, ${opts.rate} calls/s in total; warming up ${opts.warmup}s`);
  const phase = await startClients(policy, replicas, opts, seed, false);
  const t0 = now();
  tell(phase, 'go');
  await wait(opts.warmup * 1000, signal, () => {});
  tell(phase, 'mark');
  const t1 = now();
  const cpu1 = sampler.read();
  await wait(opts.seconds * 1000, signal, (s) => {
    const cpu = sampler.read();
    say(`${step} ${policy}: ${Math.round(s)}s/${opts.seconds}s, replica CPU so far ${cpu.map((v, i) => `r${i + 1} ${(((v - cpu1[i]!) / s) * 100).toFixed(0)}%`).join(' ')}`);
  });
  const cpu2 = sampler.read();
  const t2 = now();
  tell(phase, 'stop');
  const run: PolicyRun = {
    results: await phase.results,
    cpuS: cpu2.map((v, i) => v - cpu1[i]!),
    windowS: (t2 - t1) / 1000,
    panel: { title: policy, samples: sampler.series(t0, t2), marks: [{ t: (t1 - t0) / 1000, label: 'measured →' }, { t: (t2 - t0) / 1000, label: '' }] },
  };
  const row = summarize(policy, [run], replicas);
  // What client 1's balancer saw, once a second: why each replica got its share.
  const label = (address: string) => `r${replicas.findIndex((r) => r.address === address) + 1}`;
  for (const v of run.results[0]?.views ?? []) {
    const line = v.endpoints.map((e) => `${label(e.address)} load ${e.load.toFixed(2)} lat ${e.latencyMs.toFixed(1)} in ${e.inflight}${e.avoided ? ' AVOIDED' : ''}`).join(' | ');
    say(`${step} ${policy}: client 1 sees ${line}`);
  }
  say(
    `${step} ${policy}: ${formatK(row.calls)} calls, ${Math.round(row.rps)} ok/s, p50 ${row.p50.toFixed(1)} ms, p99 ${row.p99.toFixed(1)} ms, p999 ${row.p999.toFixed(1)} ms, ` +
      `errors ${row.errors}${row.errors ? ` (${row.errorKinds})` : ''}, r4 share ${pct(row.requestShare[DEGRADED]!)}, healthy CPU max/avg ${row.healthyMaxOverAvg.toFixed(2)}`,
  );
  return run;
}

/** One table row from every run of a policy: latencies pooled, CPU and windows summed. */
function summarize(policy: PolicyName, runs: PolicyRun[], replicas: Replica[]): PolicyRow {
  const m = mergeResults(
    runs.flatMap((r) => r.results),
    replicas,
  );
  const windowS = runs.reduce((n, r) => n + r.windowS, 0);
  const cores = replicas.map((_, i) => runs.reduce((n, r) => n + r.cpuS[i]!, 0) / windowS);
  const totalCpu = cores.reduce((a, b) => a + b, 0);
  const healthy = cores.filter((_, i) => i !== DEGRADED);
  return {
    policy,
    rps: m.ok / windowS,
    calls: m.calls,
    p50: percentile(m.sorted, 0.5),
    p99: percentile(m.sorted, 0.99),
    p999: percentile(m.sorted, 0.999),
    errors: m.errors,
    errorKinds: m.errorKinds,
    requestShare: m.requestShare,
    cpuShare: cores.map((c) => c / totalCpu),
    cpuCores: cores,
    healthyMaxOverAvg: Math.max(...healthy) / (healthy.reduce((a, b) => a + b, 0) / healthy.length),
    clientCpuUsPerCall: m.clientCpuUsPerCall,
    panel: runs[0]!.panel,
  };
}

// ---------------------------------------------------------------------------------------------
// Phase 2: kill and restart one replica under livemesh_p2c

interface KillResult {
  calls: number;
  errors: number;
  errorKinds: string;
  shedMs: number;
  firstPickMs: number;
  fairShareMs: number;
  restartMs: number;
  panel: Panel;
}

async function runKill(replicas: Replica[], sampler: CpuSampler, opts: Options, seed: Seed, iso: Record<string, string>, signal: AbortSignal): Promise<KillResult> {
  const victim = replicas[VICTIM]!;
  say(`[kill] ${P2C_POLICY}: starting ${opts.clients} client processes; r${VICTIM + 1} (${victim.address}) will be SIGKILLed after ${opts.warmup}s and restarted 3 s later`);
  const phase = await startClients(P2C_POLICY, replicas, opts, seed, true);
  const t0 = now();
  tell(phase, 'go');
  tell(phase, 'mark');
  await wait(opts.warmup * 1000, signal, () => {});
  const killedAt = now();
  await crashReplica(victim);
  say(`[kill] r${VICTIM + 1} SIGKILLed`);
  await wait(3000, signal, () => {});
  const spawnAt = now();
  replicas[VICTIM] = await startReplica(`r${VICTIM + 1}`, victim.port, iso, signal);
  const servingAt = now();
  say(`[kill] r${VICTIM + 1} restarted, SERVING after ${Math.round(servingAt - spawnAt)} ms; running on for 8 s`);
  await wait(8000, signal, () => {});
  const t2 = now();
  tell(phase, 'stop');
  const results = await phase.results;
  const m = mergeResults(results, replicas);

  // Shedding: the last moment any client's balancer still picked the dead replica (20 ms samples).
  let lastPick = killedAt;
  let firstBack = Infinity;
  for (const r of results) {
    for (let i = 1; i < r.picks.length; i++) {
      const [t, counts] = r.picks[i]!;
      const grew = (counts[victim.address] ?? 0) > (r.picks[i - 1]![1][victim.address] ?? 0);
      if (grew && t > killedAt && t < spawnAt) lastPick = Math.max(lastPick, t);
      if (grew && t >= servingAt) firstBack = Math.min(firstBack, t);
    }
  }
  // Recovery to fair share: first 500 ms window after SERVING in which the victim got at least
  // half the picks of an average healthy replica, summed over clients.
  const healthyOthers = replicas.map((r) => r.address).filter((_, i) => i !== VICTIM && i !== DEGRADED);
  let fairAt = Infinity;
  for (let t = servingAt; t + 500 <= t2; t += 100) {
    const sum = (addr: string) =>
      results.reduce((n, r) => {
        const at = (x: number) => [...r.picks].reverse().find(([ts]) => ts <= x)?.[1][addr] ?? 0;
        return n + at(t + 500) - at(t);
      }, 0);
    const others = healthyOthers.reduce((n, a) => n + sum(a), 0) / healthyOthers.length;
    if (others > 0 && sum(victim.address) >= others / 2) {
      fairAt = t + 500;
      break;
    }
  }
  const result: KillResult = {
    calls: m.calls,
    errors: m.errors,
    errorKinds: m.errorKinds,
    shedMs: lastPick - killedAt,
    firstPickMs: firstBack - servingAt,
    fairShareMs: fairAt - servingAt,
    restartMs: servingAt - spawnAt,
    panel: {
      title: `kill phase (${P2C_POLICY}): r${VICTIM + 1} SIGKILLed, restarted`,
      samples: sampler.series(t0, t2),
      marks: [
        { t: (killedAt - t0) / 1000, label: 'SIGKILL' },
        { t: (servingAt - t0) / 1000, label: 'SERVING' },
      ],
    },
  };
  say(
    `[kill] ${formatK(m.calls)} calls, errors ${m.errors}${m.errors ? ` (${m.errorKinds})` : ''}; shed within ${result.shedMs.toFixed(0)} ms; ` +
      `first pick ${result.firstPickMs.toFixed(0)} ms and half of fair share ${result.fairShareMs.toFixed(0)} ms after SERVING`,
  );
  return result;
}

// ---------------------------------------------------------------------------------------------
// Phase 3: what a pick costs

function pickerCost(): { p2cNs: number; trivialNs: number; wrrShippedMs: number } {
  const args = { metadata: new Metadata(), extraPickInfo: {} };
  const trailers = new Metadata();
  trailers.set(LOAD_METADATA_KEY, 'cpu=0.213,elu=0.402');
  const complete = { pickResultType: experimental.PickResultType.COMPLETE, subchannel: {} as experimental.SubchannelInterface, status: null, onCallStarted: null, onCallEnded: null };
  const leaf = { pick: () => complete };
  const chooser = new P2cChooser();
  const entries = ['a:1', 'b:1', 'c:1', 'd:1'].map((a) => ({ stats: chooser.create(a), picker: leaf, loadCache: { raw: undefined, value: undefined } }));
  const picker = new P2cPicker(entries, chooser);
  const N = 300_000;
  const time = (fn: () => void) => {
    for (let i = 0; i < 20_000; i++) fn(); // warm the JIT
    const t = process.hrtime.bigint();
    for (let i = 0; i < N; i++) fn();
    return Number(process.hrtime.bigint() - t) / N;
  };
  const p2cNs = time(() => {
    const r = picker.pick(args);
    r.onCallStarted?.();
    r.onCallEnded?.(0, 'OK', trailers);
  });
  let i = 0;
  const trivialNs = time(() => void entries[i++ % entries.length]!.picker.pick());
  // WRR as shipped: per-call ORCA trailer through grpc-js's own reader (re-parses orca.proto).
  const require = createRequire(join(repoRoot(), 'package.json'));
  const orca = require('@grpc/grpc-js/build/src/orca.js') as { createMetricsReader: (l: (r: unknown) => void, prev: null) => (c: number, d: string, m: Metadata) => void };
  const orcaMd = () => {
    const md = new Metadata();
    md.set('endpoint-load-metrics-bin', Buffer.from([0x09, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f]));
    return md;
  };
  const reader = orca.createMetricsReader(() => {}, null);
  reader(0, '', orcaMd());
  const runs = 20;
  const t = process.hrtime.bigint();
  for (let k = 0; k < runs; k++) reader(0, '', orcaMd());
  return { p2cNs, trivialNs, wrrShippedMs: Number(process.hrtime.bigint() - t) / runs / 1e6 };
}

// ---------------------------------------------------------------------------------------------
// Report

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

function report(rows: PolicyRow[], kill: KillResult | undefined, cost: ReturnType<typeof pickerCost>, opts: Options, machine: string): string {
  const labels = ['r1', 'r2', 'r3', `r4 (×${CPU_FACTOR} CPU)`];
  const lines = [
    machine,
    `${opts.clients} client processes, ${opts.rate} calls/s in total (open loop), alternating GetRoom and BatchGetRooms(${opts.batch}, every replica burning ${opts.burn} ms of CPU on top); deadline ${DEADLINE_MS} ms, ` +
      `reads retried on UNAVAILABLE; ${opts.warmup}s warm-up, ${opts.seconds}s measured, ${opts.rounds} interleaved round(s) per policy. Replica r4 runs with FAULT_CPU_FACTOR=${CPU_FACTOR}.`,
    '',
    '| policy | ok calls/s | p50 ms | p99 ms | p999 ms | errors | requests r1/r2/r3/r4 | CPU r1/r2/r3/r4 | healthy CPU max/avg | client CPU µs/call |',
    '|---|---:|---:|---:|---:|---:|---|---|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.policy} | ${Math.round(r.rps)} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.p999.toFixed(1)} | ${r.errors}${r.errors ? ` (${r.errorKinds})` : ''} | ` +
        `${r.requestShare.map(pct).join(' / ')} | ${r.cpuShare.map(pct).join(' / ')} | ${r.healthyMaxOverAvg.toFixed(2)} | ${Math.round(r.clientCpuUsPerCall)} |`,
    ),
    '',
    `Replica CPU in the window, cores: ${rows.map((r) => `${r.policy} ${r.cpuCores.map((c, i) => `${labels[i]} ${c.toFixed(2)}`).join(', ')}`).join('; ')}.`,
  ];
  const ours = rows.find((r) => r.policy === P2C_POLICY);
  const rr = rows.find((r) => r.policy === 'round_robin');
  const wrr = rows.find((r) => r.policy === 'weighted_round_robin');
  if (ours && rr && wrr) {
    lines.push(
      '',
      `Targets: p99 ${ours.p99.toFixed(1)} ms vs round_robin ${rr.p99.toFixed(1)} ms (ratio ${(ours.p99 / rr.p99).toFixed(2)}, target ≤ 0.50) ` +
        `and weighted_round_robin ${wrr.p99.toFixed(1)} ms (target: below); healthy CPU max/avg ${ours.healthyMaxOverAvg.toFixed(2)} (target ≤ 1.10).`,
    );
  }
  if (kill) {
    lines.push(
      '',
      `Kill phase (${P2C_POLICY}, same load): ${kill.calls} calls, ${kill.errors} errors (${pct(kill.errors / Math.max(1, kill.calls))}; target < 0.1%)${kill.errors ? ` — ${kill.errorKinds}` : ''}; ` +
        `r${VICTIM + 1} last picked ${kill.shedMs.toFixed(0)} ms after SIGKILL (20 ms sampling); restarted process SERVING after ${kill.restartMs.toFixed(0)} ms; ` +
        `first picked again ${kill.firstPickMs.toFixed(0)} ms and at half a healthy replica's pick rate ${kill.fairShareMs.toFixed(0)} ms after SERVING.`,
    );
  }
  const base = rows.find((r) => r.policy === 'pick_first');
  lines.push(
    '',
    `Picker cost: ${cost.p2cNs.toFixed(0)} ns per pick for ${P2C_POLICY} (pick, onCallStarted, onCallEnded with the lm-load trailer), ` +
      `${cost.trivialNs.toFixed(0)} ns for a trivial index picker; a grpc-js unary call costs ${base ? Math.round(base.clientCpuUsPerCall) : '?'} µs of client CPU here (pick_first row), ` +
      `so the P2C picker is ${base ? ((cost.p2cNs / 1000 / base.clientCpuUsPerCall) * 100).toFixed(2) : '?'}% of it. ` +
      `grpc-js 1.14.7's weighted_round_robin with per-call ORCA trailers, unshimmed, spends ${cost.wrrShippedMs.toFixed(1)} ms of client CPU per call re-parsing orca.proto.`,
  );
  return lines.join('\n');
}

/** Each run on its own, to show how much of a difference is the machine rather than the policy. */
function perRunTable(perRun: Array<{ round: number; row: PolicyRow }>): string {
  return [
    '| run | policy | p50 ms | p99 ms | p999 ms | errors | r4 share of requests | healthy CPU max/avg |',
    '|---:|---|---:|---:|---:|---:|---:|---:|',
    ...perRun.map(
      ({ round, row: r }) =>
        `| ${round} | ${r.policy} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.p999.toFixed(1)} | ${r.errors} | ${pct(r.requestShare[DEGRADED]!)} | ${r.healthyMaxOverAvg.toFixed(2)} |`,
    ),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const opts = parseFlags(process.argv.slice(2));
  const abort = interruptible();
  const machine = machineLine();
  say(machine);
  say(
    `plan: 4 Room replicas (r4 ×${CPU_FACTOR} CPU), ${opts.clients} clients at ${opts.rate} calls/s; ${opts.rounds} round(s) of ${POLICIES.length} policies × (${opts.warmup}s + ${opts.seconds}s), ` +
      `then a kill phase (~${opts.warmup + 11}s)`,
  );
  const infra = await ensureInfra(infraUrlsFromEnv(), { dataDir: join(repoRoot(), '.data'), log: (line) => say(line) });
  const iso = isolate('benchlb', 'livemesh_bench');
  const replicas: Replica[] = [];
  const sampler = new CpuSampler(replicas);
  try {
    const ports = await freePorts(4);
    for (const [i, port] of ports.entries()) {
      replicas.push(await startReplica(`r${i + 1}`, port, replicaEnv(iso.env, i, opts), abort.signal));
      say(`r${i + 1} serving on ${replicas[i]!.address}${i === DEGRADED ? ` (FAULT_CPU_FACTOR=${CPU_FACTOR})` : ''}`);
    }
    const seed = await seedRooms(replicas[0]!.address, opts.batch);
    say(`seeded ${seed.batchIds.length} rooms (database ${iso.database}, Redis prefix ${iso.redisPrefix})`);
    sampler.start();
    const runs = new Map<PolicyName, PolicyRun[]>(POLICIES.map((p) => [p, []]));
    let step = 0;
    for (let round = 0; round < opts.rounds; round++) {
      for (const policy of POLICIES) {
        runs.get(policy)!.push(await runPolicy(`[${++step}/${POLICIES.length * opts.rounds}]`, policy, replicas, sampler, opts, seed, abort.signal));
        await sleep(2000); // let load windows and in-flight work settle between policies
      }
    }
    const rows = POLICIES.map((p) => summarize(p, runs.get(p)!, replicas));
    const perRun = POLICIES.flatMap((p) => runs.get(p)!.map((r, i) => ({ round: i + 1, row: summarize(p, [r], replicas) })));
    const kill = await runKill(replicas, sampler, opts, seed, replicaEnv(iso.env, VICTIM, opts), abort.signal);
    sampler.stop();
    say('[cost] timing the picker');
    const cost = pickerCost();
    const svgPath = join(repoRoot(), 'docs', 'lb-cpu.svg');
    writeFileSync(
      svgPath,
      renderCpuChart(
        [...rows.map((r) => r.panel), kill.panel],
        ['r1', 'r2', 'r3', `r4 (×${CPU_FACTOR} CPU)`],
        `bench:lb — replica CPU, ${opts.rate} calls/s, ${opts.clients} clients, ${new Date().toISOString().slice(0, 10)}`,
      ),
    );
    say(`wrote ${svgPath}`);
    process.stdout.write(`\n${report(rows, kill, cost, opts, machine)}\n\n${perRunTable(perRun)}\n`);
    return 0;
  } finally {
    sampler.stop();
    await Promise.all(replicas.map((r) => stopReplica(r)));
    try {
      const keys = await iso.cleanup();
      say(`cleanup: dropped database ${iso.database} and ${keys} Redis key(s)`);
    } catch (err) {
      say(`cleanup FAILED: ${(err as Error).message}`);
    }
    await infra.stop();
  }
}

/** Every replica: the isolation, and `burn` ms of CPU per BatchGetRooms; r4 also costs ×CPU_FACTOR. */
function replicaEnv(isoEnv: Record<string, string>, index: number, opts: Options): Record<string, string> {
  return {
    ...isoEnv,
    ...(opts.burn > 0 ? { FAULT_CPU_MS: String(opts.burn), FAULT_METHODS: 'BatchGetRooms' } : {}),
    ...(index === DEGRADED ? { FAULT_CPU_FACTOR: String(CPU_FACTOR) } : {}),
  };
}

/** One room for GetRoom and `batch` rooms for BatchGetRooms, created through r1. */
async function seedRooms(address: string, batch: number): Promise<Seed> {
  const client = new RoomServiceClient(address, credentials.createInsecure());
  const md = bearer(devUserToken('424242', 'streamer'));
  try {
    const ids: string[] = [];
    for (let i = 0; i < batch; i++) {
      const id = await new Promise<string>((resolve, reject) =>
        client.createRoom(
          { streamerId: '0', title: `bench room ${i}`, category: 'music', coverKey: `covers/${i}.jpg`, notice: 'benchmark', requestId: `bench-lb-${i}` },
          md,
          (err, res) => (err ? reject(err) : resolve(res.room!.roomId)),
        ),
      );
      ids.push(id);
    }
    return { roomId: ids[0]!, batchIds: ids };
  } finally {
    client.close();
  }
}

runBench(main);
