/**
 * A private MariaDB server for a test file, started from the machine's own binaries (`mariadbd`,
 * `mariadb-install-db`, Debian's mariadb-server) beside the shared one, the way `npm start` starts
 * its private one (scripts/infra.ts startPrivateServer: `--no-defaults`, so the machine's
 * /etc/mysql stays out of it): on a free port, data under .data/ (git-ignored), root with an
 * empty password over TCP. Initialising a data directory takes seconds, so a file starts one
 * server in beforeAll and stops it in afterAll, which deletes the data.
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { delimiter, dirname } from 'node:path';
import { fromRoot } from '../../../kit/paths.js';
import { defaultSearchPath, findBinary, startPrivateServer, stopProcess } from '../../../scripts/infra.js';
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

/** Where to look: LM_MARIADBD's folder first (another mariadbd, and its installer if it has one), then PATH and the sbin folders. */
const searchPath = () => [process.env.LM_MARIADBD ? dirname(process.env.LM_MARIADBD) : '', defaultSearchPath()].filter(Boolean).join(delimiter);

/** `mariadbd` and `mariadb-install-db`, or the Debian package to install. */
export function mariadbGate(test: string, what: string): ToolGate & { installer: string | undefined } {
  const server = process.env.LM_MARIADBD || findBinary('mariadbd', searchPath());
  const installer = findBinary('mariadb-install-db', searchPath());
  const works = server !== undefined && spawnSync(server, ['--version'], { encoding: 'utf8' }).status === 0;
  const found = works && installer ? server : undefined;
  const why = !works ? `no working mariadbd (${server ?? 'not on PATH or in /usr/sbin'})` : 'no mariadb-install-db on PATH';
  return { ...toolGate({ test, what, found, why, install: debian('mariadb-server') }), installer };
}

/** Initialises a fresh data directory and starts `mariadbd` on it; resolves once root can log in over TCP. */
export async function startMariaDb(gate: ReturnType<typeof mariadbGate>, opts: { timeoutMs?: number } = {}): Promise<MariaDbServer> {
  gate.need();
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error('no free port');
  const { proc, dir } = await startPrivateServer('mysql', {
    port,
    dataDir: fromRoot('.data', `test-mariadb-${process.pid}`),
    searchPath: searchPath(),
    timeoutMs: opts.timeoutMs ?? 90_000,
    // A test server: small buffers, so two of them and the machine's fit beside other tests.
    extraArgs: ['--innodb-buffer-pool-size=64M'],
  });
  return {
    port,
    url: `mysql://root@127.0.0.1:${port}`,
    dir,
    async stop() {
      await stopProcess(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
