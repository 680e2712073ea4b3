import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import { Redis } from 'ioredis';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { infraUrlsFromEnv } from './infra.js';
import { mysqlOptions, quoteIdent } from '../kit/mysql.js';
import { natsServers } from '../kit/nats.js';

/**
 * An isolated namespace on shared servers: its own database, Redis key prefix and NATS subject
 * prefix. Each test file and each benchmark run takes one, so they can run beside each other (and
 * beside a developer's mesh) and leave nothing behind.
 */
export interface Isolation {
  id: string;
  urls: ReturnType<typeof infraUrlsFromEnv>;
  database: string;
  redisPrefix: string;
  natsPrefix: string;
  /** Environment for a service process using this isolation. */
  env: Record<string, string>;
  /**
   * Drops the database (and any database named after it plus `_…`, as a sharded service's),
   * deletes the Redis keys and the JetStream streams (KV buckets too) named after the NATS prefix;
   * returns how many Redis keys were deleted.
   */
  cleanup(): Promise<number>;
}

export function isolate(name: string, databasePrefix = 'lmt'): Isolation {
  const id = `${name.replace(/[^a-z0-9]/gi, '').toLowerCase().slice(0, 20)}_${randomBytes(4).toString('hex')}`;
  const urls = infraUrlsFromEnv();
  const database = `${databasePrefix}_${id}`;
  const redisPrefix = `t:${id}:`;
  const natsPrefix = `t_${id}`;
  return {
    id,
    urls,
    database,
    redisPrefix,
    natsPrefix,
    env: {
      MYSQL_URL: urls.mysqlUrl,
      REDIS_URL: urls.redisUrl,
      NATS_URL: urls.natsUrl,
      MYSQL_DATABASE: database,
      REDIS_PREFIX: redisPrefix,
      NATS_PREFIX: natsPrefix,
    },
    async cleanup() {
      const conn = await mysql.createConnection(mysqlOptions(urls.mysqlUrl));
      try {
        await conn.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)}`);
        const [rows] = await conn.query('SELECT schema_name AS name FROM information_schema.schemata WHERE schema_name LIKE ?', [`${database.replace(/_/g, '\\_')}\\_%`]);
        for (const { name } of rows as Array<{ name: string }>) await conn.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)}`);
      } finally {
        await conn.end();
      }
      const redis = new Redis(urls.redisUrl);
      let deleted = 0;
      try {
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${redisPrefix}*`, 'COUNT', 500);
          if (keys.length > 0) deleted += await redis.del(...keys);
          cursor = next;
        } while (cursor !== '0');
      } finally {
        redis.disconnect();
      }
      await deleteStreams(urls.natsUrl, natsPrefix);
      return deleted;
    },
  };
}

/**
 * Streams a service creates under a NATS prefix are named `<prefix>_<NAME>` (dots become
 * underscores); a KV bucket `<prefix>_<name>` is the stream `KV_<prefix>_<name>`.
 */
async function deleteStreams(natsUrl: string, natsPrefix: string): Promise<void> {
  const nc = await connect({ servers: natsServers(natsUrl), timeout: 5000 });
  try {
    const jsm = await jetstreamManager(nc);
    const mine = `${natsPrefix.replace(/[^A-Za-z0-9_-]/g, '_')}_`;
    for await (const name of jsm.streams.names()) {
      if (name.startsWith(mine) || name.startsWith(`KV_${mine}`)) await jsm.streams.delete(name);
    }
  } finally {
    await nc.close();
  }
}
