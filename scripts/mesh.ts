/**
 * The one process supervisor of the tooling: the mesh as separate processes (the plan, which
 * process listens where), spawning, readiness and stopping, and single server processes.
 * `npm start` prints what happens; the chaos, fuzz and soak runs use `startMesh` to kill, restart
 * and watch single replicas; the tests and benchmarks start single processes (a service, a bench
 * server) with `startServer` / `startProcess`. All of them go through the same code, so what those
 * suites prove is about the processes a developer actually runs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { credentials, Metadata, type ChannelCredentials, type ChannelOptions } from '@grpc/grpc-js';
import { DEV_TLS_DIR } from '../kit/config.js';
import { ensureDevCerts, ensureDevKeys, operatorChannel } from './credentials.js';
import { HealthCheckResponse_ServingStatus as Serving, HealthClient } from '../gen/ts/grpc/health/v1/health.js';
import { repoRoot } from '../kit/paths.js';
import { freePorts } from './net.js';

// ---------------------------------------------------------------------------------------------
// The plan

/** The port table from DESIGN.md; replica 2 listens at +100 and every gRPC process serves metrics at +1000. */
export const SERVICES = [
  { name: 'room', port: 50051 },
  { name: 'gift', port: 50052 },
  { name: 'ledger', port: 50053 },
  { name: 'chat', port: 50054 },
  { name: 'ranking', port: 50055 },
] as const;
export type ServiceName = (typeof SERVICES)[number]['name'];
const BFF_PORT = 8080;
const REPLICA_PORT_STEP = 100;
const METRICS_PORT_STEP = 1000;
/** The highest port in the table (ranking-2's metrics); an offset must keep it below 65536. */
export const HIGHEST_PORT = 50055 + REPLICA_PORT_STEP + METRICS_PORT_STEP;

export interface ProcessSpec {
  /** name in log prefixes and messages: room-1, room-2, bff */
  name: string;
  service: ServiceName | 'bff';
  kind: 'grpc' | 'http';
  script: string;
  port: number;
  metricsPort: number | undefined;
  env: Record<string, string>;
  /** The operator's certificate folder the readiness probe uses when the mesh runs mutual TLS. */
  probeTlsDir?: string;
}

export interface PlanOptions {
  /** 'free' asks the OS for ports (tests, suites beside a running mesh); an offset shifts DESIGN's table (npm start). */
  ports: 'free' | { offset: number };
  /** per gRPC service; the BFF always runs once */
  replicas?: number;
  services?: readonly ServiceName[];
  bff?: boolean;
  /** what the plan reads: MYSQL_DATABASE, `<SERVICE>_MYSQL_URL`, `*_ADDR` overrides and DRAIN_GRACE_MS */
  env: NodeJS.ProcessEnv;
  /**
   * Mutual TLS between every process: a folder of per-process certificate folders
   * (`<dir>/<process>/{ca.crt,tls.crt,tls.key}`, as `npm run auth -- certs` makes); each process
   * gets its own as GRPC_TLS_DIR, and readiness probes use `<dir>/operator`.
   */
  tlsDir?: string;
}

export interface MeshPlan {
  specs: ProcessSpec[];
  /** services whose main.js is not in dist/ (the mesh runs whatever is built) */
  skipped: string[];
  /** ROOM_ADDR, GIFT_ADDR, … as given to every process */
  peerEnv: Record<string, string>;
}

/**
 * MYSQL_DATABASE names one service's database; given to the whole mesh it would put every
 * service's tables and migration history in one database, where the second service to start
 * finds the first one's migrations. So each service gets `<MYSQL_DATABASE>_<service>`.
 */
function ownDatabase(service: string, env: NodeJS.ProcessEnv): Record<string, string> {
  return env.MYSQL_DATABASE ? { MYSQL_DATABASE: `${env.MYSQL_DATABASE}_${service}` } : {};
}

/** The services that keep data in MySQL: each may have a server of its own. */
export const MYSQL_SERVICES = ['room', 'gift', 'ledger'] as const;

/** `ROOM_MYSQL_URL` for room, …: the launcher's setting for one service's own MySQL server. */
export const serviceMysqlVar = (service: string) => `${service.toUpperCase()}_MYSQL_URL`;

