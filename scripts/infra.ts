/**
 * Infrastructure bootstrap shared by `npm start` and the test suite's globalSetup.
 *
 * The rule it implements: MySQL, Redis and NATS come from MYSQL_URL, REDIS_URL and NATS_URL
 * (standard localhost ports by default). Whatever already answers there is used untouched, so a
 * developer's own servers, a docker compose stack or CI service containers all just work. When
 * nothing answers at a default local address but the server binaries are installed, a private
 * instance is started with its data under a git-ignored folder, so a fresh clone on a Debian box
 * runs without any manual setup and without touching the system's own services. A URL set
 * explicitly is never replaced that way: a private NATS standing in for a cluster that did not
 * answer would hold a second copy of the Ledger's shard map (a split brain), a private MySQL an
 * empty ledger. Otherwise we stop at once with one message that names everything missing and how
 * to get it, instead of letting each service discover a refused connection on its own, one at a
 * time, deep inside a stack trace.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  accessSync,
  closeSync,
  constants as fsConstants,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createConnection as tcpConnect } from 'node:net';
import { delimiter, isAbsolute, join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as natsConnect } from '@nats-io/transport-node';
import mysql from 'mysql2/promise';
import { natsServers } from '../kit/nats.js';

export interface InfraUrls {
  mysqlUrl: string;
  redisUrl: string;
  /** One server, or a comma-separated list of a cluster's servers. */
  natsUrl: string;
  /**
   * REDIS_CLUSTER_NODES when set (host:port, comma-separated): the services then use that Cluster,
   * not REDIS_URL, so its first node is what is probed, and it is never replaced by a private server.
   */
  redisClusterNodes?: string;
  /**
   * The URLs set explicitly in the environment. A URL equal to its configured value must answer:
   * no private server is started in its place. One a caller put in instead (a free port for a
   * private instance) is not bound by it.
   */
  configured?: Partial<Record<Kind, string>>;
}

/**
 * Reads the three URLs from the environment. Empty values count as unset so that
 * `REDIS_URL= npm start` falls back to the default rather than failing to parse.
 */
export function infraUrlsFromEnv(env: NodeJS.ProcessEnv = process.env): InfraUrls {
  const configured: Partial<Record<Kind, string>> = {};
  if (env.MYSQL_URL) configured.mysql = env.MYSQL_URL;
  if (env.REDIS_URL) configured.redis = env.REDIS_URL;
  if (env.NATS_URL) configured.nats = env.NATS_URL;
  return {
    mysqlUrl: env.MYSQL_URL || 'mysql://root@127.0.0.1:3306',
    redisUrl: env.REDIS_URL || 'redis://127.0.0.1:6379',
    natsUrl: env.NATS_URL || 'nats://127.0.0.1:4222',
    ...(env.REDIS_CLUSTER_NODES?.trim() ? { redisClusterNodes: env.REDIS_CLUSTER_NODES.trim() } : {}),
    configured,
  };
}

export interface InfraHandle {
  /** human-readable list like ["redis (private, .data/redis-6379)"]; empty when everything was already running */
  started: string[];
  /** stops only the private instances this call started; idempotent */
  stop(): Promise<void>;
}

export interface EnsureInfraOptions {
  /** e.g. <repo>/.data; each private instance gets `<dataDir>/<component>-<port>/` */
  dataDir: string;
  /** progress lines, e.g. "infra: starting private redis-server on 127.0.0.1:6379" */
  log?: (line: string) => void;
  /**
   * PATH to search binaries in. The default adds the sbin directories because Debian installs
   * mariadbd and nats-server there, and they are often missing from a non-root user's PATH.
   */
  searchPath?: string;
  /** readiness wait per component (and for MariaDB's one-off data directory initialisation), default 30000 */
  timeoutMs?: number;
}

/**
 * The one error callers should expect: its message is meant to be printed as is, without a stack
 * trace, because it already says what is missing and how to fix it.
 */
export class InfraError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InfraError';
  }
}

// ---------------------------------------------------------------------------------------------
// Components

export type Kind = 'mysql' | 'redis' | 'nats';

interface Target {
  kind: Kind;
  url: string;
  host: string;
  port: number;
}

