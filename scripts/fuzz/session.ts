/**
 * A whole fuzz session: the mesh as separate processes in its own isolation namespace, real data
 * seeded, every target fuzzed, then a health check of every process; `npm run fuzz` and the smoke
 * test both run this.
 */
import { Agent } from 'node:http';
import { credentials, Metadata } from '@grpc/grpc-js';
import { SingleBar } from 'cli-progress';
import { HealthCheckResponse_ServingStatus as Serving, HealthClient } from '../../gen/ts/grpc/health/v1/health.js';
import { isolate } from '../isolation.js';
import { startMesh, type Mesh, type MeshProcess, type ServiceName } from '../mesh.js';
import { loadRegistry, rpcTargets, RpcClients } from './grpc-target.js';
import { mintTokens, routeTargets } from './http-target.js';
import { formatReport } from './report.js';
import { Rng } from '../random.js';
import { runTargets, type RunResult, type Target } from './runner.js';
import { seedData } from './seed-data.js';
import { httpFuzzTarget, rpcFuzzTarget } from './targets.js';

export interface FuzzOptions {
  seed: string;
  /** Cases per target. */
  cases: number;
  /** Only targets whose name contains this (case-insensitive), or matches it as a regular expression. */
  only?: string;
  concurrency: number;
  /** Targets fuzzed at the same time. */
  parallel: number;
  /** Replicas per gRPC service. */
  replicas: number;
  /** How much data to seed (defaults: 120 viewers, 10 streamers). */
  seedSize?: { viewers?: number; streamers?: number };
  /** See HttpRules.tolerateOverload. */
  tolerateOverload: boolean;
  /** Progress and summary lines. */
  say: (line: string) => void;
  /** Draw a progress bar (an interactive terminal); otherwise one line per target. */
  bar?: boolean;
}

export interface FuzzSession {
  result: RunResult;
  /** Processes that failed the after-run health check, with why. */
  unhealthy: string[];
  /** The printed report. */
  text: string;
  ok: boolean;
}

/** The BFF's body limit in the mesh; huge-body cases aim around it. */
const BODY_LIMIT = 16_384;

export function matches(name: string, only: string | undefined): boolean {
  if (!only) return true;
  if (name.toLowerCase().includes(only.toLowerCase())) return true;
  try {
    return new RegExp(only, 'i').test(name);
  } catch {
    return false;
  }
}

