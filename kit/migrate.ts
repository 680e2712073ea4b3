import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { mysqlOptions, quoteIdent } from './mysql.js';

export interface Migration {
  version: number;
  name: string;
  file: string;
  sql: string;
  checksum: string;
}

const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/;

/** Reads `NNNN_name.sql` files in version order; rejects gaps in naming and duplicate versions early. */
export function readMigrations(dir: string): Migration[] {
  const migrations: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith('.sql')) continue;
    const m = FILE_PATTERN.exec(file);
    if (!m) throw new Error(`migration file ${file} in ${dir} must be named NNNN_snake_name.sql`);
    const sql = readFileSync(join(dir, file), 'utf8');
    const version = Number(m[1]);
    if (migrations.some((x) => x.version === version)) throw new Error(`two migrations in ${dir} share version ${version}`);
    migrations.push({ version, name: m[2] ?? '', file, sql, checksum: createHash('sha256').update(sql).digest('hex') });
  }
  return migrations;
}

export interface MigrateResult {
  applied: string[];
  alreadyApplied: number;
}

/**
 * Brings a database up to the newest migration. Safe to run from every replica at start-up:
 * a named lock (GET_LOCK, on both MySQL 8 and MariaDB) lets one replica migrate while the others
 * wait, then find nothing left to do. An applied file that was edited afterwards stops the run,
 * because silently diverging schemas are worse than a failed deploy.
 *
 * MySQL DDL commits implicitly, so a file is not atomic: keep one logical change per file.
 */
export async function migrate(opts: { url: string; database: string; dir: string; log?: (line: string) => void }): Promise<MigrateResult> {
  const log = opts.log ?? (() => {});
  const db = quoteIdent(opts.database);
  const migrations = readMigrations(opts.dir);
  const conn = await mysql.createConnection({ ...mysqlOptions(opts.url), multipleStatements: true });
  const lockName = `livemesh_migrate_${opts.database}`;
  try {
    await conn.query(`CREATE DATABASE IF NOT EXISTS ${db} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
    await conn.query(`USE ${db}`);
    const [lockRows] = await conn.query('SELECT GET_LOCK(?, 60) AS ok', [lockName]);
    if ((lockRows as Array<{ ok: number | null }>)[0]?.ok !== 1) throw new Error(`could not take the migration lock ${lockName} within 60 s`);
    try {
      await conn.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version INT UNSIGNED NOT NULL PRIMARY KEY,
        name VARCHAR(200) NOT NULL,
        checksum CHAR(64) NOT NULL,
        applied_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
      ) ENGINE=InnoDB`);
      const [rows] = await conn.query('SELECT version, checksum FROM schema_migrations');
      const done = new Map((rows as Array<{ version: number; checksum: string }>).map((r) => [Number(r.version), r.checksum]));
      for (const m of migrations) {
        const sum = done.get(m.version);
        if (sum !== undefined && sum !== m.checksum) {
          throw new Error(`migration ${m.file} changed after it was applied to ${opts.database}; add a new migration instead of editing it`);
        }
      }
      const pending = migrations.filter((m) => !done.has(m.version));
      const applied: string[] = [];
      for (const [i, m] of pending.entries()) {
        const started = Date.now();
        log(`migrate ${opts.database}: [${i + 1}/${pending.length}] ${m.file}`);
        try {
          await conn.query(m.sql);
        } catch (err) {
          throw new Error(`migration ${m.file} failed on ${opts.database}: ${(err as Error).message}`, { cause: err });
        }
        await conn.query('INSERT INTO schema_migrations (version, name, checksum) VALUES (?, ?, ?)', [m.version, m.name, m.checksum]);
        log(`migrate ${opts.database}: [${i + 1}/${pending.length}] ${m.file} ok (${Date.now() - started} ms)`);
        applied.push(m.file);
      }
      if (pending.length === 0) log(`migrate ${opts.database}: up to date (${migrations.length} migrations)`);
      return { applied, alreadyApplied: migrations.length - pending.length };
    } finally {
      await conn.query('SELECT RELEASE_LOCK(?)', [lockName]);
    }
  } finally {
    await conn.end();
  }
}
