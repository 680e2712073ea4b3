import type { Statements } from './db.js';

/**
 * bucket_state.state values: who serves a bucket on one shard. The shard map routes; these rows
 * decide. A writer share-locks the rows of the buckets it touches for its whole transaction and
 * writes only if they are OWNED or MIGRATING, so a migration changing a state (an exclusive lock)
 * waits for in-flight writers and holds new ones back until it commits.
 */
export const BucketDb = { OWNED: 1, MIGRATING: 2, FENCED: 3, NOT_OWNED: 4 } as const;

export const isWritable = (state: number | undefined) => state === BucketDb.OWNED || state === BucketDb.MIGRATING;
/** Readable: the shard holds the bucket's complete data (a fenced bucket is complete, only frozen). */
export const isReadable = (state: number | undefined) => state === BucketDb.OWNED || state === BucketDb.MIGRATING || state === BucketDb.FENCED;

/** Adds the share-locked read of some buckets' states; parse the result with `bucketStates`. */
export function lockBuckets(st: Statements, buckets: Iterable<number>): number {
  return st.add('SELECT bucket, state FROM bucket_state WHERE bucket IN (?) LOCK IN SHARE MODE', [[...new Set(buckets)]]);
}

export function bucketStates(result: unknown): Map<number, number> {
  return new Map((result as Array<{ bucket: number; state: number }>).map((r) => [Number(r.bucket), Number(r.state)]));
}

/**
 * Records the keys of rows written in buckets that are migrating away, in the writing
 * transaction, so the migration replays exactly what changed after it copied. Keys are JSON arrays
 * of the primary-key values as strings (dates as ISO instants).
 */
export class ChangeLog {
  private readonly rows: unknown[][] = [];

  constructor(private readonly states: Map<number, number>) {}

  note(bucket: number, table: string, key: unknown[]): void {
    if (this.states.get(bucket) !== BucketDb.MIGRATING) return;
    this.rows.push([bucket, table, encodeKey(key)]);
  }

  addTo(st: Statements): void {
    if (this.rows.length > 0) st.add('INSERT INTO bucket_changes (bucket, table_name, row_key) VALUES ?', [this.rows]);
  }
}

function encodeKey(key: unknown[]): string {
  return JSON.stringify(key.map((v) => (v instanceof Date ? v.toISOString() : String(v))));
}