export async function runFuzzSession(opts: FuzzOptions): Promise<FuzzSession> {
  const iso = isolate('fuzz');
  const errorLines = new Map<string, string[]>();
  let mesh: Mesh | undefined;
  const clients = new RpcClients((service) => mesh?.addresses(service as ServiceName) ?? []);
  const agent = new Agent({ keepAlive: true, maxSockets: opts.concurrency * opts.parallel });
  try {
    opts.say(`seed ${opts.seed}; ${opts.cases} cases per target; ${opts.parallel} targets at a time, ${opts.concurrency} cases in flight each; isolation ${iso.id}`);
    const started = Date.now();
    mesh = await startMesh({
      replicas: opts.replicas,
      env: {
        ...iso.env,
        LOG_LEVEL: 'warn',
        // Cases carry X-Forwarded-For from many addresses, so the per-address limit rarely hides a handler.
        TRUST_PROXY_HOPS: '1',
        BODY_LIMIT_BYTES: String(BODY_LIMIT),
      },
      // Error-level lines and anything on stderr: what a crash report shows of the process's last moments.
      onLine: (proc: MeshProcess, line: string, stream) => {
        if (stream === 'stdout' && !/"level":"(error|fatal)"/.test(line)) return;
        const kept = errorLines.get(proc.name) ?? [];
        kept.push(line.length > 2000 ? `${line.slice(0, 2000)}…` : line);
        if (kept.length > 20) kept.shift();
        errorLines.set(proc.name, kept);
      },
    });
    opts.say(`mesh up in ${((Date.now() - started) / 1000).toFixed(1)} s: ${mesh.processes.map((p) => p.name).join(', ')}`);
    const registry = loadRegistry();
    const known = await seedData(registry, clients, opts.seedSize ?? {}, (line) => opts.say(line));
    const tokens = await mintTokens(known, new Rng(`${opts.seed}:tokens`));
    // Two phases, routes first: the admin RPCs fuzzed directly (CheckInvariants scans every shard)
    // can load a service enough that the BFF, running beside them, answers 503 for it.
    const phases: Array<Array<Target<unknown>>> = [
      routeTargets().map((r) => httpFuzzTarget(r, (mesh as Mesh).bffUrl, agent, known, tokens, { tolerateOverload: opts.tolerateOverload, bodyLimit: BODY_LIMIT }) as Target<unknown>),
      rpcTargets(registry).map((t) => rpcFuzzTarget(t, clients, registry, known) as Target<unknown>),
    ].map((phase) => phase.filter((t) => matches(t.name, opts.only)));
    const targets = phases.flat();
    if (targets.length === 0) throw new Error(`no target matches --only ${opts.only ?? ''}`);

    const seenCrashes = new Set<string>();
    const newCrashes = () =>
      (mesh as Mesh)
        .crashed()
        .map((p) => p.name)
        .filter((name) => !seenCrashes.has(name) && seenCrashes.add(name));
    const bar = opts.bar ? new SingleBar({ format: 'fuzz {bar} {percentage}% {value}/{total} cases | {target}', hideCursor: true }) : undefined;
    bar?.start(targets.length * opts.cases, 0, { target: '' });
    const run = (phase: Array<Target<unknown>>) => runTargets(phase, {
      seed: opts.seed,
      cases: opts.cases,
      concurrency: opts.concurrency,
      parallel: opts.parallel,
      newCrashes,
      onTargetStart: (_i, _n, name) => bar?.update({ target: name }),
      onCase: () => bar?.increment(),
      onTargetDone: (r) => {
        if (bar) return;
        const top = [...r.counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([k, v]) => `${k} ${v}`).join(', ');
        opts.say(`[${r.name}] ${r.cases} cases, ${Math.round(r.cases / Math.max(r.seconds, 1e-9))}/s, ${r.failures} failures (${top})`);
      },
    });
    const results = [];
    for (const phase of phases) results.push(await run(phase));
    const result: RunResult = { reports: results.flatMap((r) => r.reports), failures: results.flatMap((r) => r.failures), crashes: results.flatMap((r) => r.crashes) };
    bar?.stop();

    const unhealthy = await healthCheck(mesh);
    for (const name of newCrashes()) result.crashes.push({ process: name, target: '(after the last target)', suspects: [] });
    const extra: string[] = [];
    for (const c of result.crashes) {
      const p = mesh.get(c.process);
      extra.push(`${c.process} exits: ${JSON.stringify(p.exits)}`, ...(errorLines.get(c.process) ?? []).map((l) => `  ${c.process}| ${l}`));
    }
    for (const u of unhealthy) extra.push(`UNHEALTHY after the run: ${u}`);
    // When something failed, the processes' last error lines usually say why.
    if (!(result.failures.length === 0 && result.crashes.length === 0)) {
      for (const [name, lines] of errorLines) for (const l of lines.slice(-3)) extra.push(`  ${name}| ${l.slice(0, 1500)}`);
    }
    const errorCounts = [...errorLines.entries()].map(([name, lines]) => `${name} ${lines.length}${lines.length === 20 ? '+' : ''}`);
    extra.push(`error-level log lines: ${errorCounts.length > 0 ? errorCounts.join(', ') : 'none'}`);
    const failures = result.reports.reduce((s, r) => s + r.failures, 0) + unhealthy.length;
    const ok = failures === 0 && result.crashes.length === 0;
    extra.push(ok ? `fuzz: PASSED (seed ${opts.seed})` : `fuzz: FAILED: ${failures} failing cases, ${result.crashes.length} crashed processes (seed ${opts.seed}; rerun with --seed ${opts.seed}${opts.only ? ` --only '${opts.only}'` : ''})`);
    return { result, unhealthy, text: formatReport(result, extra), ok };
  } finally {
    clients.close();
    agent.destroy();
    await mesh?.stop();
    await iso.cleanup().catch((err: unknown) => opts.say(`cleanup failed: ${String(err)}`));
  }
}

/** Every gRPC process SERVING and the BFF ready: a process that lived but wedged is a failure too. */
async function healthCheck(mesh: Mesh): Promise<string[]> {
  const problems: string[] = [];
  await Promise.all(
    mesh.processes.map(async (p) => {
      if (!p.alive) {
        problems.push(`${p.name} is not running`);
        return;
      }
      if (p.kind === 'http') {
        const res = await fetch(`${mesh.bffUrl}/readyz`, { signal: AbortSignal.timeout(5000) }).catch((err: unknown) => err as Error);
        if (res instanceof Error || res.status !== 200) problems.push(`${p.name} /readyz: ${res instanceof Error ? res.message : res.status}`);
        return;
      }
      const client = new HealthClient(`127.0.0.1:${p.port}`, credentials.createInsecure());
      const status = await new Promise<string>((resolve) =>
        client.check({ service: '' }, new Metadata(), { deadline: Date.now() + 5000 }, (err, res) => resolve(err ? err.message : res.status === Serving.SERVING ? 'SERVING' : String(res.status))),
      );
      client.close();
      if (status !== 'SERVING') problems.push(`${p.name} health: ${status}`);
    }),
  );
  return problems;
}
