import type { Pool, RowDataPacket } from 'mysql2/promise';
import { createBatchingPool } from '../../../kit/mysql.js';

export { affected, isDuplicate, isRetryable, retrying, rowsOf, sleep, Statements, withConnection } from '../../../kit/mysql.js';

/** One shard: a MySQL database, the server it lives on, and this replica's pool for it. */
export interface Shard {
  id: number;
  database: string;
  /** host:port of its server, for logs and messages (the URL may carry a password). */
  server: string;
  pool: Pool;
}

/** host:port of a mysql:// URL. */
export function serverOf(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || '3306'}`;
}

/**
 * A pool for a shard database: the kit's batching pool (a group of transfers is settled in two round
 * trips and one commit, see transfer-engine.ts; READ COMMITTED), with DATE columns kept as 'YYYY-MM-DD' strings.
 * A lock wait longer than 10 s means something is stuck (shards on separate servers can even
 * deadlock without InnoDB seeing it): the statement fails, and the transaction is retried.
 */
export function createShardPool(url: string, database: string, size: number): Pool {
  return createBatchingPool(url, database, size, { dateStrings: ['DATE'] }, 'SET SESSION innodb_lock_wait_timeout = 10');
}

export type Row = RowDataPacket & Record<string, unknown>;

/** A CHECK constraint failed (MariaDB 4025, MySQL 3819): here, a balance past its limits. */
export const isCheckViolation = (err: unknown) => {
  const e = err as { code?: string; errno?: number };
  return e.errno === 4025 || e.errno === 3819 || e.code === 'ER_CONSTRAINT_FAILED' || e.code === 'ER_CHECK_CONSTRAINT_VIOLATED';
};

/** Parses a DECIMAL/BIGINT column (a string with bigNumberStrings) or a SUM that may be NULL. */
export const big = (v: unknown): bigint => (v === null || v === undefined ? 0n : BigInt(v as string));

/** A Date for a DATETIME column value. */
export const dateOf = (v: unknown): Date => (v instanceof Date ? v : new Date(`${String(v).replace(' ', 'T')}Z`));