interface ComponentInfo {
  label: string;
  envVar: string;
  defaultPort: number;
  /** binaries that can serve this component, in order of preference */
  binaries: string[];
  debianPackage: string;
}

const COMPONENTS: Record<Kind, ComponentInfo> = {
  mysql: {
    label: 'MySQL',
    envVar: 'MYSQL_URL',
    defaultPort: 3306,
    binaries: ['mariadbd', 'mysqld'],
    debianPackage: 'mariadb-server',
  },
  redis: {
    label: 'Redis',
    envVar: 'REDIS_URL',
    defaultPort: 6379,
    binaries: ['redis-server'],
    debianPackage: 'redis-server',
  },
  nats: {
    label: 'NATS',
    envVar: 'NATS_URL',
    defaultPort: 4222,
    binaries: ['nats-server'],
    debianPackage: 'nats-server',
  },
};

const COMPOSE_HINT = 'docker compose -f deploy/docker-compose.yml up -d';
const PROBE_TIMEOUT_MS = 1_000;
const STOP_GRACE_MS = 15_000;

/** A private instance we know how to launch; built during planning so nothing starts before every component is known to be available. */
interface StartPlan {
  target: Target;
  /** directory name under dataDir and the name shown in `started`, e.g. "mariadb" */
  name: string;
  start(ctx: StartContext): Promise<PrivateProcess>;
}

interface StartContext {
  dir: string;
  bindHost: string;
  port: number;
  timeoutMs: number;
  log: (line: string) => void;
  /** Flags after the usual ones (a test's Cluster mode, a smaller buffer pool). */
  extraArgs?: string[];
}

/**
 * Makes MySQL, Redis and NATS reachable at `urls`, starting private instances where needed.
 *
 * All three are probed and checked for binaries before anything is started, so a machine missing
 * two packages learns about both in one run and is not left with half a stack running.
 */
export async function ensureInfra(urls: InfraUrls, opts: EnsureInfraOptions): Promise<InfraHandle> {
  const log = opts.log ?? (() => {});
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const searchPath = opts.searchPath ?? defaultSearchPath();

  const components: Array<{ kind: Kind; url: string; targets: Target[]; cluster?: string }> = [
    { kind: 'mysql', url: urls.mysqlUrl, targets: [parseTarget('mysql', urls.mysqlUrl)] },
    redisComponent(urls),
    // A cluster's seed list: any one server answering is enough, the client finds the others.
    { kind: 'nats', url: urls.natsUrl, targets: natsServers(urls.natsUrl).map((u) => parseTarget('nats', u)) },
  ];
  const answering = await Promise.all(
    components.map(async (c) => (await Promise.all(c.targets.map((t) => probeTcp(t.host, t.port, PROBE_TIMEOUT_MS)))).some(Boolean)),
  );

  const plans: StartPlan[] = [];
  const problems: string[] = [];
  components.forEach((component, i) => {
    if (answering[i]) return;
    const info = COMPONENTS[component.kind];
    if (component.cluster !== undefined) {
      problems.push(
        `${info.label} is not reachable at ${component.url}, the first node of REDIS_CLUSTER_NODES=${component.cluster}; ` +
          `no private server is started in its place (the services use that Cluster, not REDIS_URL): start the Cluster, ` +
          `or unset REDIS_CLUSTER_NODES to use the single server at REDIS_URL.`,
      );
      return;
    }
    if (urls.configured?.[component.kind] === component.url) {
      problems.push(
        `${info.label} is not reachable at ${component.url}, which ${info.envVar} names explicitly; no private server is ` +
          `started in its place (it would not hold that server's data): start it, or unset ${info.envVar} to use a local one.`,
      );
      return;
    }
    const [target, ...more] = component.targets;
    if (!target || more.length > 0) {
      problems.push(`${info.label} is not reachable at any of ${component.url}; a private server stands in for one local address only.`);
      return;
    }
    const planned = planPrivate(target, searchPath, opts.dataDir);
    if (typeof planned === 'string') problems.push(planned);
    else plans.push(planned);
  });
  if (problems.length > 0) throw new InfraError(formatProblems(problems));

  // Started in parallel: MariaDB's first-run initialisation should not delay Redis and NATS.
  const results = await Promise.allSettled(plans.map((plan) => startPrivate(plan, opts.dataDir, timeoutMs, log)));
  const running = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const stopAll = once(async () => {
    await Promise.all(running.map(({ proc }) => stopProcess(proc)));
  });

  const failures = results.flatMap((r) => (r.status === 'rejected' ? [errorMessage(r.reason)] : []));
  if (failures.length > 0) {
    // All or nothing: the caller gets no handle, so it could never stop the ones that did start.
    await stopAll();
    throw new InfraError(failures.join('\n\n'));
  }

  return {
    started: running.map(({ plan, dir }) => `${plan.name} (private, ${displayPath(dir)})`),
    stop: stopAll,
  };
}