/**
 * A server per service: `<SERVICE>_MYSQL_URL` becomes that service's MYSQL_URL, so Room, Gift and
 * the Ledger can each run on their own MySQL while every other process keeps MYSQL_URL. (The
 * Ledger can go further and put each shard on its own server with LEDGER_SHARD_URLS, which reaches
 * it unchanged.)
 */
function ownMysql(service: string, env: NodeJS.ProcessEnv): Record<string, string> {
  const url = env[serviceMysqlVar(service)];
  return url ? { MYSQL_URL: url } : {};
}

/** gRPC port and metrics port of every replica, and the BFF's port. */
interface PortTable {
  grpc(serviceIndex: number, replica: number): { port: number; metricsPort: number };
  bff: { port: number; metricsPort: number };
}

async function portTable(ports: PlanOptions['ports'], replicas: number): Promise<PortTable> {
  if (ports !== 'free') {
    const offset = ports.offset;
    return {
      grpc: (s, r) => {
        const port = pick(SERVICES, s).port + r * REPLICA_PORT_STEP + offset;
        return { port, metricsPort: port + METRICS_PORT_STEP };
      },
      bff: { port: BFF_PORT + offset, metricsPort: BFF_PORT + offset + METRICS_PORT_STEP },
    };
  }
  const free = await freePorts(SERVICES.length * replicas * 2 + 2);
  return {
    grpc: (s, r) => {
      const i = (s * replicas + r) * 2;
      return { port: pick(free, i), metricsPort: pick(free, i + 1) };
    },
    bff: { port: pick(free, free.length - 2), metricsPort: pick(free, free.length - 1) },
  };
}

function pick<T>(list: readonly T[], i: number): T {
  const value = list[i];
  if (value === undefined) throw new Error(`port table has no entry ${i}`);
  return value;
}

/**
 * Every process to run. Peers are listed by address, both replicas each (lb/'s clients balance
 * over them); an `*_ADDR` already in the environment wins. Drain grace is short by default: a
 * developer restarting the mesh wants it back quickly, not a production-sized grace.
 */
export async function planMesh(root: string, opts: PlanOptions): Promise<MeshPlan> {
  const replicas = opts.replicas ?? 2;
  const wanted = new Set<string>(opts.services ?? SERVICES.map((s) => s.name));
  const table = await portTable(opts.ports, replicas);
  const drainGrace = opts.env.DRAIN_GRACE_MS || '200';
  const peerEnv: Record<string, string> = {};
  SERVICES.forEach((service, s) => {
    const key = `${service.name.toUpperCase()}_ADDR`;
    const own = Array.from({ length: replicas }, (_, r) => `127.0.0.1:${table.grpc(s, r).port}`).join(',');
    peerEnv[key] = opts.env[key] || own;
  });
  const tls = (process: string): Record<string, string> => (opts.tlsDir ? { GRPC_TLS_DIR: join(opts.tlsDir, process) } : {});
  const specs: ProcessSpec[] = [];
  const skipped: string[] = [];
  SERVICES.forEach((service, s) => {
    if (!wanted.has(service.name)) return;
    const script = join(root, 'dist', 'services', service.name, 'main.js');
    if (!existsSync(script)) {
      skipped.push(service.name);
      return;
    }
    for (let r = 0; r < replicas; r++) {
      const name = `${service.name}-${r + 1}`;
      const { port, metricsPort } = table.grpc(s, r);
      const env = { ...peerEnv, ...ownDatabase(service.name, opts.env), ...ownMysql(service.name, opts.env), ...tls(service.name), PORT: String(port), METRICS_PORT: String(metricsPort), REPLICA: name, DRAIN_GRACE_MS: drainGrace };
      specs.push({ name, service: service.name, kind: 'grpc', script, port, metricsPort, env, ...(opts.tlsDir ? { probeTlsDir: join(opts.tlsDir, 'operator') } : {}) });
    }
  });
  if (opts.bff ?? true) {
    const script = join(root, 'dist', 'bff', 'main.js');
    if (existsSync(script)) {
      const { port, metricsPort } = table.bff;
      const env = { ...peerEnv, ...tls('bff'), PORT: String(port), METRICS_PORT: String(metricsPort), REPLICA: 'bff', DRAIN_GRACE_MS: drainGrace };
      specs.push({ name: 'bff', service: 'bff', kind: 'http', script, port, metricsPort, env });
    } else {
      skipped.push('bff');
    }
  }
  return { specs, skipped, peerEnv };
}

