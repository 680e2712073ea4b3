import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import { answers, freePorts } from '../scripts/net.js';
import { ensureInfra, InfraError, infraUrlsFromEnv, type InfraHandle, type InfraUrls } from '../scripts/infra.js';

async function urlsOnFreePorts(): Promise<{ urls: InfraUrls; ports: { mysql: number; redis: number; nats: number } }> {
  const [mysqlPort, redisPort, natsPort] = (await freePorts(3)) as [number, number, number];
  return {
    urls: {
      mysqlUrl: `mysql://root@127.0.0.1:${mysqlPort}`,
      redisUrl: `redis://127.0.0.1:${redisPort}`,
      natsUrl: `nats://127.0.0.1:${natsPort}`,
    },
    ports: { mysql: mysqlPort, redis: redisPort, nats: natsPort },
  };
}

const tempDirs: string[] = [];
const handles: InfraHandle[] = [];

function tempDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'livemesh-infra-'));
  tempDirs.push(dir);
  return dir;
}

afterEach(async () => {
  // Safety net for a failing assertion halfway through: never leave servers or folders behind.
  await Promise.all(handles.splice(0).map((h) => h.stop()));
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('infraUrlsFromEnv', () => {
  it('defaults to the standard localhost ports and honours overrides', () => {
    expect(infraUrlsFromEnv({})).toEqual({
      mysqlUrl: 'mysql://root@127.0.0.1:3306',
      redisUrl: 'redis://127.0.0.1:6379',
      natsUrl: 'nats://127.0.0.1:4222',
      configured: {},
    });
    expect(infraUrlsFromEnv({ REDIS_URL: 'redis://cache:6380', MYSQL_URL: '', NATS_URL: 'nats://bus:4223' })).toEqual({
      mysqlUrl: 'mysql://root@127.0.0.1:3306',
      redisUrl: 'redis://cache:6380',
      natsUrl: 'nats://bus:4223',
      configured: { redis: 'redis://cache:6380', nats: 'nats://bus:4223' },
    });
  });
});

describe('ensureInfra', () => {
  it(
    'starts private redis, mariadb and nats on free ports, usable by real clients, and stops them',
    async () => {
      const { urls, ports } = await urlsOnFreePorts();
      const dataDir = tempDataDir();
      const lines: string[] = [];
      // No try/catch around this: on a machine without the binaries the InfraError message is the failure.
      const handle = await ensureInfra(urls, { dataDir, log: (l) => lines.push(l), timeoutMs: 60_000 });
      handles.push(handle);

      expect(handle.started).toHaveLength(3);
      expect(handle.started.find((s) => s.startsWith('redis (private, '))).toContain(`redis-${ports.redis}`);
      expect(handle.started.find((s) => /^(mariadb|mysql) \(private, /.test(s))).toMatch(
        new RegExp(`(mariadb|mysql)-${ports.mysql}`),
      );
      expect(handle.started.find((s) => s.startsWith('nats (private, '))).toContain(`nats-${ports.nats}`);
      expect(lines.some((l) => l.startsWith('infra: starting private redis-server'))).toBe(true);
      expect(readdirSync(dataDir).sort()).toEqual(
        [expect.stringMatching(/^(mariadb|mysql)-/), `nats-${ports.nats}`, `redis-${ports.redis}`].sort(),
      );

      // Redis
      const redis = new Redis(urls.redisUrl, { maxRetriesPerRequest: 1 });
      try {
        await redis.set('infra:test', 'hello');
        expect(await redis.get('infra:test')).toBe('hello');
      } finally {
        redis.disconnect();
      }

      // MariaDB / MySQL: root with an empty password over TCP, able to create a database.
      const db = await mysql.createConnection(urls.mysqlUrl);
      try {
        const [rows] = await db.query<mysql.RowDataPacket[]>('SELECT 1 AS one');
        expect(rows[0]?.one).toBe(1);
        await db.query('CREATE DATABASE livemesh_infra_test');
        const [dbs] = await db.query<mysql.RowDataPacket[]>("SHOW DATABASES LIKE 'livemesh_infra_test'");
        expect(dbs).toHaveLength(1);
      } finally {
        await db.end();
      }

      // NATS core round trip, and JetStream enabled.
      const nc = await natsConnect({ servers: `127.0.0.1:${ports.nats}`, reconnect: false });
      try {
        const sub = nc.subscribe('infra.test', { max: 1 });
        const received = (async () => {
          for await (const msg of sub) return msg.string();
          return undefined;
        })();
        nc.publish('infra.test', 'ping');
        expect(await received).toBe('ping');
        const jsm = await jetstreamManager(nc);
        const info = await jsm.getAccountInfo();
        expect(info.streams).toBe(0);
      } finally {
        await nc.close();
      }

      await handle.stop();
      await handle.stop(); // idempotent
      expect(await answers(ports.redis)).toBe(false);
      expect(await answers(ports.mysql)).toBe(false);
      expect(await answers(ports.nats)).toBe(false);
    },
    180_000,
  );

  it('uses the already-running standard services and starts nothing', async () => {
    const dataDir = tempDataDir();
    const handle = await ensureInfra(infraUrlsFromEnv({}), { dataDir });
    handles.push(handle);
    expect(handle.started).toEqual([]);
    await handle.stop();
    expect(readdirSync(dataDir)).toEqual([]);
    // stop() touched only what this call started: the shared services still answer.
    expect(await answers(6379)).toBe(true);
  });

  it('fails fast naming every missing binary when nothing is on the search path', async () => {
    const { urls } = await urlsOnFreePorts();
    const dataDir = tempDataDir();
    const attempt = ensureInfra(urls, { dataDir, searchPath: '/nonexistent' });
    await expect(attempt).rejects.toBeInstanceOf(InfraError);
    const message = await attempt.then(
      () => '',
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    expect(message).toContain('redis-server');
    expect(message).toMatch(/mariadb-server|mysqld/);
    expect(message).toContain('nats-server');
    expect(message).toContain('deploy/docker-compose.yml');
    expect(message).toContain(urls.redisUrl);
    // Nothing was started or created for the components that could not be satisfied.
    expect(existsSync(dataDir) ? readdirSync(dataDir) : []).toEqual([]);
  });

  it('never stands a private server in for one set explicitly that does not answer: it fails naming each', async () => {
    const { urls } = await urlsOnFreePorts();
    const dataDir = tempDataDir();
    // What `MYSQL_URL=… REDIS_URL=… NATS_URL=… npm start` reads: local addresses, binaries installed,
    // nothing listening. Without the variables the same addresses would get private servers.
    const [natsSeed2] = (await freePorts(1)) as [number];
    const natsList = `${urls.natsUrl},nats://127.0.0.1:${natsSeed2}`;
    const fromEnv = infraUrlsFromEnv({ MYSQL_URL: urls.mysqlUrl, REDIS_URL: urls.redisUrl, NATS_URL: natsList });
    const err = await ensureInfra(fromEnv, { dataDir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfraError);
    const message = (err as Error).message;
    expect(message).toContain(`MySQL is not reachable at ${urls.mysqlUrl}, which MYSQL_URL names explicitly`);
    expect(message).toContain(`Redis is not reachable at ${urls.redisUrl}, which REDIS_URL names explicitly`);
    expect(message).toContain(`NATS is not reachable at ${natsList}, which NATS_URL names explicitly`);
    expect(existsSync(dataDir) ? readdirSync(dataDir) : []).toEqual([]);
    expect(await answers(Number(new URL(urls.redisUrl).port))).toBe(false);
  });

  it('with REDIS_CLUSTER_NODES, probes the first Cluster node instead of REDIS_URL, and fails naming it when it does not answer', async () => {
    const [deadUrl, deadNode, otherNode] = (await freePorts(3)) as [number, number, number];
    const shared = infraUrlsFromEnv({});
    // REDIS_URL names nothing that answers, but the services use the Cluster: its first node answers (a TCP probe).
    const sharedRedis = new URL(shared.redisUrl);
    const answering = infraUrlsFromEnv({ REDIS_URL: `redis://127.0.0.1:${deadUrl}`, REDIS_CLUSTER_NODES: `${sharedRedis.hostname}:${sharedRedis.port || 6379},127.0.0.1:${otherNode}` });
    expect(answering.redisClusterNodes).toBe(`${sharedRedis.hostname}:${sharedRedis.port || 6379},127.0.0.1:${otherNode}`);
    const handle = await ensureInfra(answering, { dataDir: tempDataDir() });
    handles.push(handle);
    expect(handle.started).toEqual([]);
    expect(await answers(deadUrl)).toBe(false);

    // A first node that does not answer is an error naming it; no private Redis stands in, even with REDIS_URL unset.
    const dataDir = tempDataDir();
    const nodes = `127.0.0.1:${deadNode},${sharedRedis.hostname}:${sharedRedis.port || 6379}`;
    const err = await ensureInfra(infraUrlsFromEnv({ REDIS_CLUSTER_NODES: nodes }), { dataDir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfraError);
    expect((err as Error).message).toContain(`Redis is not reachable at 127.0.0.1:${deadNode}, the first node of REDIS_CLUSTER_NODES=${nodes}`);
    expect((err as Error).message).toContain('unset REDIS_CLUSTER_NODES');
    expect(existsSync(dataDir) ? readdirSync(dataDir) : []).toEqual([]);
    expect(await answers(deadNode)).toBe(false);
  });

  it('takes a NATS seed list when one of its servers answers', async () => {
    const [dead] = (await freePorts(1)) as [number];
    const shared = infraUrlsFromEnv({});
    const handle = await ensureInfra(
      { ...shared, natsUrl: `nats://127.0.0.1:${dead},${shared.natsUrl}`, configured: { nats: `nats://127.0.0.1:${dead},${shared.natsUrl}` } },
      { dataDir: tempDataDir() },
    );
    handles.push(handle);
    expect(handle.started).toEqual([]);
  });

  it('does not try to start servers for a non-local host', async () => {
    const [port] = (await freePorts(1)) as [number];
    const urls: InfraUrls = {
      ...infraUrlsFromEnv({}),
      // TEST-NET-1 (RFC 5737): guaranteed not to be this machine.
      redisUrl: `redis://192.0.2.1:${port}`,
    };
    const err = await ensureInfra(urls, { dataDir: tempDataDir() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InfraError);
    expect((err as Error).message).toContain('192.0.2.1 is not a local address');
    expect((err as Error).message).not.toContain('MySQL');
  });
});