/**
 * Redis as the services will use it: the Cluster's first seed node when REDIS_CLUSTER_NODES is set
 * (starting or checking the Redis at REDIS_URL would help nobody), else REDIS_URL.
 */
function redisComponent(urls: InfraUrls): { kind: Kind; url: string; targets: Target[]; cluster?: string } {
  const first = urls.redisClusterNodes?.split(',').map((n) => n.trim()).find((n) => n !== '');
  if (first === undefined) return { kind: 'redis', url: urls.redisUrl, targets: [parseTarget('redis', urls.redisUrl)] };
  const target = parseTarget('redis', first);
  return { kind: 'redis', url: first, targets: [target], cluster: urls.redisClusterNodes ?? first };
}

async function startPrivate(
  plan: StartPlan,
  dataDir: string,
  timeoutMs: number,
  log: (line: string) => void,
): Promise<{ plan: StartPlan; proc: PrivateProcess; dir: string }> {
  const dir = join(dataDir, `${plan.name}-${plan.target.port}`);
  mkdirSync(dir, { recursive: true });
  // Node clients given "localhost" try both address families, so 127.0.0.1 serves it; only an explicit ::1 needs an IPv6 listener.
  const bindHost = plan.target.host === '::1' ? '::1' : '127.0.0.1';
  const proc = await plan.start({ dir, bindHost, port: plan.target.port, timeoutMs, log });
  return { plan, proc, dir };
}

/**
 * One private server of `kind` on 127.0.0.1:`port`, in `<dataDir>/<name>-<port>`, started exactly
 * as ensureInfra starts one (binary lookup, flags, readiness check, killed with this process):
 * for tests that need servers beside the configured ones, such as a second MariaDB or a Redis
 * Cluster's nodes. `searchPath` is where the binaries are looked for first. Throws InfraError
 * naming what is missing.
 */
export async function startPrivateServer(
  kind: Kind,
  opts: { port: number; dataDir: string; extraArgs?: string[]; timeoutMs?: number; log?: (line: string) => void; searchPath?: string },
): Promise<{ proc: PrivateProcess; dir: string }> {
  const target: Target = { kind, url: `${kind}://127.0.0.1:${opts.port}`, host: '127.0.0.1', port: opts.port };
  const plan = planPrivate(target, opts.searchPath ?? defaultSearchPath(), opts.dataDir);
  if (typeof plan === 'string') throw new InfraError(`infra: ${plan}`);
  const dir = join(opts.dataDir, `${plan.name}-${opts.port}`);
  mkdirSync(dir, { recursive: true });
  const proc = await plan.start({ dir, bindHost: '127.0.0.1', port: opts.port, timeoutMs: opts.timeoutMs ?? 30_000, log: opts.log ?? (() => {}), extraArgs: opts.extraArgs });
  return { proc, dir };
}