// ---------------------------------------------------------------------------------------------
// Children

/** What spawnChild needs to run a script: a mesh process's spec, or a single server's. */
export interface Launch {
  name: string;
  script: string;
  /** arguments after the script */
  args?: readonly string[];
  env: Record<string, string>;
  /** an IPC channel to the child (a bench server that stops when its parent disconnects) */
  ipc?: boolean;
}

export type LineSink<S extends Launch = ProcessSpec> = (spec: S, line: string, stream: 'stdout' | 'stderr') => void;

export interface Child<S extends Launch = ProcessSpec> {
  spec: S;
  proc: ChildProcess;
  /** set once the process is gone and its output has been flushed */
  ended: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  done: Promise<void>;
  /** the last lines the child printed (only with `keepLines`), for when it dies */
  tail(): string;
}

export interface SpawnOptions<S extends Launch> {
  onLine?: LineSink<S>;
  /** node flags before the script (a benchmark's --cpu-prof) */
  nodeArgs?: readonly string[];
  /** keep this many of the child's last output lines for `tail()`; 0 (default) keeps none */
  keepLines?: number;
}

/** Every child spawned here that has not exited yet, whatever started it. */
export const liveChildren = new Set<ChildProcess>();

/** SIGKILL to every child still running: for exit paths (a second Ctrl-C), so none outlives its parent. */
export function killAllChildren(): void {
  for (const proc of liveChildren) proc.kill('SIGKILL');
}

/**
 * Each child gets its own process group (detached) so that a Ctrl-C in the terminal reaches only
 * the launcher: the kit treats a second signal as "exit now", and a child receiving both the
 * terminal's SIGINT and our SIGTERM would skip its drain. `killOnExit` makes sure no child
 * outlives its parent anyway.
 */
export function spawnChild<S extends Launch>(spec: S, baseEnv: NodeJS.ProcessEnv, opts: SpawnOptions<S> = {}): Child<S> {
  const { onLine, nodeArgs = [], keepLines = 0 } = opts;
  const piped = onLine !== undefined || keepLines > 0;
  const out = piped ? 'pipe' : 'ignore';
  const proc = spawn(process.execPath, [...nodeArgs, spec.script, ...(spec.args ?? [])], {
    env: { ...baseEnv, ...spec.env },
    stdio: spec.ipc ? ['ignore', out, out, 'ipc'] : ['ignore', out, out],
    detached: true,
  });
  liveChildren.add(proc);
  const lines: string[] = [];
  if (piped) {
    for (const stream of ['stdout', 'stderr'] as const) {
      const source = proc[stream];
      if (!source) continue;
      createInterface({ input: source, crlfDelay: Infinity }).on('line', (line) => {
        if (keepLines > 0 && line.trim() !== '') {
          lines.push(line);
          if (lines.length > keepLines) lines.splice(0, lines.length - keepLines);
        }
        if (line !== '') onLine?.(spec, line, stream);
      });
    }
  }
  const child: Child<S> = { spec, proc, ended: undefined, done: Promise.resolve(), tail: () => lines.join('\n') };
  // 'close' rather than 'exit': it comes after the last output line, so an exit report follows the child's own last words.
  child.done = new Promise((resolve) => {
    proc.once('close', (code, signal) => {
      liveChildren.delete(proc);
      child.ended = { code, signal };
      resolve();
    });
  });
  proc.on('error', (err) => {
    if (keepLines > 0) lines.push(`could not run ${spec.script}: ${err.message}`);
    onLine?.(spec, `could not run ${spec.script}: ${err.message}`, 'stderr');
  });
  return child;
}

export function describeExit(child: Child<Launch>): string {
  const ended = child.ended;
  if (!ended) return 'is still running';
  return ended.signal ? `was killed by ${ended.signal}` : `exited with code ${ended.code}`;
}

/** Last resort for an unexpected exit of the parent (uncaught error, process.exit): never leave replicas holding the ports. */
export function killOnExit(children: () => Iterable<Child<Launch>>): void {
  process.on('exit', () => {
    for (const child of children()) if (!child.ended) child.proc.kill('SIGKILL');
  });
}

