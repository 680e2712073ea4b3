/**
 * A private Redis Cluster from the machine's redis-server and redis-cli binaries: three primaries
 * (no replicas) on free ports, data under .data/ (git-ignored), slots assigned by
 * `redis-cli --cluster create`. Each node's cluster bus gets its own free port (`cluster-port`)
 * rather than port + 10000, which another listener or the port range's end could hold.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { fromRoot } from '../../../kit/paths.js';
import { findBinary, startPrivateServer, stopProcess, type PrivateProcess } from '../../../scripts/infra.js';
import { freePorts } from '../../../scripts/net.js';
import { debian, toolGate, type ToolGate } from '../tools.js';

const run = promisify(execFile);

/** redis-server and redis-cli (Debian's redis-server package brings redis-tools with redis-cli). */
export function redisClusterGate(test: string, what: string): ToolGate & { cli: string | undefined } {
  const server = process.env.LM_REDIS_SERVER ?? findBinary('redis-server');
  const cli = process.env.LM_REDIS_CLI ?? findBinary('redis-cli');
  const missing = [server && existsSync(server) ? undefined : 'redis-server', cli && existsSync(cli) ? undefined : 'redis-cli'].filter(Boolean);
  const gate = toolGate({
    test,
    what,
    found: missing.length === 0 ? server : undefined,
    why: `no ${missing.join(' or ')} found (looked on PATH, or at LM_REDIS_SERVER / LM_REDIS_CLI when set)`,
    install: debian('redis-server redis-tools'),
  });
  return { ...gate, cli };
}

export interface RedisCluster {
  /** host:port of every primary, for REDIS_CLUSTER_NODES */
  nodes: string[];
  /** Every node's log so far (what the servers themselves reported). */
  logs(): Promise<string>;
  stop(): Promise<void>;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`redis cluster: ${what} within ${timeoutMs} ms`);
    await sleep(100);
  }
}

async function ask<T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000 });
  // A node still starting refuses the connection: connect() rejects, and the event needs a listener too.
  r.on('error', () => {});
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

/**
 * Starts `masters` redis-server processes in cluster mode (each as `npm start` starts its private
 * Redis, plus the Cluster flags), joins them with redis-cli and waits until every node reports
 * `cluster_state:ok`. `server`/`cli` are the binaries (see the gate).
 */
export async function startRedisCluster(opts: { server: string; cli: string; masters?: number; log?: (line: string) => void }): Promise<RedisCluster> {
  const masters = opts.masters ?? 3;
  const log = opts.log ?? (() => {});
  const ports = await freePorts(masters * 2);
  const dataDir = fromRoot('.data', 'redis-cluster', `${process.pid}-${ports[0]}`);
  const procs: PrivateProcess[] = [];
  const nodeDirs: string[] = [];
  const stop = async () => {
    await Promise.all(procs.map((p) => stopProcess(p)));
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    const nodes = ports.slice(0, masters).map((p) => `127.0.0.1:${p}`);
    await Promise.all(
      ports.slice(0, masters).map(async (port, i) => {
        const { proc, dir } = await startPrivateServer('redis', {
          port,
          dataDir,
          searchPath: dirname(opts.server),
          timeoutMs: 15_000,
          // nodes.conf lands in the node's own folder (the server's working directory).
          extraArgs: ['--cluster-enabled', 'yes', '--cluster-port', String(ports[masters + i]), '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000'],
        });
        procs.push(proc);
        nodeDirs.push(dir);
      }),
    );
    log(`redis cluster: ${masters} nodes up on ${nodes.join(', ')}; creating the cluster`);
    await run(opts.cli, ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 });
    for (const port of ports.slice(0, masters)) {
      await waitFor(`node ${port} reporting cluster_state:ok`, () => ask(port, async (r) => /cluster_state:ok/.test(await r.cluster('INFO'))), 30_000);
    }
    log('redis cluster: every slot served');
    return {
      nodes,
      async logs() {
        return (await Promise.all(nodeDirs.map((d) => readFile(join(d, 'redis.log'), 'utf8').catch(() => '')))).join('\n');
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