/** Returns a launch plan, or the human-readable reason why no private instance is possible. */
function planPrivate(target: Target, searchPath: string, dataDir: string): StartPlan | string {
  const info = COMPONENTS[target.kind];
  if (!isLocalHost(target.host)) {
    return (
      `${info.label} is not reachable at ${target.url}; ${target.host} is not a local address, so no private ` +
      `instance can be started: start the server there, or point ${info.envVar} at a running server ` +
      `(for local development: \`${COMPOSE_HINT}\`).`
    );
  }
  const found = info.binaries
    .map((name) => ({ name, path: findBinary(name, searchPath) }))
    .find((b): b is { name: string; path: string } => b.path !== undefined);
  if (!found) {
    const which =
      info.binaries.length === 1
        ? `${info.binaries[0]} is not on PATH`
        : `neither ${info.binaries.join(' nor ')} is on PATH`;
    return (
      `${info.label} is not reachable at ${target.url} and ${which}: install it ` +
      `(Debian: apt-get install ${info.debianPackage}) or start the stack with \`${COMPOSE_HINT}\`, ` +
      `or point ${info.envVar} at a running server.`
    );
  }
  switch (target.kind) {
    case 'redis':
      return { target, name: 'redis', start: (ctx) => startRedis(found.path, ctx) };
    case 'nats':
      return { target, name: 'nats', start: (ctx) => startNats(found.path, ctx) };
    case 'mysql':
      return planMysql(target, found.path, searchPath, dataDir);
  }
}