/** SIGTERM lets each child drain; SIGKILL after `timeoutMs` so stopping always finishes. */
export async function stopChildren<S extends Launch>(children: Iterable<Child<S>>, timeoutMs: number, onForcedKill?: (child: Child<S>) => void): Promise<void> {
  const running = [...children].filter((c) => !c.ended);
  for (const child of running) child.proc.kill('SIGTERM');
  const timer = setTimeout(() => {
    for (const child of running) {
      if (child.ended) continue;
      onForcedKill?.(child);
      child.proc.kill('SIGKILL');
    }
  }, timeoutMs);
  await Promise.all(running.map((c) => c.done));
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------
// Readiness

/** How often a not-yet-ready process is probed, and how long one probe may take. */
const PROBE_INTERVAL_MS = 200;
const PROBE_DEADLINE_MS = 1_000;

export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Check("") answers SERVING only once the kit's listen() finished, i.e. after migrations and connections. */
/**
 * The health name a livemesh service registers (`livemesh.gift.v1.GiftService` for
 * dist/services/gift/main.js), so a readiness probe is answered by that kind of service only and
 * not by another process that holds the port meanwhile; '' (the whole server) for other scripts.
 */
function healthNameOf(script: string): string {
  const svc = /services[/\\]([a-z]+)[/\\]main\.js$/.exec(script)?.[1];
  return svc ? `livemesh.${svc}.v1.${svc[0]!.toUpperCase()}${svc.slice(1)}Service` : '';
}

function grpcServing(client: HealthClient, service = ''): Promise<boolean> {
  return new Promise((resolve) => {
    client.check({ service }, new Metadata(), { deadline: Date.now() + PROBE_DEADLINE_MS }, (err, res) =>
      resolve(!err && res.status === Serving.SERVING),
    );
  });
}

/**
 * GET `url` answers 200 within the probe deadline. node:http rather than fetch(): fetch refuses
 * the ports the Fetch standard blocks (10080, where the BFF lands at LM_PORT_OFFSET=2000) before
 * dialling, so a probe through it would never see such a process come up.
 */
export function httpReady(url: string, deadlineMs = PROBE_DEADLINE_MS): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpGet(url, { timeout: deadlineMs, agent: false }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode === 200));
      res.once('error', () => resolve(false));
    });
    req.once('timeout', () => req.destroy(new Error('probe deadline')));
    req.once('error', () => resolve(false));
  });
}

/**
 * Polls one child until it is ready; false if it exited or the wait was abandoned first.
 * The gRPC channel's reconnect backoff is kept short: its default grows to tens of seconds while
 * a replica is still migrating, which would delay noticing that it came up.
 */
