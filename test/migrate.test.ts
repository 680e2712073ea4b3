import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, describe, expect, it } from 'vitest';
import { migrate, readMigrations } from '../kit/migrate.js';
import { mysqlOptions } from '../kit/mysql.js';
import { fromRoot } from '../kit/paths.js';
import { isolate } from '../scripts/isolation.js';

const iso = isolate('migrate');
const dirs: string[] = [];
afterAll(async () => {
  await iso.cleanup();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function scratchDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'lm-migrations-'));
  dirs.push(dir);
  for (const [name, sql] of Object.entries(files)) writeFileSync(join(dir, name), sql);
  return dir;
}

async function tables(database: string): Promise<string[]> {
  const conn = await mysql.createConnection(mysqlOptions(iso.urls.mysqlUrl, database));
  try {
    const [rows] = await conn.query('SHOW TABLES');
    return (rows as Array<Record<string, string>>).map((r) => Object.values(r)[0] ?? '').sort();
  } finally {
    await conn.end();
  }
}

describe('migration runner', () => {
  it("applies the Room service's migrations once; a second run changes nothing", async () => {
    const dir = fromRoot('services', 'room', 'migrations');
    const lines: string[] = [];
    const first = await migrate({ url: iso.urls.mysqlUrl, database: iso.database, dir, log: (l) => lines.push(l) });
    expect(first.applied).toEqual(readMigrations(dir).map((m) => m.file));
    expect(lines.some((l) => l.includes('[1/'))).toBe(true);
    expect(await tables(iso.database)).toEqual(['rooms', 'schema_migrations']);

    const second = await migrate({ url: iso.urls.mysqlUrl, database: iso.database, dir });
    expect(second.applied).toEqual([]);
    expect(second.alreadyApplied).toBe(first.applied.length);
  });

  it('concurrent runs (replicas starting together) apply each migration exactly once', async () => {
    const database = `${iso.database}_c`;
    const dir = scratchDir({
      '0001_a.sql': 'CREATE TABLE a (id INT PRIMARY KEY);',
      '0002_b.sql': 'CREATE TABLE b (id INT PRIMARY KEY); INSERT INTO a VALUES (1);',
    });
    try {
      const results = await Promise.all([1, 2, 3].map(() => migrate({ url: iso.urls.mysqlUrl, database, dir })));
      expect(results.flatMap((r) => r.applied).sort()).toEqual(['0001_a.sql', '0002_b.sql']);
      expect(await tables(database)).toEqual(['a', 'b', 'schema_migrations']);
    } finally {
      const conn = await mysql.createConnection(mysqlOptions(iso.urls.mysqlUrl));
      await conn.query(`DROP DATABASE IF EXISTS \`${database}\``);
      await conn.end();
    }
  });

  it('refuses to run when an applied migration was edited afterwards', async () => {
    const database = `${iso.database}_e`;
    const dir = scratchDir({ '0001_a.sql': 'CREATE TABLE a (id INT PRIMARY KEY);' });
    try {
      await migrate({ url: iso.urls.mysqlUrl, database, dir });
      writeFileSync(join(dir, '0001_a.sql'), 'CREATE TABLE a (id BIGINT PRIMARY KEY);');
      await expect(migrate({ url: iso.urls.mysqlUrl, database, dir })).rejects.toThrow(/0001_a\.sql changed after it was applied/);
    } finally {
      const conn = await mysql.createConnection(mysqlOptions(iso.urls.mysqlUrl));
      await conn.query(`DROP DATABASE IF EXISTS \`${database}\``);
      await conn.end();
    }
  });

  it('rejects badly named files and reports which SQL failed', async () => {
    expect(() => readMigrations(scratchDir({ 'init.sql': 'SELECT 1;' }))).toThrow(/must be named NNNN_snake_name\.sql/);
    const database = `${iso.database}_f`;
    const dir = scratchDir({ '0001_bad.sql': 'CREATE TABLE (;' });
    try {
      await expect(migrate({ url: iso.urls.mysqlUrl, database, dir })).rejects.toThrow(/migration 0001_bad\.sql failed/);
    } finally {
      const conn = await mysql.createConnection(mysqlOptions(iso.urls.mysqlUrl));
      await conn.query(`DROP DATABASE IF EXISTS \`${database}\``);
      await conn.end();
    }
  });
});
