/**
 * `npm start`: the whole mesh on one machine with one command.
 *
 * Makes sure MySQL, Redis and NATS answer (scripts/infra.ts), then runs two replicas of every
 * built gRPC service and the BFF as child processes, with their JSON logs condensed into one
 * readable, prefixed stream. It is a developer tool, not a supervisor: a replica that dies after
 * start-up is reported and left dead, so a crash stays visible instead of being papered over.
 *
 * Environment: LM_PORT_OFFSET (added to every port, so a second mesh or a test can run beside a
 * developer's), LM_LOG=json (raw log lines), LM_START_TIMEOUT_MS, LM_TLS=on (mutual TLS); ROOM_MYSQL_URL,
 * GIFT_MYSQL_URL, LEDGER_MYSQL_URL give one service its own MySQL server (else MYSQL_URL); everything else (MYSQL_URL,
 * LEDGER_SHARD_URLS, LOG_LEVEL, …) passes through to the children, and DEMO defaults to on (the demo page at the BFF's `/`).
 */
import { createServer } from 'node:net';
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError, DEV_TLS_DIR, EXIT_CONFIG, int, onOff, parseConfig } from '../kit/config.js';
import { ensureDevCerts, ensureDevKeys } from './credentials.js';
import { repoRoot } from '../kit/paths.js';
import { ensureInfra, InfraError, infraUrlsFromEnv, probeTcp, type InfraHandle, type InfraUrls } from './infra.js';
import { fetchBlocked, suggestOffset } from './fetch-ports.js';
import { describeExit, HIGHEST_PORT, hostPort, killOnExit, MYSQL_SERVICES, planMesh, serviceMysqlVar, spawnChild, stopChildren, waitReady, type Child, type ProcessSpec } from './mesh.js';

/** A child that ignores SIGTERM this long is killed. */
const STOP_TIMEOUT_MS = 15_000;

const launcherConfigShape = {
  LM_PORT_OFFSET: int(0, 65535 - HIGHEST_PORT, 0),
  LM_LOG: z.enum(['pretty', 'json'], { error: 'must be pretty or json' }).default('pretty'),
  /** Start-up includes migrations and, on a first run, nothing else slow; a minute means something is stuck. */
  LM_START_TIMEOUT_MS: int(1_000, 600_000, 60_000),
  /** Mutual TLS between every process, with development certificates (`npm run auth -- certs`, made if missing). */
  LM_TLS: onOff('off'),
};
type LauncherConfig = z.infer<z.ZodObject<typeof launcherConfigShape>>;

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
 * Prints a child's output line with its name in front. In json mode, JSON lines are passed
 * through untouched (they already carry service and replica, and tools like jq want them whole);
 * other lines, such as a config error on stderr, keep the prefix so they can be attributed.
 */