export async function waitReady(child: Child, host: string, abandoned: () => boolean): Promise<boolean> {
  const address = hostPort(host, child.spec.port);
  const channel = child.spec.kind === 'grpc' ? operatorChannel(child.spec.service, child.spec.probeTlsDir ?? '') : undefined;
  const client = channel
    ? new HealthClient(address, channel.credentials, { 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 500, ...channel.options })
    : undefined;
  try {
    while (!child.ended && !abandoned()) {
      const ready = client ? await grpcServing(client, healthNameOf(child.spec.script)) : await httpReady(`http://${address}/readyz`);
      if (ready && !child.ended) return true;
      await Promise.race([sleep(PROBE_INTERVAL_MS), child.done]);
    }
    return false;
  } finally {
    client?.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The programmatic mesh (chaos, fuzz, soak)

export interface MeshOptions {
  /** extra environment for every process (isolation env, URLs, LOG_LEVEL, FAULT_*…) */
  env?: Record<string, string>;
  ports?: PlanOptions['ports'];
  replicas?: number;
  services?: readonly ServiceName[];
  bff?: boolean;
  /** bind and probe host; default 127.0.0.1 */
  host?: string;
  /** mutual TLS between every process, with the development certificates (made if missing) */
  tls?: boolean;
  /** node flags for every process, before the script (a benchmark's --cpu-prof) */
  nodeArgs?: readonly string[];
  onLine?: (proc: MeshProcess, line: string, stream: 'stdout' | 'stderr') => void;
  startTimeoutMs?: number;
  /** a process that ignores SIGTERM this long is killed; default 15 000 */
  stopTimeoutMs?: number;
}

export interface MeshExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
  /** false when nobody asked the process to stop: a crash */
  expected: boolean;
}

export interface MeshProcess {
  name: string;
  service: ServiceName | 'bff';
  kind: 'grpc' | 'http';
  port: number;
  /** where the process serves Prometheus /metrics (prom-client's default metrics include heap and handles) */
  metricsPort: number | undefined;
  readonly pid: number | undefined;
  readonly alive: boolean;
  exits: MeshExit[];
}

export interface Mesh {
  processes: MeshProcess[];
  get(name: string): MeshProcess;
  /** 'host:port' of every replica of a service */
  addresses(service: ServiceName): string[];
  peerEnv: Record<string, string>;
  bffUrl: string;
  /** sends the signal (default SIGKILL) and resolves once the process has exited */
  kill(name: string, signal?: NodeJS.Signals): Promise<void>;
  /** spawns a stopped process again on the same ports and resolves once it is ready */
  restart(name: string): Promise<void>;
  /** processes that exited without being asked to */
  crashed(): MeshProcess[];
  /** SIGTERM everything (drain), SIGKILL after the stop timeout; idempotent */
  stop(): Promise<void>;
}

class MeshEntry implements MeshProcess {
  name: string;
  service: ServiceName | 'bff';
  kind: 'grpc' | 'http';
  port: number;
  metricsPort: number | undefined;
  exits: MeshExit[] = [];
  child: Child | undefined;
  /** set by kill() and stop() before signalling, so the exit is not counted as a crash */
  stopping = false;

  constructor(readonly spec: ProcessSpec) {
    this.name = spec.name;
    this.service = spec.service;
    this.kind = spec.kind;
    this.port = spec.port;
    this.metricsPort = spec.metricsPort;
  }

  get pid(): number | undefined {
    return this.alive ? this.child?.proc.pid : undefined;
  }

  get alive(): boolean {
    return this.child !== undefined && this.child.ended === undefined;
  }
}

class ProcessMesh implements Mesh {
  readonly processes: MeshEntry[];
  readonly bffUrl: string;
  private stopped: Promise<void> | undefined;
  private readonly baseEnv: NodeJS.ProcessEnv;

  constructor(
    private readonly plan: MeshPlan,
    private readonly opts: MeshOptions & { host: string; startTimeoutMs: number; stopTimeoutMs: number },
  ) {
    this.processes = plan.specs.map((spec) => new MeshEntry(spec));
    this.baseEnv = { ...process.env, ...opts.env, HOST: opts.host };
    const bff = plan.specs.find((s) => s.kind === 'http');
    this.bffUrl = bff ? `http://${hostPort(opts.host, bff.port)}` : '';
    killOnExit(() => this.processes.flatMap((p) => (p.child ? [p.child] : [])));
  }

  get peerEnv(): Record<string, string> {
    return this.plan.peerEnv;
  }

  get(name: string): MeshEntry {
    const entry = this.processes.find((p) => p.name === name);
    if (!entry) throw new Error(`no process named ${name} (have ${this.processes.map((p) => p.name).join(', ')})`);
    return entry;
  }

  addresses(service: ServiceName): string[] {
    return this.processes.filter((p) => p.service === service).map((p) => hostPort(this.opts.host, p.port));
  }

  crashed(): MeshProcess[] {
    return this.processes.filter((p) => p.exits.some((e) => !e.expected));
  }

  /** Spawns one process and waits until it is ready; rejects if it exits first or takes too long. */
  async launch(entry: MeshEntry): Promise<void> {
    if (this.stopped) throw new Error(`the mesh is stopping; not starting ${entry.name}`);
    if (entry.alive) throw new Error(`${entry.name} is already running (pid ${entry.pid})`);
    const onLine = this.opts.onLine;
    const child = spawnChild(entry.spec, this.baseEnv, {
      onLine: onLine ? (_spec, line, stream) => onLine(entry, line, stream) : undefined,
      nodeArgs: this.opts.nodeArgs,
    });
    entry.child = child;
    entry.stopping = false;
    void child.done.then(() => {
      entry.exits.push({ code: child.ended?.code ?? null, signal: child.ended?.signal ?? null, at: Date.now(), expected: entry.stopping });
    });
    let timedOut = false;
    const timer = setTimeout(() => (timedOut = true), this.opts.startTimeoutMs);
    try {
      const ready = await waitReady(child, this.opts.host, () => timedOut || this.stopped !== undefined);
      if (ready) return;
      if (child.ended) throw new Error(`${entry.name} ${describeExit(child)} before it was ready`);
      throw new Error(timedOut ? `${entry.name} was not ready after ${this.opts.startTimeoutMs / 1000} s` : `the mesh stopped while ${entry.name} was starting`);
    } finally {
      clearTimeout(timer);
    }
  }

  async kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const entry = this.get(name);
    const child = entry.child;
    if (!child || child.ended) return;
    entry.stopping = true;
    child.proc.kill(signal);
    await child.done;
  }

  async restart(name: string): Promise<void> {
    const entry = this.get(name);
    if (entry.alive) await this.kill(name, 'SIGTERM');
    await this.launch(entry);
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      for (const p of this.processes) p.stopping = true;
      await stopChildren(
        this.processes.flatMap((p) => (p.child ? [p.child] : [])),
        this.opts.stopTimeoutMs,
      );
    })();
    return this.stopped;
  }
}

