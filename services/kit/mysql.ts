import mysql, { type Pool, type PoolConnection, type PoolOptions } from 'mysql2/promise';

/**
 * Connection options from a mysql:// URL. The database is passed separately because each service
 * (and each test file) chooses its own, while the server URL is shared.
 */
export function mysqlOptions(url: string, database?: string): PoolOptions {
  const u = new URL(url);
  return {
    host: decodeURIComponent(u.hostname.replace(/^\[|\]$/g, '')),
    port: u.port ? Number(u.port) : 3306,
    user: decodeURIComponent(u.username || 'root'),
    password: decodeURIComponent(u.password),
    ...(database ? { database } : {}),
    charset: 'utf8mb4',
    timezone: 'Z',
    // 64-bit ids and amounts come back as strings: no value ever passes through a JS number.
    supportBigNumbers: true,
    bigNumberStrings: true,
    connectTimeout: 5000,
    enableKeepAlive: true,
  };
}

/** The database named in the URL's path, if any (mysql://host/dbname). */
export function databaseInUrl(url: string): string | undefined {
  const path = decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
  return path || undefined;
}

/**
 * A pool for one service database. mysql2 drops broken connections and opens new ones on demand,
 * so a MySQL restart costs the calls in flight (which fail UNAVAILABLE) and nothing after.
 * `extra` lets a service opt into driver options it needs (the Ledger batches statements with
 * `multipleStatements`); the defaults above stay as they are.
 */
export function createMysqlPool(url: string, database: string, connectionLimit = 10, extra: PoolOptions = {}): Pool {
  return mysql.createPool({
    ...mysqlOptions(url, database),
    connectionLimit,
    maxIdle: connectionLimit,
    idleTimeout: 60_000,
    waitForConnections: true,
    queueLimit: 0,
    ...extra,
  });
}

/** Backtick-quotes an identifier we generated or validated; refuses anything that needs escaping. */
export function quoteIdent(name: string): string {
  if (!/^[A-Za-z0-9_]{1,64}$/.test(name)) throw new Error(`unsafe MySQL identifier: ${JSON.stringify(name)}`);
  return `\`${name}\``;
}

/** Runs `fn` in a transaction on one pooled connection: commit on success, rollback on any failure. */
export async function withTransaction<T>(pool: Pool, fn: (conn: PoolConnection) => Promise<T>): Promise<T> {
  const conn = await pool.getConnection();
  try {
    await conn.beginTransaction();
    const out = await fn(conn);
    await conn.commit();
    return out;
  } catch (err) {
    await conn.rollback().catch(() => undefined);
    throw err;
  } finally {
    conn.release();
  }
}
