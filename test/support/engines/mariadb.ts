/**
 * A private MariaDB server for a test file, started from the machine's own binaries (`mariadbd`,
 * `mariadb-install-db`, Debian's mariadb-server) beside the shared one: on a free port, data under
 * .data/ (git-ignored), root with an empty password over TCP. Initialising a data directory takes
 * seconds, so a file starts one server in beforeAll and stops it in afterAll, which deletes the data.
 *
 * `--no-defaults` comes first for both binaries: without it they read the machine's /etc/mysql
 * (its datadir, socket and user) and would initialise or start over the system server's files.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';
import { fromRoot } from '../../../kit/paths.js';
import { freePorts } from '../../../scripts/net.js';
import { debian, toolGate, type ToolGate } from '../tools.js';

export interface MariaDbServer {
  port: number;
  /** mysql://root@127.0.0.1:<port> */
  url: string;
  dir: string;
  /** Stops the server (SIGTERM, then SIGKILL) and deletes its data directory. */
  stop(): Promise<void>;
}

/** PATH plus the sbin folders Debian installs mariadbd into (not on a non-root PATH). */
function find(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'].filter(Boolean);
  for (const dir of dirs) {
    try {
      accessSync(join(dir, name), fsConstants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * `mariadbd` and `mariadb-install-db` (LM_MARIADBD names another mariadbd; its folder's installer,
 * else the one on PATH, is used), or the Debian package to install.
 */
export function mariadbGate(test: string, what: string): ToolGate & { installer: string | undefined } {
  const server = process.env.LM_MARIADBD || find('mariadbd');
  const installer = find('mariadb-install-db');
  const works = server !== undefined && spawnSync(server, ['--version'], { encoding: 'utf8' }).status === 0;
  const found = works && installer ? server : undefined;
  const why = !works ? `no working mariadbd (${server ?? 'not on PATH or in /usr/sbin'})` : 'no mariadb-install-db on PATH';
  return { ...toolGate({ test, what, found, why, install: debian('mariadb-server') }), installer };
}

/** Runs a command to its end; rejects with its output's tail when it fails. */
function run(cmd: string, args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(' ')} ended with ${code ?? signal}:\n${out.split('\n').slice(-15).join('\n')}`));
    });
  });
}

/** Initialises a fresh data directory and starts `mariadbd` on it; resolves once root can log in over TCP. */
export async function startMariaDb(gate: ReturnType<typeof mariadbGate>, opts: { timeoutMs?: number } = {}): Promise<MariaDbServer> {
  const server = gate.need();
  const installer = gate.installer;
  if (!installer) throw new Error('mariadb-install-db missing');
  const timeoutMs = opts.timeoutMs ?? 90_000;
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error('no free port');
  const dir = fromRoot('.data', `test-mariadb-${port}-${process.pid}`);
  const data = join(dir, 'data');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  // Both binaries refuse to run as root unless told to, and only root may pass --user.
  const user = process.getuid?.() === 0 ? ['--user=root'] : [];
  // "normal" root authentication (not unix_socket) is what lets root@127.0.0.1 in with an empty password.
  await run(installer, ['--no-defaults', `--datadir=${data}`, '--auth-root-authentication-method=normal', '--skip-test-db', ...user], timeoutMs);
  const errLog = join(dir, 'mariadbd.err');
  const child: ChildProcess = spawn(
    server,
    [
      '--no-defaults',
      `--datadir=${data}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--socket=${join(dir, 'mariadbd.sock')}`,
      `--pid-file=${join(dir, 'mariadbd.pid')}`,
      `--log-error=${errLog}`,
      '--skip-log-bin',
      // A test server: small buffers, so two of them and the machine's fit beside six engineers' tests.
      '--innodb-buffer-pool-size=64M',
      ...user,
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `mysql://root@127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      let log = '';
      try {
        log = readFileSync(errLog, 'utf8').split('\n').slice(-15).join('\n');
      } catch {
        // no log written
      }
      await stop();
      throw new Error(`mariadbd on port ${port} exited (${child.exitCode ?? child.signalCode}) while starting:\n${log}`);
    }
    try {
      const conn = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root', password: '', connectTimeout: 2_000 });
      await conn.query('SELECT 1');
      await conn.end();
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`mariadbd on port ${port} not answering after ${timeoutMs} ms: ${(err as Error).message}`);
      }
      await sleep(200);
    }
  }
  return { port, url, dir, stop };
}
