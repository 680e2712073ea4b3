import type { Logger } from '../../../kit/logger.js';
import { BUCKET_COUNT } from '../buckets.js';
import type { ShardMapData } from '../ports.js';
import { BucketDb } from './buckets-db.js';
import type { Row, Shard } from './db.js';
import { ledgerIdFor, readIdentity, ShardIdentityError, verifyIdentities, type ShardIdentity } from './identity.js';
import { defaultMap, type ShardMapStore } from './shard-map.js';

/**
 * First-start work on the shard databases and the shard map, before a replica serves: kept here
 * with the rest of the SQL so that service.ts only wires.
 */

/**
 * The stored map, or on the very first start one built from the shard databases (if they hold
 * bucket states, the map was lost and the databases are the truth) or dealt round-robin. A shard
 * configured beyond the map's joins it empty. Then every configured database must be the shard the
 * map records (identity.ts): a replica pointed at other servers refuses to start here, before it
 * writes anything to them but its identity.
 */
export async function loadOrCreateMap(store: ShardMapStore, shards: Map<number, Shard>, log: Logger): Promise<ShardMapData> {
  const identities = new Map<number, ShardIdentity>();
  for (const shard of shards.values()) {
    const id = await readIdentity(shard);
    if (id) identities.set(shard.id, id);
  }
  const described = [...shards.values()].map((s) => ({ id: s.id, name: s.database }));
  let map = (await store.load())?.map;
  if (!map) {
    const fresh: ShardMapData = {
      ...defaultMap(described.map((d) => ({ ...d, ...(identities.get(d.id) ? { uid: identities.get(d.id)?.uid } : {}) })), new Date()),
      ledgerId: ledgerIdFor(identities, shards),
    };
    const owners = new Map<number, number>();
    for (const shard of shards.values()) {
      const [rows] = await shard.pool.query<Row[]>('SELECT bucket FROM bucket_state WHERE state IN (1, 2, 3)');
      for (const r of rows) owners.set(Number(r.bucket), shard.id);
    }
    if (owners.size > 0) {
      log.warn({ buckets: owners.size }, 'shard map missing from NATS KV; rebuilding it from the shard databases');
      for (const [bucket, shard] of owners) fresh.buckets[bucket] = { shard, state: 'serving', migrationId: '' };
    }
    map = await store.createIfAbsent(fresh);
  }
  const known = map.shards;
  for (const s of known) {
    if (!shards.has(s.id)) {
      throw new ShardIdentityError([`the shard map has shard ${s.id} (${s.name}) but this replica configures only ${shards.size} shards: give it every shard's server (LEDGER_SHARD_URLS, or LEDGER_SHARDS)`]);
    }
  }
  if (described.some((d) => !known.some((s) => s.id === d.id))) {
    map = await store.update((m) => ({ ...m, shards: described.map((d) => m.shards.find((s) => s.id === d.id) ?? d) }));
  }
  return verifyIdentities(store, map, shards, identities, log);
}

/** Gives every shard its 256 bucket_state rows on first start, from the map; never changes existing rows. */
export async function ensureBucketRows(shards: Map<number, Shard>, map: ShardMapData): Promise<void> {
  const now = new Date();
  for (const shard of shards.values()) {
    const rows = Array.from({ length: BUCKET_COUNT }, (_, b) => [b, map.buckets[b]?.shard === shard.id ? BucketDb.OWNED : BucketDb.NOT_OWNED, '', now]);
    await shard.pool.query('INSERT IGNORE INTO bucket_state (bucket, state, migration_id, updated_at) VALUES ?', [rows]);
  }
}