function linePrinter(prefixWidth: number, mode: LauncherConfig['LM_LOG']) {
  return (spec: ProcessSpec, line: string, stream: 'stdout' | 'stderr'): void => {
    const out = stream === 'stdout' ? process.stdout : process.stderr;
    const short = condense(line);
    if (mode === 'json' && short !== undefined) out.write(`${line}\n`);
    else out.write(`${spec.name.padEnd(prefixWidth)} | ${short ?? line}\n`);
  };
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

/**
 * The MySQL servers given to single services (ROOM_MYSQL_URL, GIFT_MYSQL_URL, LEDGER_MYSQL_URL) and
 * to single Ledger shards (LEDGER_SHARD_URLS), each with the variable that names it. The launcher
 * never starts a private server in their place: they were configured, so they must answer.
 */
function serviceMysqlServers(env: NodeJS.ProcessEnv): Array<{ setting: string; url: string }> {
  const out = MYSQL_SERVICES.flatMap((service) => {
    const url = env[serviceMysqlVar(service)];
    return url ? [{ setting: serviceMysqlVar(service), url }] : [];
  });
  (env.LEDGER_SHARD_URLS ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean)
    .forEach((url, shard) => out.push({ setting: `LEDGER_SHARD_URLS (shard ${shard})`, url }));
  return out;
}

/** Those servers that do not accept a connection, described for the terminal. */
async function deadServiceMysql(env: NodeJS.ProcessEnv): Promise<string[]> {
  const servers = serviceMysqlServers(env);
  const alive = await Promise.all(
    servers.map(async ({ url }) => {
      try {
        const u = new URL(url);
        return await probeTcp(u.hostname.replace(/^\[|\]$/g, ''), Number(u.port || 3306), 2_000);
      } catch {
        return false;
      }
    }),
  );
  return servers.filter((_, i) => !alive[i]).map((s) => `${s.setting}=${redact(s.url)}`);
}

function describeInfra(urls: InfraUrls, infra: InfraHandle): string {
  if (infra.started.length > 0) return `infra: up; started ${infra.started.join(', ')} (stopped again when the mesh stops)`;
  const redis = urls.redisClusterNodes ? `redis cluster ${urls.redisClusterNodes}` : redact(urls.redisUrl);
  return `infra: up (${[redact(urls.mysqlUrl), redis, redact(urls.natsUrl)].join(', ')})`;
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
function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function readyLine(spec: ProcessSpec, host: string, nameWidth: number): string {
  const name = spec.name.padEnd(nameWidth + 3);
  if (spec.kind === 'http') return `ready  ${name}http://${hostPort(host, spec.port)}`;
  const grpc = `grpc ${hostPort(host, spec.port)}`;
  return `ready  ${name}${grpc.padEnd(20)}   metrics :${spec.metricsPort}`;
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
    await stopChildren(this.children, STOP_TIMEOUT_MS, (child) => say(`${child.spec.name} did not stop within ${STOP_TIMEOUT_MS / 1000} s: killing it`));
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
  const own = serviceMysqlServers(process.env);
  if (own.length > 0) say(`mysql per service: ${own.map((s) => `${s.setting}=${redact(s.url)}`).join(', ')}`);
  const dead = await deadServiceMysql(process.env);
  if (dead.length > 0) {
    say(`MySQL not reachable: ${dead.join(', ')}; start it or unset the setting (the service then uses MYSQL_URL)`);
    await mesh.shutdown(1);
  }

  ensureDevKeys(undefined, say);
  if (config.LM_TLS === 'on') ensureDevCerts(undefined, { log: say });
  const { specs, skipped } = await planMesh(root, { ports: { offset: config.LM_PORT_OFFSET }, env: process.env, ...(config.LM_TLS === 'on' ? { tlsDir: DEV_TLS_DIR } : {}) });
  if (config.LM_TLS === 'on') say(`mutual TLS on: certificates from ${DEV_TLS_DIR}`);
  if (skipped.length > 0) say(`not built yet: ${skipped.join(', ')}`);
  if (specs.length === 0) {
    say('nothing to start: run `npm run build` first');
    await mesh.shutdown(1);
  }
  const bindHost = process.env.HOST || '0.0.0.0';
  const planned = specs.flatMap((s) => [s.port, ...(s.metricsPort === undefined ? [] : [s.metricsPort])]);
  const offsetAdvice = () => suggestOffset(config.LM_PORT_OFFSET, planned, 65535 - HIGHEST_PORT);
  const blocked = fetchBlocked(planned);
  if (blocked.length > 0) say(`note: port ${blocked.join(', ')} is one browsers and fetch() refuse; LM_PORT_OFFSET=${offsetAdvice()} avoids it`);
  const busy = await portsInUse(specs, bindHost);
  if (busy.length > 0) {
    say(`ports already in use: ${busy.map((b) => `${b.port} (${b.name})`).join(', ')}`);
    say(`is another mesh running? stop it, or run this one beside it with LM_PORT_OFFSET=${offsetAdvice()}`);
    await mesh.shutdown(1);
  }
  if (mesh.isStopping()) return;

  mesh.phase = 'starting';
  const nameWidth = Math.max(...specs.map((s) => s.name.length));
  const print = linePrinter(nameWidth, config.LM_LOG);
  // The demo page and its development sign-in are for local use: on here unless DEMO says otherwise (the BFF's default is off).
  const childEnv = { DEMO: 'on', ...process.env };
  mesh.children = specs.map((spec) => spawnChild(spec, childEnv, { onLine: print }));
  killOnExit(() => mesh.children);
  for (const child of mesh.children) void child.done.then(() => mesh.onChildEnded(child));

  const host = probeHost(process.env);
  const ready = new Set<Child>();
  const timeout = setTimeout(() => {
    if (mesh.phase !== 'starting') return;
    const waiting = mesh.children.filter((c) => !ready.has(c)).map((c) => c.spec.name);
    say(`not ready after ${config.LM_START_TIMEOUT_MS / 1000} s: ${waiting.join(', ')}; stopping`);
    void mesh.shutdown(1);
  }, config.LM_START_TIMEOUT_MS);
  const abandoned = () => mesh.phase !== 'starting';
  await Promise.all(
    mesh.children.map(async (child) => {
      if (!(await waitReady(child, host, abandoned))) return;
      ready.add(child);
      if (!abandoned()) say(readyLine(child.spec, host, nameWidth));
    }),
  );
  clearTimeout(timeout);
  if (mesh.phase !== 'starting' || ready.size < mesh.children.length) return;
  mesh.phase = 'up';
  say(`mesh up: ${mesh.children.length} processes (Ctrl-C to stop)`);
}

const mesh = new Mesh();
main(mesh).catch((err: unknown) => {
  process.stderr.write(`start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  void mesh.shutdown(1);
});
