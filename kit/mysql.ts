import mysql, { type Pool, type PoolConnection, type PoolOptions } from 'mysql2/promise';
import { tracingOn } from './tracing.js';
import { tracePool } from './tracing-mysql.js';

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
  const pool = mysql.createPool({
    ...mysqlOptions(url, database),
    connectionLimit,
    maxIdle: connectionLimit,
    idleTimeout: 60_000,
    waitForConnections: true,
    queueLimit: 0,
    ...extra,
  });
  return tracingOn() ? tracePool(pool, database) : pool;
}

/**
 * A pool for the write paths that batch: several statements to a round trip
 * (`multipleStatements`; every value still goes through a placeholder, never into the SQL), and
 * sessions at READ COMMITTED, where every check that matters is a locking read or a conditional
 * UPDATE and concurrent batches take no gap locks to deadlock on. `sessionSql` runs on every new
 * connection after the isolation level.
 */
export function createBatchingPool(url: string, database: string, connectionLimit: number, extra: PoolOptions = {}, sessionSql = ''): Pool {
  const pool = createMysqlPool(url, database, connectionLimit, { multipleStatements: true, ...extra });
  pool.pool.on('connection', (conn) => {
    conn.query(`SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED${sessionSql ? `; ${sessionSql}` : ''}`);
  });
  return pool;
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

/**
 * Several statements sent in one round trip. Placeholders are filled in by the driver (escaped,
 * never concatenated), and amounts and ids go in as bigint so MySQL compares them as integers,
 * not as doubles.
 */
export class Statements {
  private readonly sql: string[] = [];
  private readonly params: unknown[] = [];

  /** Adds a statement; returns its index in the results. */
  add(sql: string, params: unknown[] = []): number {
    this.sql.push(sql);
    this.params.push(...params);
    return this.sql.length - 1;
  }

  get size(): number {
    return this.sql.length;
  }

  async run(conn: PoolConnection | Pool): Promise<unknown[]> {
    if (this.sql.length === 0) return [];
    const [res] = await conn.query(this.sql.join(';\n'), this.params);
    return this.sql.length === 1 ? [res] : (res as unknown[]);
  }
}

export const rowsOf = <T>(result: unknown): T[] => result as T[];
export const affected = (result: unknown): number => (result as { affectedRows: number }).affectedRows;

/** Deadlocks and lock-wait timeouts: the transaction was rolled back and can simply be run again. */
export function isRetryable(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ER_LOCK_DEADLOCK' || code === 'ER_LOCK_WAIT_TIMEOUT';
}

export const isDuplicate = (err: unknown) => (err as { code?: string }).code === 'ER_DUP_ENTRY';

/**
 * Runs `fn` on a pooled connection. If it throws, the open transaction is rolled back; if even
 * that fails the connection is destroyed rather than returned to the pool half-way through a
 * transaction.
 */
export async function withConnection<T>(pool: Pool, fn: (conn: PoolConnection) => Promise<T>): Promise<T> {
  const conn = await pool.getConnection();
  try {
    const out = await fn(conn);
    conn.release();
    return out;
  } catch (err) {
    try {
      await conn.query('ROLLBACK');
      conn.release();
    } catch {
      conn.destroy();
    }
    throw err;
  }
}

/** Runs a transaction body, retrying on deadlock or lock-wait timeout with a short jittered pause. */
export async function retrying<T>(fn: () => Promise<T>, attempts = 8): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (!isRetryable(err) || i >= attempts) throw err;
      await sleep(5 * i + Math.random() * 10 * i);
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
