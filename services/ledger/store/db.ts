import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import { createMysqlPool } from '../../kit/mysql.js';

/** One shard: a MySQL database and this replica's pool for it. */
export interface Shard {
  id: number;
  database: string;
  pool: Pool;
}

/**
 * A pool for a shard database. Statements are sent several to a round trip (a batch of transfers
 * costs three round trips, not three per transfer), DATE columns stay 'YYYY-MM-DD' strings, and
 * sessions run READ COMMITTED: every check that matters is a locking read or a conditional
 * UPDATE, and without REPEATABLE READ's gap locks concurrent batches do not deadlock on inserts.
 */
export function createShardPool(url: string, database: string, size: number): Pool {
  const pool = createMysqlPool(url, database, size, { multipleStatements: true, dateStrings: ['DATE'] });
  pool.pool.on('connection', (conn) => {
    // A lock wait longer than this means something is stuck (shards on separate servers can even
    // deadlock without InnoDB seeing it): fail the statement, and the transaction is retried.
    conn.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; SET SESSION innodb_lock_wait_timeout = 10');
  });
  return pool;
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

export type Row = RowDataPacket & Record<string, unknown>;

/** Deadlocks and lock-wait timeouts: the transaction was rolled back and can simply be run again. */
export function isRetryable(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ER_LOCK_DEADLOCK' || code === 'ER_LOCK_WAIT_TIMEOUT';
}

export const isDuplicate = (err: unknown) => (err as { code?: string }).code === 'ER_DUP_ENTRY';

/** A CHECK constraint failed (MariaDB 4025, MySQL 3819): here, a balance past its limits. */
export const isCheckViolation = (err: unknown) => {
  const e = err as { code?: string; errno?: number };
  return e.errno === 4025 || e.errno === 3819 || e.code === 'ER_CONSTRAINT_FAILED' || e.code === 'ER_CHECK_CONSTRAINT_VIOLATED';
};

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

/** Parses a DECIMAL/BIGINT column (a string with bigNumberStrings) or a SUM that may be NULL. */
export const big = (v: unknown): bigint => (v === null || v === undefined ? 0n : BigInt(v as string));

/** A Date for a DATETIME column value. */
export const dateOf = (v: unknown): Date => (v instanceof Date ? v : new Date(`${String(v).replace(' ', 'T')}Z`));
