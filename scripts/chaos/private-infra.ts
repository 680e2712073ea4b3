import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { ensureInfra, infraUrlsFromEnv, type InfraHandle } from '../infra.js';
import { freePorts } from '../net.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

/**
 * What a chaos run breaks on purpose, all of it private to the run: its own redis-server and
 * nats-server (JetStream store in a temporary folder, so it survives a restart as a real one
 * would), and a cuttable proxy in front of the shared MariaDB. The shared servers other engineers
 * use are never paused, restarted or cut; on MariaDB only this run's connections are killed.
 */
export interface ChaosInfra {
  /** MYSQL_URL (through the proxy), REDIS_URL, NATS_URL for the services */
  env: Record<string, string>;
  /** the shared MariaDB, directly: for the checker and for killing connections */
  directMysqlUrl: string;
  redisUrl: string;
  natsUrl: string;
  mysqlProxy: TcpProxy;
  /** stops nats-server (SIGTERM, as an orchestrator would) and starts it again on the same port and store */
  restartNats(): Promise<void>;
  /** every Redis client waits for `ms` (CLIENT PAUSE ALL): a Redis that stalls, as on a long fork or a failover */
  pauseRedis(ms: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startChaosInfra(log: (line: string) => void): Promise<ChaosInfra> {
  const shared = infraUrlsFromEnv();
  const [redisPort, natsPort] = (await freePorts(2)) as [number, number];
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  const natsUrl = `nats://127.0.0.1:${natsPort}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'livemesh-chaos-'));
  // ensureInfra starts a private server for whatever does not answer; the shared MariaDB answers,
  // so each call starts exactly the one server whose URL points at a free port.
  const quiet = (line: string) => (/ready|starting/.test(line) ? log(line.replace(/^infra: /, 'chaos: ')) : undefined);
  const redis = await ensureInfra({ ...shared, redisUrl, natsUrl: shared.natsUrl }, { dataDir, log: quiet });
  let nats: InfraHandle = await ensureInfra({ ...shared, redisUrl, natsUrl }, { dataDir, log: quiet });
  const mysqlTarget = new URL(shared.mysqlUrl);
  const mysqlProxy = await startTcpProxy(mysqlTarget.hostname, Number(mysqlTarget.port || 3306));
  const proxied = new URL(shared.mysqlUrl);
  proxied.hostname = '127.0.0.1';
  proxied.port = String(mysqlProxy.port);

  return {
    env: { MYSQL_URL: proxied.toString().replace(/\/$/, ''), REDIS_URL: redisUrl, NATS_URL: natsUrl },
    directMysqlUrl: shared.mysqlUrl,
    redisUrl,
    natsUrl,
    mysqlProxy,
    async restartNats() {
      await nats.stop();
      nats = await ensureInfra({ ...shared, redisUrl, natsUrl }, { dataDir, log: () => {} });
    },
    async pauseRedis(ms) {
      const client = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await client.connect();
        await client.call('CLIENT', 'PAUSE', String(ms), 'ALL');
      } finally {
        client.disconnect();
      }
    },
    async stop() {
      await mysqlProxy.cut();
      await Promise.allSettled([nats.stop(), redis.stop()]);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
