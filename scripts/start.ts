/**
 * `npm start`: the whole mesh on one machine with one command.
 *
 * Makes sure MySQL, Redis and NATS answer (scripts/infra.ts), then runs two replicas of every
 * built gRPC service and the BFF as child processes, with their JSON logs condensed into one
 * readable, prefixed stream. It is a developer tool, not a supervisor: a replica that dies after
 * start-up is reported and left dead, so a crash stays visible instead of being papered over.
 *
 * Environment: LM_PORT_OFFSET (added to every port, so a second mesh or a test can run beside a
 * developer's), LM_LOG=json (raw log lines), LM_START_TIMEOUT_MS; everything else (MYSQL_URL,
 * LOG_LEVEL, …) passes through to the children.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { credentials, Metadata } from '@grpc/grpc-js';
import { z } from 'zod';
import { HealthCheckResponse_ServingStatus as Serving, HealthClient } from '../gen/ts/grpc/health/v1/health.js';
import { ConfigError, EXIT_CONFIG, int, parseConfig } from '../services/kit/config.js';
import { repoRoot } from '../services/kit/paths.js';
import { ensureInfra, InfraError, infraUrlsFromEnv, type InfraHandle, type InfraUrls } from './infra.js';

// ---------------------------------------------------------------------------------------------
// The plan: which processes, on which ports

/** The port table from DESIGN.md; replica 2 listens at +100 and every gRPC process serves metrics at +1000. */
const SERVICES = [
  { name: 'room', port: 50051 },
  { name: 'gift', port: 50052 },
  { name: 'ledger', port: 50053 },
  { name: 'chat', port: 50054 },
  { name: 'ranking', port: 50055 },
] as const;
const BFF_PORT = 8080;
const REPLICAS = 2;
const REPLICA_PORT_STEP = 100;
const METRICS_PORT_STEP = 1000;
/** The highest port in the table (ranking-2's metrics); an offset must keep it below 65536. */
const HIGHEST_PORT = 50055 + REPLICA_PORT_STEP + METRICS_PORT_STEP;
/** A child that ignores SIGTERM this long is killed. */
const STOP_TIMEOUT_MS = 15_000;
/** How often a not-yet-ready process is probed, and how long one probe may take. */
const PROBE_INTERVAL_MS = 200;
const PROBE_DEADLINE_MS = 1_000;

const launcherConfigShape = {
  LM_PORT_OFFSET: int(0, 65535 - HIGHEST_PORT, 0),
  LM_LOG: z.enum(['pretty', 'json'], { error: 'must be pretty or json' }).default('pretty'),
  /** Start-up includes migrations and, on a first run, nothing else slow; a minute means something is stuck. */
  LM_START_TIMEOUT_MS: int(1_000, 600_000, 60_000),
};
type LauncherConfig = z.infer<z.ZodObject<typeof launcherConfigShape>>;

interface ProcessSpec {
  /** name in the log prefix and in messages: room-1, room-2, bff */
  name: string;
  kind: 'grpc' | 'http';
  script: string;
  port: number;
  metricsPort: number | undefined;
  env: Record<string, string>;
}

/**
 * Where each service is, for the processes that call it: `ROOM_ADDR`, `LEDGER_ADDR`, … listing both
 * replicas on the shifted ports (lb/'s clients balance over them). A value already in the
 * environment wins.
 */
function peerAddresses(offset: number, env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const service of SERVICES) {
    const key = `${service.name.toUpperCase()}_ADDR`;
    out[key] = env[key] || `127.0.0.1:${service.port + offset},127.0.0.1:${service.port + REPLICA_PORT_STEP + offset}`;
  }
  return out;
}

/**
 * MYSQL_DATABASE names one service's database; given to the whole mesh it would put every
 * service's tables and migration history in one database, where the second service to start
 * finds the first one's migrations. So each service gets `<MYSQL_DATABASE>_<service>`.
 */
function ownDatabase(service: string, env: NodeJS.ProcessEnv): Record<string, string> {
  return env.MYSQL_DATABASE ? { MYSQL_DATABASE: `${env.MYSQL_DATABASE}_${service}` } : {};
}

/**
 * Every process to run, and the services skipped because their main.js is not in dist/ yet: the
 * services are written one at a time, and the mesh should run whatever exists so far.
 */
