import type { PoolConnection } from 'mysql2/promise';
import { bucketUnavailable } from '../errors.js';
import { BucketDb, isReadable, isWritable } from './buckets-db.js';
import { retrying, rowsOf, sleep, Statements, withConnection, type Shard } from './db.js';
import type { ShardMapView } from './shard-map.js';

/** How long a caller may wait for a bucket in a migration's fence before it is told to retry. */
const DEFAULT_FENCE_WAIT_MS = 30_000;
/** Pause between looks at a fenced bucket: short, since fences last milliseconds. */
const FENCE_POLL_MS = 10;

/** What a shard said about a bucket when asked to serve it. */
export type Refusal = 'fenced' | 'moved';

type Outcome<T> = { ok: true; value: T } | { ok: false; refusal: Refusal };

/**
 * Finds the shard for a bucket and keeps trying until the shard agrees it serves it: waits while
 * a migration has the bucket fenced, and follows the map when the shard says the bucket has moved.
 * This is why callers see a short wait during a cut-over, never an error.
 */
export class BucketRouter {
  constructor(
    readonly shards: ReadonlyMap<number, Shard>,
    readonly view: ShardMapView,
    readonly fenceWaitMs = DEFAULT_FENCE_WAIT_MS,
  ) {}

  shardFor(bucket: number): Shard {
    const id = this.view.shardOf(bucket);
    const shard = this.shards.get(id);
    if (!shard) throw new Error(`shard map names shard ${id}, which this replica is not configured with`);
    return shard;
  }

  /**
   * Called after a refusal: waits a moment for a fence, or for a newer map after a move. Throws
   * UNAVAILABLE once the caller has waited `fenceWaitMs` in total.
   */
  async afterRefusal(bucket: number, refusal: Refusal, mapVersion: number, startedAt: number): Promise<void> {
    const waited = Date.now() - startedAt;
    if (waited > this.fenceWaitMs) throw bucketUnavailable(bucket, waited);
    if (refusal === 'fenced') await sleep(FENCE_POLL_MS);
    else if (!(await this.view.newerThan(mapVersion, 1000))) await sleep(FENCE_POLL_MS);
  }

  /**
   * Runs `body` inside a transaction on the bucket's shard with its state row share-locked, so no
   * migration can fence or move the bucket until the body commits. The body must COMMIT.
   */
  async write<T>(bucket: number, body: (conn: PoolConnection, state: number) => Promise<T>): Promise<T> {
    const startedAt = Date.now();
    for (;;) {
      const version = this.view.current.version;
      const shard = this.shardFor(bucket);
      const out = await retrying(() =>
        withConnection(shard.pool, async (conn): Promise<Outcome<T>> => {
          const st = new Statements();
          st.add('START TRANSACTION');
          const i = st.add('SELECT state FROM bucket_state WHERE bucket = ? LOCK IN SHARE MODE', [bucket]);
          const state = Number(rowsOf<{ state: number }>((await st.run(conn))[i])[0]?.state ?? BucketDb.NOT_OWNED);
          if (!isWritable(state)) {
            await conn.query('ROLLBACK');
            return { ok: false, refusal: state === BucketDb.FENCED ? 'fenced' : 'moved' };
          }
          return { ok: true, value: await body(conn, state) };
        }),
      );
      if (out.ok) return out.value;
      await this.afterRefusal(bucket, out.refusal, version, startedAt);
    }
  }

  /**
   * Runs `body` in a read-only REPEATABLE READ snapshot on the bucket's shard, after checking in
   * the same snapshot that the shard holds the bucket's data, so a read never sees a half-moved
   * or already-cleaned bucket.
   */
  async read<T>(bucket: number, body: (conn: PoolConnection, shard: Shard) => Promise<T>): Promise<T> {
    const startedAt = Date.now();
    for (;;) {
      const version = this.view.current.version;
      const shard = this.shardFor(bucket);
      const out = await withConnection(shard.pool, async (conn): Promise<Outcome<T>> => {
        const st = new Statements();
        st.add('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
        st.add('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
        const i = st.add('SELECT state FROM bucket_state WHERE bucket = ?', [bucket]);
        const state = Number(rowsOf<{ state: number }>((await st.run(conn))[i])[0]?.state ?? BucketDb.NOT_OWNED);
        if (!isReadable(state)) {
          await conn.query('COMMIT');
          return { ok: false, refusal: 'moved' };
        }
        const value = await body(conn, shard);
        await conn.query('COMMIT');
        return { ok: true, value };
      });
      if (out.ok) return out.value;
      await this.afterRefusal(bucket, 'moved', version, startedAt);
    }
  }
}
