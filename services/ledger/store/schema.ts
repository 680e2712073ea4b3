import type { FieldPacket } from 'mysql2/promise';

/** How a primary-key column's value is carried in a change-log key and bound back into SQL. */
type KeyKind = 'int' | 'bigint' | 'datetime' | 'date' | 'string';

/** A table whose rows belong to a bucket (the first primary-key column). */
export interface BucketTable {
  name: string;
  key: Array<[column: string, kind: KeyKind]>;
}

/**
 * Every bucket-scoped table, in the order a migration copies them. A new bucket-scoped table
 * must be listed here, or migrations would leave its rows behind.
 */
export const BUCKET_TABLES: readonly BucketTable[] = [
  { name: 'accounts', key: [['bucket', 'int'], ['owner_id', 'bigint'], ['asset', 'int']] },
  { name: 'transfers', key: [['bucket', 'int'], ['home_owner_id', 'bigint'], ['transfer_id', 'string']] },
  {
    name: 'entries',
    key: [['bucket', 'int'], ['owner_id', 'bigint'], ['asset', 'int'], ['created_at', 'datetime'], ['home_owner_id', 'bigint'], ['transfer_id', 'string'], ['side', 'int']],
  },
  { name: 'outbox', key: [['bucket', 'int'], ['home_owner_id', 'bigint'], ['transfer_id', 'string']] },
  { name: 'daily_income', key: [['bucket', 'int'], ['streamer_id', 'bigint'], ['day', 'date']] },
  { name: 'topup_refs', key: [['bucket', 'int'], ['payment_reference', 'string']] },
];

export function tableSpec(name: string): BucketTable {
  const t = BUCKET_TABLES.find((x) => x.name === name);
  if (!t) throw new Error(`not a bucket table: ${name}`);
  return t;
}

/** Turns a change-log key (strings) back into values MySQL compares exactly. */
export function decodeKey(table: BucketTable, raw: string): unknown[] {
  const values = JSON.parse(raw) as string[];
  return table.key.map(([, kind], i) => {
    const v = values[i] ?? '';
    if (kind === 'int') return Number(v);
    if (kind === 'bigint') return BigInt(v);
    if (kind === 'datetime') return new Date(v);
    return v;
  });
}

/** The primary-key values of a row as read with SELECT *. */
export function keyOf(table: BucketTable, row: Record<string, unknown>): unknown[] {
  return table.key.map(([col]) => row[col]);
}

/** `(a, b, …) IN ((?, ?, …), …)` over the full primary key, for `count` keys: point lookups in one range scan. */
export function keyIn(table: BucketTable, count: number, alias = ''): string {
  const one = `(${table.key.map(() => '?').join(', ')})`;
  return `(${table.key.map(([c]) => `${alias}${c}`).join(', ')}) IN (${Array.from({ length: count }, () => one).join(', ')})`;
}

/** keyIn with its parameters: matches rows by full primary key. */
export function keyMatch(table: BucketTable, keys: unknown[][]): { sql: string; params: unknown[] } {
  return { sql: keyIn(table, keys.length), params: keys.flat() };
}

/** Column type 8 is BIGINT: read as a string, written back as bigint so nothing is compared as a double. */
const LONGLONG = 8;

/** Rows as read, with BIGINT columns turned into bigint for writing them somewhere else. */
export function bindable(rows: Array<Record<string, unknown>>, fields: FieldPacket[]): { columns: string[]; values: unknown[][] } {
  const columns = fields.map((f) => f.name);
  const isBig = fields.map((f) => f.columnType === LONGLONG);
  return {
    columns,
    values: rows.map((r) => columns.map((c, i) => (isBig[i] && r[c] !== null && r[c] !== undefined ? BigInt(r[c] as string) : r[c]))),
  };
}

/** INSERT … ON DUPLICATE KEY UPDATE for whole rows: makes the target's copy equal to the source's. */
export function upsertSql(table: BucketTable, columns: string[]): string {
  const keyCols = new Set(table.key.map(([c]) => c));
  const updates = columns.filter((c) => !keyCols.has(c)).map((c) => `${c} = VALUES(${c})`);
  // A table that is all key (the outbox) has nothing to update: the row being there is the copy.
  if (updates.length === 0) return `INSERT IGNORE INTO ${table.name} (${columns.join(', ')}) VALUES ?`;
  return `INSERT INTO ${table.name} (${columns.join(', ')}) VALUES ? ON DUPLICATE KEY UPDATE ${updates.join(', ')}`;
}