function planProcesses(root: string, offset: number, env: NodeJS.ProcessEnv): { specs: ProcessSpec[]; skipped: string[] } {
  const specs: ProcessSpec[] = [];
  const skipped: string[] = [];
  // Short by default: a developer restarting the mesh wants it back quickly, not a production-sized grace.
  const drainGrace = env.DRAIN_GRACE_MS || '200';
  const peers = peerAddresses(offset, env);
  for (const service of SERVICES) {
    const script = join(root, 'dist', 'services', service.name, 'main.js');
    if (!existsSync(script)) {
      skipped.push(service.name);
      continue;
    }
    for (let i = 0; i < REPLICAS; i++) {
      const name = `${service.name}-${i + 1}`;
      const port = service.port + i * REPLICA_PORT_STEP + offset;
      const metricsPort = port + METRICS_PORT_STEP;
      specs.push({
        name,
        kind: 'grpc',
        script,
        port,
        metricsPort,
        env: { ...peers, ...ownDatabase(service.name, env), PORT: String(port), METRICS_PORT: String(metricsPort), REPLICA: name, DRAIN_GRACE_MS: drainGrace },
      });
    }
  }
  const bffScript = join(root, 'dist', 'bff', 'main.js');
  if (existsSync(bffScript)) {
    const port = BFF_PORT + offset;
    specs.push({ name: 'bff', kind: 'http', script: bffScript, port, metricsPort: undefined, env: { ...peers, PORT: String(port), REPLICA: 'bff', DRAIN_GRACE_MS: drainGrace } });
  } else {
    skipped.push('bff');
  }
  return { specs, skipped };
}

// ---------------------------------------------------------------------------------------------
// Output

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

const PINO_LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/**
 * One JSON log line → "level message[: error message]". Ten processes' full JSON in one terminal
 * is unreadable; the fields that matter while developing are the level, the message and the cause.
 * Returns undefined for anything that is not a pino-style JSON object, which is then shown as is.
 */
function condense(line: string): string | undefined {
  if (!line.startsWith('{')) return undefined;
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return undefined;
  const { level, msg, err } = entry as { level?: unknown; msg?: unknown; err?: unknown };
  const levelName = typeof level === 'number' ? (PINO_LEVELS[level] ?? String(level)) : typeof level === 'string' ? level : '?';
  const message = typeof msg === 'string' ? msg : '';
  const errMessage = typeof err === 'object' && err !== null && typeof (err as { message?: unknown }).message === 'string' ? (err as { message: string }).message : '';
  const text = message && errMessage ? `${message}: ${errMessage}` : message || errMessage;
  return `${levelName.padEnd(5)} ${text}`;
}

/**
 * Copies a child's output line by line with its name in front. In json mode, JSON lines are passed
 * through untouched (they already carry service and replica, and tools like jq want them whole);
 * other lines, such as a config error on stderr, keep the prefix so they can be attributed.
 */
function pipeLines(stream: NodeJS.ReadableStream, prefix: string, mode: LauncherConfig['LM_LOG'], out: NodeJS.WritableStream): void {
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  lines.on('line', (line) => {
    if (line === '') return;
    const short = condense(line);
    if (mode === 'json' && short !== undefined) out.write(`${line}\n`);
    else out.write(`${prefix}${short ?? line}\n`);
  });
}

/** URLs as printed: a password in MYSQL_URL must not end up in a terminal recording or CI log. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}

function describeInfra(urls: InfraUrls, infra: InfraHandle): string {
  if (infra.started.length > 0) return `infra: up; started ${infra.started.join(', ')} (stopped again when the mesh stops)`;
  return `infra: up (${[urls.mysqlUrl, urls.redisUrl, urls.natsUrl].map(redact).join(', ')})`;
}

// ---------------------------------------------------------------------------------------------
// Children

interface Child {
  spec: ProcessSpec;
  proc: ChildProcess;
  ready: boolean;
  /** set once the process is gone and its output has been flushed */
  ended: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  done: Promise<void>;
}

/**
 * Each child gets its own process group (detached) so that a Ctrl-C in the terminal reaches only
 * the launcher: the kit treats a second signal as "exit now", and a child receiving both the
 * terminal's SIGINT and our SIGTERM would skip its drain. The exit hook below makes sure no child
 * outlives the launcher anyway.
 */