/**
 * Starts every process and resolves once all are ready. If one exits or times out during
 * start-up the others are stopped and the promise rejects with that process's story.
 */
export async function startMesh(opts: MeshOptions = {}): Promise<Mesh> {
  const env = { ...process.env, ...opts.env };
  ensureDevKeys();
  if (opts.tls) ensureDevCerts();
  const plan = await planMesh(repoRoot(), { ports: opts.ports ?? 'free', replicas: opts.replicas, services: opts.services, bff: opts.bff, env, ...(opts.tls ? { tlsDir: DEV_TLS_DIR } : {}) });
  if (plan.skipped.length > 0) throw new Error(`not built: ${plan.skipped.join(', ')}; run \`npm run build\` first`);
  const mesh = new ProcessMesh(plan, { ...opts, host: opts.host ?? '127.0.0.1', startTimeoutMs: opts.startTimeoutMs ?? 60_000, stopTimeoutMs: opts.stopTimeoutMs ?? 15_000 });
  // The first failure stops the mesh, which also ends the others' waits.
  let failure: { err: unknown } | undefined;
  await Promise.all(
    mesh.processes.map((p) =>
      mesh.launch(p).catch((err: unknown) => {
        failure ??= { err };
        void mesh.stop();
      }),
    ),
  );
  if (failure !== undefined) {
    await mesh.stop();
    throw failure.err;
  }
  return mesh;
}

// ---------------------------------------------------------------------------------------------
// Single processes (tests, benchmarks)

/** Thrown by startProcess when its AbortSignal fires (a benchmark's Ctrl-C) before the process is ready. */
export class Interrupted extends Error {
  constructor() {
    super('interrupted');
  }
}

/** One server process started on its own, outside a mesh: a service under test, a benchmark's server. */
export interface Server {
  label: string;
  child: ChildProcess;
  pid: number;
  address: string;
  /** The last lines the child printed, for when it dies. */
  tail(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface ProcessOptions {
  label: string;
  script: string;
  args?: readonly string[];
  env: Record<string, string>;
  ipc?: boolean;
  /** a fixed port (a benchmark restarting a killed server where its clients expect it); default a free one */
  port?: number;
  /** what readiness means, for the timeout message ("report SERVING") */
  what: string;
  /** node flags before the script; default BENCH_NODE_ARGS (see serverNodeArgs) */
  nodeArgs?: readonly string[];
  /** default 60 000 */
  startTimeoutMs?: number;
}

/** How many of a single process's last output lines are kept for error messages. */
const TAIL_LINES = 40;
/** How often a single process that is not ready yet is probed. */
const SINGLE_PROBE_INTERVAL_MS = 100;

/**
 * Extra node flags for every single server process, from BENCH_NODE_ARGS (space-separated), so a
 * bench can profile its servers: `BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"`
 * (node refuses --cpu-prof in NODE_OPTIONS). Profiles are written when a server drains and exits.
 */
export const serverNodeArgs = (): string[] => (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);

/**
 * Starts a node script on 127.0.0.1:`port` (HOST and PORT in its environment; `env` may override
 * them) and polls `ready` until it says yes. A process that exits first, or is not ready within the
 * start timeout, fails the start with its last output lines; it is stopped. Detached like every
 * child here, so a Ctrl-C reaches only this process, which then stops the child with SIGTERM.
 */
export async function startProcess(opts: ProcessOptions, ready: (server: Server) => Promise<boolean>, signal: AbortSignal = new AbortController().signal): Promise<Server> {
  // A port picked free can be taken by another test's process before this one binds it (a slow
  // start leaves seconds): that start ends in EADDRINUSE, and another free port is tried.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startProcessOnce(opts, ready, signal);
    } catch (err) {
      if (opts.port !== undefined || attempt >= 3 || !(err instanceof Error) || !err.message.includes('EADDRINUSE')) throw err;
    }
  }
}