function formatProblems(problems: string[]): string {
  const head =
    problems.length === 1
      ? 'infra: a required server is missing:'
      : `infra: ${problems.length} required servers are missing:`;
  return [head, ...problems.map((p) => `  - ${p}`)].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Redis

async function startRedis(bin: string, ctx: StartContext): Promise<PrivateProcess> {
  ctx.log(`infra: starting private redis-server on ${hostPort(ctx.bindHost, ctx.port)} (${displayPath(ctx.dir)})`);
  // No persistence: the private Redis holds caches and counters that the services rebuild, and
  // snapshots would only leave stale state behind for the next run.
  const args = [
    '--port', String(ctx.port),
    '--bind', ctx.bindHost,
    '--save', '',
    '--appendonly', 'no',
    '--dir', ctx.dir,
    '--logfile', join(ctx.dir, 'redis.log'),
    ...(ctx.extraArgs ?? []),
  ];
  const proc = spawnServer('redis', bin, args, ctx.dir, [join(ctx.dir, 'redis.log')]);
  await waitUntilReady(proc, () => redisPing(ctx.bindHost, ctx.port), ctx);
  return proc;
}

/** A raw RESP PING: proves the server is serving commands, not merely that the port is bound, without pulling a client's reconnect machinery into a polling loop. */
function redisPing(host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host, port });
    let reply = '';
    const fail = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    socket.setTimeout(2_000, () => fail(new Error('PING timed out')));
    socket.on('error', fail);
    socket.on('connect', () => socket.write('*1\r\n$4\r\nPING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString('utf8');
      if (!reply.includes('\r\n')) return;
      socket.destroy();
      if (reply.startsWith('+PONG')) resolve();
      else reject(new Error(`unexpected reply to PING: ${reply.trim()}`));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// NATS

async function startNats(bin: string, ctx: StartContext): Promise<PrivateProcess> {
  ctx.log(`infra: starting private nats-server on ${hostPort(ctx.bindHost, ctx.port)} (${displayPath(ctx.dir)})`);
  const logFile = join(ctx.dir, 'nats.log');
  // JetStream is on because gift events and KV buckets need it; its store lives in the private
  // folder so streams survive restarts the same way they would on a real server.
  const args = ['-a', ctx.bindHost, '-p', String(ctx.port), '-js', '-sd', join(ctx.dir, 'jetstream'), '-l', logFile, ...(ctx.extraArgs ?? [])];
  const proc = spawnServer('nats', bin, args, ctx.dir, [logFile]);
  await waitUntilReady(proc, () => natsCheck(ctx.bindHost, ctx.port), ctx);
  return proc;
}

async function natsCheck(host: string, port: number): Promise<void> {
  const nc = await natsConnect({ servers: hostPort(host, port), reconnect: false, timeout: 2_000 });
  await nc.flush();
  await nc.close();
}

// ---------------------------------------------------------------------------------------------
// MariaDB / MySQL

type MysqlFlavor = { kind: 'mariadb'; version: string } | { kind: 'mysql'; version: string; major: number };

function planMysql(target: Target, serverBin: string, searchPath: string, dataDir: string): StartPlan | string {
  const flavor = detectMysqlFlavor(serverBin);
  if (typeof flavor === 'string') return flavor;
  const name = flavor.kind;
  const dir = join(dataDir, `${name}-${target.port}`);
  // MariaDB initialises its data directory with a separate script; check for it now so that a
  // broken install is reported together with everything else, before anything starts.
  let installer: string | undefined;
  if (flavor.kind === 'mariadb' && !isMysqlInitialised(dir)) {
    installer = findBinary('mariadb-install-db', searchPath) ?? findBinary('mysql_install_db', searchPath);
    if (!installer) {
      return (
        `MySQL is not reachable at ${target.url}; ${serverBin} is installed but neither mariadb-install-db nor ` +
        `mysql_install_db is on PATH to initialise its data directory: reinstall it (Debian: apt-get install ` +
        `mariadb-server) or start the stack with \`${COMPOSE_HINT}\`, or point MYSQL_URL at a running server.`
      );
    }
  }
  return { target, name, start: (ctx) => startMysql(serverBin, flavor, installer, ctx) };
}

/** `--version` both proves the binary runs at all (missing libraries show up here, not as a silent timeout) and tells MariaDB from MySQL, which initialise differently. */
function detectMysqlFlavor(bin: string): MysqlFlavor | string {
  const res = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  const out = `${res.stdout ?? ''}${res.stderr ?? ''}`.trim();
  if (res.error || res.status !== 0) {
    const why = res.error ? res.error.message : `exit code ${res.status}`;
    return `MySQL: \`${bin} --version\` failed (${why})${out ? `: ${out}` : ''}; reinstall it (Debian: apt-get install mariadb-server) or start the stack with \`${COMPOSE_HINT}\`.`;
  }
  if (/mariadb/i.test(out)) return { kind: 'mariadb', version: out };
  const major = Number(/Ver\s+(\d+)\./.exec(out)?.[1] ?? '0');
  return { kind: 'mysql', version: out, major };
}

/**
 * The marker is written only after initialisation succeeded, so an init that was interrupted
 * (Ctrl-C, timeout) is redone from scratch instead of leaving a half-made datadir that fails later.
 */
function isMysqlInitialised(dir: string): boolean {
  return existsSync(join(dir, 'initialised')) && existsSync(join(dir, 'data', 'mysql'));
}

async function startMysql(
  bin: string,
  flavor: MysqlFlavor,
  installer: string | undefined,
  ctx: StartContext,
): Promise<PrivateProcess> {
  const dataPath = join(ctx.dir, 'data');
  // Both servers refuse to run as root unless told to, and only root may pass --user.
  const asRoot = process.getuid?.() === 0;
  const userArgs = asRoot ? ['--user=root'] : [];

  if (!isMysqlInitialised(ctx.dir)) {
    rmSync(dataPath, { recursive: true, force: true });
    await initialiseMysql(bin, flavor, installer, dataPath, userArgs, ctx);
    writeFileSync(join(ctx.dir, 'initialised'), `${flavor.version}\n`);
  }

  ctx.log(`infra: starting private ${flavor.kind === 'mariadb' ? 'mariadbd' : 'mysqld'} on ${hostPort(ctx.bindHost, ctx.port)} (${displayPath(ctx.dir)})`);
  const errLog = join(ctx.dir, 'mysqld.err');
  // --no-defaults keeps /etc/mysql/my.cnf (system datadir, socket, user) out of the private
  // instance; the binary log is useless for a dev database and only costs disk.
  const args = [
    '--no-defaults',
    `--datadir=${dataPath}`,
    `--port=${ctx.port}`,
    `--bind-address=${ctx.bindHost}`,
    `--socket=${join(ctx.dir, 'mysqld.sock')}`,
    `--pid-file=${join(ctx.dir, 'mysqld.pid')}`,
    `--log-error=${errLog}`,
    '--skip-log-bin',
    ...userArgs,
    ...(ctx.extraArgs ?? []),
  ];
  // MySQL 8's X Protocol plugin would otherwise try to claim port 33060, which a system MySQL may hold.
  if (flavor.kind === 'mysql' && flavor.major >= 8) args.push('--mysqlx=OFF');
  const proc = spawnServer(flavor.kind, bin, args, ctx.dir, [errLog]);
  await waitUntilReady(proc, () => mysqlCheck(ctx.bindHost, ctx.port), ctx);
  return proc;
}

/** Root ends up with an empty password either way, so the default URL mysql://root@127.0.0.1:P works against the private instance. */
async function initialiseMysql(
  bin: string,
  flavor: MysqlFlavor,
  installer: string | undefined,
  dataPath: string,
  userArgs: string[],
  ctx: StartContext,
): Promise<void> {
  let cmd: string;
  let args: string[];
  if (flavor.kind === 'mariadb') {
    if (!installer) throw new InfraError('infra: mariadb-install-db is needed to initialise the MariaDB data directory');
    cmd = installer;
    // --no-defaults must come first; without it the Debian my.cnf points the script at the system
    // datadir and socket. "normal" root auth (instead of unix_socket) is what gives root@127.0.0.1
    // an empty password usable over TCP.
    args = [
      '--no-defaults',
      `--datadir=${dataPath}`,
      '--auth-root-authentication-method=normal',
      '--skip-test-db',
      ...userArgs,
    ];
  } else {
    cmd = bin;
    args = ['--no-defaults', '--initialize-insecure', `--datadir=${dataPath}`, ...userArgs];
  }
  ctx.log(`infra: initialising ${flavor.kind} data directory ${displayPath(dataPath)} (${cmd} ${args.join(' ')})`);
  const logFile = join(ctx.dir, 'install.log');
  const result = await runToCompletion(cmd, args, logFile, ctx.timeoutMs);
  if (result !== 0) {
    throw new InfraError(
      `infra: initialising the private ${flavor.kind} data directory failed (${result}); ` +
        `last lines of ${logFile}:\n${logTail([{ file: logFile, offset: 0 }])}`,
    );
  }
}

async function mysqlCheck(host: string, port: number): Promise<void> {
  const conn = await mysql.createConnection({ host, port, user: 'root', password: '', connectTimeout: 2_000 });
  try {
    await conn.query('SELECT 1');
  } finally {
    conn.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Child processes

interface LogRef {
  file: string;
  offset: number;
}

export interface PrivateProcess {
  name: string;
  child: ChildProcess;
  /** log files with their size at spawn time, so a failure shows this run's lines rather than an old run's */
  logFiles: LogRef[];
  /** resolves once the child is gone, with a description of how it ended */
  exited: Promise<string>;
  exitDescription: string | undefined;
}

/** Children still running, killed synchronously if the parent exits without calling stop(). */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * A private server must never outlive the process that started it: an orphaned mariadbd would
 * keep the port, and the next run would silently use it instead of starting a fresh one.
 * 'exit' handlers can only do synchronous work, hence SIGKILL rather than a graceful stop. (On
 * Ctrl-C the terminal signals the whole foreground process group, children included.)
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of liveChildren) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

/** stdout/stderr go to a file rather than a pipe: nobody would drain a pipe, and early startup errors (bad flags) are printed there before the server opens its own log. */
export function spawnServer(name: string, bin: string, args: string[], dir: string, logFiles: string[]): PrivateProcess {
  installExitHook();
  const stdioFile = join(dir, 'stdio.log');
  const logRefs = [stdioFile, ...logFiles].map((file) => ({ file, offset: fileSize(file) }));
  const fd = openSync(stdioFile, 'a');
  let child: ChildProcess;
  try {
    // Own process group: a terminal Ctrl-C reaches the launcher, which stops these servers only
    // after the services using them have drained.
    child = spawn(bin, args, { cwd: dir, detached: true, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  liveChildren.add(child);
  const proc: PrivateProcess = {
    name,
    child,
    logFiles: logRefs,
    exitDescription: undefined,
    exited: new Promise((resolve) => {
      const done = (description: string) => {
        liveChildren.delete(child);
        if (proc.exitDescription === undefined) proc.exitDescription = description;
        resolve(proc.exitDescription);
      };
      child.once('error', (err) => done(`failed to run: ${err.message}`));
      child.once('exit', (code, signal) => done(signal ? `killed by ${signal}` : `exited with code ${code}`));
    }),
  };
  return proc;
}

/** Polls a real client handshake: an open port alone is not enough, since MariaDB listens well before it accepts logins. */
async function waitUntilReady(proc: PrivateProcess, check: () => Promise<void>, ctx: StartContext): Promise<void> {
  const started = Date.now();
  const deadline = started + ctx.timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (proc.exitDescription !== undefined) break;
    try {
      await check();
      ctx.log(`infra: private ${proc.name} ready on ${hostPort(ctx.bindHost, ctx.port)} after ${((Date.now() - started) / 1000).toFixed(1)} s`);
      return;
    } catch (err) {
      lastError = err;
    }
    await Promise.race([sleep(250), proc.exited]);
  }
  const why =
    proc.exitDescription !== undefined
      ? `it ${proc.exitDescription}`
      : `it did not accept connections within ${ctx.timeoutMs} ms (last error: ${errorMessage(lastError)})`;
  await stopProcess(proc);
  throw new InfraError(
    `infra: the private ${proc.name} on ${hostPort(ctx.bindHost, ctx.port)} failed to start: ${why}. ` +
      `Last lines of its logs:\n${logTail(proc.logFiles)}`,
  );
}

/** SIGTERM lets MariaDB flush InnoDB cleanly; SIGKILL is the fallback so stop() always finishes. */
export async function stopProcess(proc: PrivateProcess): Promise<void> {
  if (proc.exitDescription !== undefined) return;
  proc.child.kill('SIGTERM');
  // The grace timer is cleared on exit so that a stopped stack does not hold the event loop open.
  const killTimer = setTimeout(() => proc.child.kill('SIGKILL'), STOP_GRACE_MS);
  await proc.exited;
  clearTimeout(killTimer);
}

/** Runs a one-off command (the datadir initialiser) with its output in a log file; resolves with 0 or a description of the failure. */
function runToCompletion(cmd: string, args: string[], logFile: string, timeoutMs: number): Promise<0 | string> {
  installExitHook();
  const fd = openSync(logFile, 'w');
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, { detached: false, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  liveChildren.add(child);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(`timed out after ${timeoutMs} ms`);
    }, timeoutMs);
    let settled = false;
    const finish = (result: 0 | string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      liveChildren.delete(child);
      resolve(result);
    };
    child.once('error', (err) => finish(`failed to run: ${err.message}`));
    child.once('exit', (code, signal) => finish(code === 0 ? 0 : signal ? `killed by ${signal}` : `exit code ${code}`));
  });
}

// ---------------------------------------------------------------------------------------------
// Helpers

function parseTarget(kind: Kind, raw: string): Target {
  const info = COMPONENTS[kind];
  // NATS URLs are often written bare ("127.0.0.1:4222"); URL() needs a scheme to find the host.
  const withScheme = raw.includes('://') ? raw : `${kind}://${raw}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new InfraError(`infra: ${info.envVar}=${raw} is not a valid URL`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new InfraError(`infra: ${info.envVar}=${raw} has no host`);
  const port = url.port ? Number(url.port) : info.defaultPort;
  return { kind, url: raw, host, port };
}

function isLocalHost(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '::1';
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A TCP connect is the cheapest question that works for all three protocols: is anything there at all? */
/** True when something accepts a TCP connection at host:port within the timeout. */
export function probeTcp(host: string, port: number, timeoutMs = PROBE_TIMEOUT_MS): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export function defaultSearchPath(): string {
  return [process.env.PATH, '/usr/sbin', '/usr/local/sbin', '/sbin'].filter((p): p is string => !!p).join(delimiter);
}

export function findBinary(name: string, searchPath: string = defaultSearchPath()): string | undefined {
  for (const dir of searchPath.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function logTail(logs: LogRef[], lines = 20): string {
  const parts: string[] = [];
  for (const { file, offset } of logs) {
    let text: string;
    try {
      text = readFileSync(file).subarray(offset).toString('utf8').trimEnd();
    } catch {
      continue;
    }
    if (text) parts.push(`--- ${file}\n${text.split('\n').slice(-lines).join('\n')}`);
  }
  return parts.length > 0 ? parts.join('\n') : '(no log output)';
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let promise: Promise<void> | undefined;
  return () => (promise ??= fn());
}