function spawnChild(spec: ProcessSpec, prefixWidth: number, mode: LauncherConfig['LM_LOG']): Child {
  const proc = spawn(process.execPath, [spec.script], {
    env: { ...process.env, ...spec.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const prefix = `${spec.name.padEnd(prefixWidth)} | `;
  if (proc.stdout) pipeLines(proc.stdout, prefix, mode, process.stdout);
  if (proc.stderr) pipeLines(proc.stderr, prefix, mode, process.stderr);
  const child: Child = { spec, proc, ready: false, ended: undefined, done: Promise.resolve() };
  // 'close' rather than 'exit': it comes after the last output line, so the exit report follows the child's own last words.
  child.done = new Promise((resolve) => {
    proc.once('close', (code, signal) => {
      child.ended = { code, signal };
      resolve();
    });
  });
  proc.on('error', (err) => say(`${spec.name}: could not run ${spec.script}: ${err.message}`));
  return child;
}

function describeExit(child: Child): string {
  const ended = child.ended;
  if (!ended) return 'is still running';
  return ended.signal ? `was killed by ${ended.signal}` : `exited with code ${ended.code}`;
}

/** Last resort for an unexpected exit of the launcher (uncaught error, process.exit): never leave replicas holding the ports. */
function killOnExit(children: Child[]): void {
  process.on('exit', () => {
    for (const child of children) if (!child.ended) child.proc.kill('SIGKILL');
  });
}

/** SIGTERM lets each child drain; SIGKILL after STOP_TIMEOUT_MS so stopping always finishes. */
async function stopChildren(children: Child[]): Promise<void> {
  const running = children.filter((c) => !c.ended);
  for (const child of running) child.proc.kill('SIGTERM');
  const timer = setTimeout(() => {
    for (const child of running) {
      if (child.ended) continue;
      say(`${child.spec.name} did not stop within ${STOP_TIMEOUT_MS / 1000} s: killing it`);
      child.proc.kill('SIGKILL');
    }
  }, STOP_TIMEOUT_MS);
  await Promise.all(running.map((c) => c.done));
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------
// Readiness

/**
 * The host to probe and print. Children bind HOST (all interfaces by default), which loopback
 * reaches; only an explicit HOST such as ::1 must be probed as is.
 */
function probeHost(env: NodeJS.ProcessEnv): string {
  const host = env.HOST;
  return !host || host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Ports that something already listens on. Without this check a second `npm start` would probe the
 * first mesh's replicas, call them ready, and only then see its own children fail to bind.
 */
async function portsInUse(specs: ProcessSpec[], bindHost: string): Promise<Array<{ name: string; port: number }>> {
  const wanted = specs.flatMap((s) => [{ name: s.name, port: s.port }, ...(s.metricsPort === undefined ? [] : [{ name: `${s.name} metrics`, port: s.metricsPort }])]);
  const free = await Promise.all(wanted.map((w) => canBind(bindHost, w.port)));
  return wanted.filter((_, i) => !free[i]);
}

/** Steps of 2000 keep every range (gRPC, metrics at +1000, BFF) clear of the other mesh's. */
function suggestOffset(current: number): number {
  const next = current + 2000;
  return next <= 65535 - HIGHEST_PORT ? next : 2000;
}

function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Check("") answers SERVING only once the kit's listen() finished, i.e. after migrations and connections. */
function grpcServing(client: HealthClient): Promise<boolean> {
  return new Promise((resolve) => {
    client.check({ service: '' }, new Metadata(), { deadline: Date.now() + PROBE_DEADLINE_MS }, (err, res) =>
      resolve(!err && res.status === Serving.SERVING),
    );
  });
}

async function httpReady(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(PROBE_DEADLINE_MS) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

/**
 * Polls one child until it is ready; false if it exited or the start-up was abandoned first.
 * The gRPC channel's reconnect backoff is kept short: its default grows to tens of seconds while
 * a replica is still migrating, which would delay noticing that it came up.
 */
async function waitReady(child: Child, host: string, abandoned: () => boolean): Promise<boolean> {
  const address = hostPort(host, child.spec.port);
  const client =
    child.spec.kind === 'grpc'
      ? new HealthClient(address, credentials.createInsecure(), {
          'grpc.initial_reconnect_backoff_ms': 100,
          'grpc.max_reconnect_backoff_ms': 500,
        })
      : undefined;
  try {
    while (!child.ended && !abandoned()) {
      const ready = client ? await grpcServing(client) : await httpReady(`http://${address}/readyz`);
      if (ready && !child.ended) return true;
      await Promise.race([sleep(PROBE_INTERVAL_MS), child.done]);
    }
    return false;
  } finally {
    client?.close();
  }
}

function readyLine(spec: ProcessSpec, host: string, nameWidth: number): string {
  const name = spec.name.padEnd(nameWidth + 3);
  if (spec.kind === 'http') return `ready  ${name}http://${hostPort(host, spec.port)}`;
  const grpc = `grpc ${hostPort(host, spec.port)}`;
  return `ready  ${name}${grpc.padEnd(20)}   metrics :${spec.metricsPort}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------------
// The launcher

function loadLauncherConfigOrExit(): LauncherConfig {
  try {
    return parseConfig(launcherConfigShape, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw err;
  }
}

/**
 * Owns the run's state so that every way of ending it (Ctrl-C, a failed start-up, an error) goes
 * through one idempotent shutdown that stops the children before the infrastructure they use.
 */
class Mesh {
  phase: 'infra' | 'starting' | 'up' | 'stopping' = 'infra';
  children: Child[] = [];
  infra: Promise<InfraHandle | undefined> = Promise.resolve(undefined);
  private stopped: Promise<never> | undefined;

  /** A method rather than a phase comparison: a signal can flip the phase during any await. */
  isStopping(): boolean {
    return this.phase === 'stopping';
  }

  /** First call wins; later calls (a child exiting while we stop) just wait for the same end. */
  shutdown(exitCode: number): Promise<never> {
    this.stopped ??= this.doShutdown(exitCode);
    return this.stopped;
  }

  private async doShutdown(exitCode: number): Promise<never> {
    this.phase = 'stopping';
    const running = this.children.filter((c) => !c.ended);
    if (running.length > 0) say(`stopping ${running.length} process${running.length === 1 ? '' : 'es'}…`);
    await stopChildren(this.children);
    // Infra may still be starting (Ctrl-C during MariaDB's first initialisation): wait, then stop what it started.
    const infra = await this.infra;
    if (infra && infra.started.length > 0) say(`infra: stopping ${infra.started.join(', ')}`);
    await infra?.stop();
    say('stopped');
    process.exit(exitCode);
  }

  /** A second Ctrl-C means the user is done waiting: no drains, no clean shutdown of private infra. */
  killNow(): never {
    say('second signal: killing everything now');
    for (const child of this.children) if (!child.ended) child.proc.kill('SIGKILL');
    process.exit(130);
  }

  /** After start-up a dead replica is reported and left dead, so the failure stays visible. */
  onChildEnded(child: Child): void {
    if (this.phase === 'stopping') return;
    if (this.phase === 'starting') {
      say(`${child.spec.name} ${describeExit(child)} during start-up; stopping the others`);
      void this.shutdown(1);
      return;
    }
    const left = this.children.filter((c) => !c.ended).length;
    say(`${child.spec.name} ${describeExit(child)}; not restarted (${left} of ${this.children.length} still running)`);
    if (left === 0) {
      say('every process has exited');
      void this.shutdown(1);
    }
  }
}

async function main(mesh: Mesh): Promise<void> {
  const config = loadLauncherConfigOrExit();
  const root = repoRoot();
  let signals = 0;
  const onSignal = () => {
    signals += 1;
    if (signals > 1) mesh.killNow();
    void mesh.shutdown(0);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const urls = infraUrlsFromEnv();
  const infraStart = ensureInfra(urls, { dataDir: join(root, '.data'), log: say });
  mesh.infra = infraStart.catch(() => undefined);
  let infra: InfraHandle;
  try {
    infra = await infraStart;
  } catch (err) {
    if (!(err instanceof InfraError)) throw err;
    say(err.message);
    process.exit(1);
  }
  if (mesh.isStopping()) return;
  say(describeInfra(urls, infra));

  const { specs, skipped } = planProcesses(root, config.LM_PORT_OFFSET, process.env);
  if (skipped.length > 0) say(`not built yet: ${skipped.join(', ')}`);
  if (specs.length === 0) {
    say('nothing to start: run `npm run build` first');
    await mesh.shutdown(1);
  }
  const bindHost = process.env.HOST || '0.0.0.0';
  const busy = await portsInUse(specs, bindHost);
  if (busy.length > 0) {
    say(`ports already in use: ${busy.map((b) => `${b.port} (${b.name})`).join(', ')}`);
    say(`is another mesh running? stop it, or run this one beside it with LM_PORT_OFFSET=${suggestOffset(config.LM_PORT_OFFSET)}`);
    await mesh.shutdown(1);
  }
  if (mesh.isStopping()) return;

  mesh.phase = 'starting';
  const nameWidth = Math.max(...specs.map((s) => s.name.length));
  mesh.children = specs.map((spec) => spawnChild(spec, nameWidth, config.LM_LOG));
  killOnExit(mesh.children);
  for (const child of mesh.children) void child.done.then(() => mesh.onChildEnded(child));

  const host = probeHost(process.env);
  const timeout = setTimeout(() => {
    if (mesh.phase !== 'starting') return;
    const waiting = mesh.children.filter((c) => !c.ready).map((c) => c.spec.name);
    say(`not ready after ${config.LM_START_TIMEOUT_MS / 1000} s: ${waiting.join(', ')}; stopping`);
    void mesh.shutdown(1);
  }, config.LM_START_TIMEOUT_MS);
  const abandoned = () => mesh.phase !== 'starting';
  const ready = await Promise.all(
    mesh.children.map(async (child) => {
      const ok = await waitReady(child, host, abandoned);
      child.ready = ok;
      if (ok && !abandoned()) say(readyLine(child.spec, host, nameWidth));
      return ok;
    }),
  );
  clearTimeout(timeout);
  if (mesh.phase !== 'starting' || !ready.every(Boolean)) return;
  mesh.phase = 'up';
  say(`mesh up: ${mesh.children.length} processes (Ctrl-C to stop)`);
}

const mesh = new Mesh();
main(mesh).catch((err: unknown) => {
  process.stderr.write(`start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  void mesh.shutdown(1);
});