async function startProcessOnce(opts: ProcessOptions, ready: (server: Server) => Promise<boolean>, signal: AbortSignal): Promise<Server> {
  // Every livemesh process loads its keys at start (services verify tokens, and sign their own).
  ensureDevKeys();
  const port = opts.port ?? pick(await freePorts(1), 0);
  const child = spawnChild(
    { name: opts.label, script: opts.script, args: opts.args, env: { HOST: '127.0.0.1', PORT: String(port), ...opts.env }, ipc: opts.ipc },
    process.env,
    { nodeArgs: opts.nodeArgs ?? serverNodeArgs(), keepLines: TAIL_LINES },
  );
  const pid = child.proc.pid;
  if (pid === undefined) throw new Error(`${opts.label}: could not start ${opts.script}`);
  const server: Server = {
    label: opts.label,
    child: child.proc,
    pid,
    address: `127.0.0.1:${port}`,
    tail: () => child.tail(),
    exited: child.done.then(() => ({ code: child.ended?.code ?? null, signal: child.ended?.signal ?? null })),
  };
  const timeoutMs = opts.startTimeoutMs ?? 60_000;
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (signal.aborted) throw new Interrupted();
      if (child.ended) throw new Error(`${opts.label} exited before serving:\n${server.tail()}`);
      if (Date.now() > deadline) throw new Error(`${opts.label} did not ${opts.what} within ${timeoutMs / 1000} s:\n${server.tail()}`);
      if (await ready(server)) return server;
      await Promise.race([sleep(SINGLE_PROBE_INTERVAL_MS), child.done]);
    }
  } catch (err) {
    await stopServer(server);
    throw err;
  }
}

/** How the readiness probe connects: plaintext by default; a server with GRPC_TLS_DIR set needs TLS credentials. */
export interface ProbeChannel {
  credentials: ChannelCredentials;
  options?: ChannelOptions;
}

/** Starts a gRPC server process (on a free port unless `fixedPort` is given), ready when Health/Check("") answers SERVING. */
export async function startServer(
  label: string,
  script: string,
  env: Record<string, string>,
  ipc: boolean,
  signal: AbortSignal = new AbortController().signal,
  fixedPort?: number,
  probeChannel?: ProbeChannel,
): Promise<Server> {
  let probe: HealthClient | undefined;
  try {
    return await startProcess(
      { label, script, env, ipc, ...(fixedPort === undefined ? {} : { port: fixedPort }), what: 'report SERVING' },
      (server) => {
        probe ??= new HealthClient(server.address, probeChannel?.credentials ?? credentials.createInsecure(), probeChannel?.options ?? {});
        return grpcServing(probe, healthNameOf(script));
      },
      signal,
    );
  } finally {
    probe?.close();
  }
}

/**
 * SIGTERM and wait for the drain; SIGKILL if it has not exited after `timeoutMs` (default 20 s).
 * An exit other than a clean one or by SIGTERM is reported through `log` with the last lines.
 */
export async function stopServer(server: Server, opts: { timeoutMs?: number; log?: (line: string) => void } = {}): Promise<void> {
  const log = opts.log ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const timeoutMs = opts.timeoutMs ?? 20_000;
  if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGTERM');
  const timer = setTimeout(() => {
    log(`${server.label} still running ${timeoutMs / 1000} s after SIGTERM; killing it`);
    server.child.kill('SIGKILL');
  }, timeoutMs);
  const { code, signal } = await server.exited;
  clearTimeout(timer);
  if (code !== 0 && signal !== 'SIGTERM') log(`note: ${server.label} exited with ${code ?? signal}:\n${server.tail()}`);
}
