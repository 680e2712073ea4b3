import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import { ensureKv } from '../../../kit/streams.js';
import type { NatsConnection } from '../../../kit/nats.js';
import type { Logger } from '../../../kit/logger.js';
import { BUCKET_COUNT } from '../buckets.js';
import type { ShardMapData } from '../ports.js';

export type { BucketRouteState, ShardMapData } from '../ports.js';

/** The first map: buckets dealt round-robin over the shards. */
export function defaultMap(shards: Array<{ id: number; name: string }>, now: Date): ShardMapData {
  return {
    version: 1,
    bucketCount: BUCKET_COUNT,
    shards,
    buckets: Array.from({ length: BUCKET_COUNT }, (_, b) => ({ shard: shards[b % shards.length]?.id ?? 0, state: 'serving' as const, migrationId: '' })),
    updatedAt: now.toISOString(),
  };
}

/** Thrown by a map update that lost a compare-and-set race too many times. */
class MapConflictError extends Error {}

/** A NATS KV name may hold only letters, digits, - and _. */
export const kvName = (prefix: string, database: string) => `${prefix ? `${prefix}_` : ''}ledger_${database}`.replace(/[^A-Za-z0-9_-]/g, '_');

const MAP_KEY = 'map';
const encoder = new TextEncoder();

/**
 * The bucket map's durable home: one key in a NATS KV bucket (JetStream, file storage, kept
 * history), plus the migration records beside it. Every replica watches the key, so a cut-over
 * reaches all of them in milliseconds; changes are compare-and-set on the key's revision, so two
 * writers can never interleave. The map is the routing table; who may write a bucket is decided
 * by each shard's bucket_state table, so a replica following a stale map is turned away by the
 * database, never allowed to write in the wrong place.
 */
export class ShardMapStore {
  private constructor(
    readonly kv: KV,
    readonly name: string,
  ) {}

  static async open(nc: NatsConnection, name: string): Promise<ShardMapStore> {
    // JetStream file storage (the default): the map survives a NATS restart; NATS_REPLICAS copies.
    const kv = await ensureKv(nc, name, { history: 10 });
    return new ShardMapStore(kv, name);
  }

  async load(): Promise<{ map: ShardMapData; revision: number } | undefined> {
    const e = await this.kv.get(MAP_KEY);
    if (!e || e.operation !== 'PUT') return undefined;
    return { map: e.json<ShardMapData>(), revision: e.revision };
  }

  /** Stores the first map unless another replica got there first; returns whichever map won. */
  async createIfAbsent(map: ShardMapData): Promise<ShardMapData> {
    try {
      await this.kv.create(MAP_KEY, encoder.encode(JSON.stringify(map)));
      return map;
    } catch {
      const current = await this.load();
      if (!current) throw new Error('shard map: create failed but nothing is stored');
      return current.map;
    }
  }

  /** Applies `change` to the current map with compare-and-set, retrying on a concurrent write. */
  async update(change: (map: ShardMapData) => ShardMapData): Promise<ShardMapData> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const current = await this.load();
      if (!current) throw new Error('shard map missing from KV');
      const next = { ...change(structuredClone(current.map)), version: current.map.version + 1, updatedAt: new Date().toISOString() };
      try {
        await this.kv.update(MAP_KEY, encoder.encode(JSON.stringify(next)), current.revision);
        return next;
      } catch {
        await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
      }
    }
    throw new MapConflictError('shard map: too many concurrent updates');
  }

  /** Calls `onMap` with the stored map and every later change until `stop` is called. */
  async follow(onMap: (map: ShardMapData) => void, log: Logger): Promise<{ stop(): void }> {
    const watch = await this.kv.watch({ key: MAP_KEY });
    void (async () => {
      try {
        for await (const e of watch) {
          if (e.operation !== 'PUT') continue;
          try {
            onMap(e.json<ShardMapData>());
          } catch (err) {
            log.error({ err }, 'shard map: unreadable update ignored');
          }
        }
      } catch (err) {
        log.warn({ err }, 'shard map: watch ended');
      }
    })();
    return { stop: () => watch.stop() };
  }

  async putJson(key: string, value: unknown): Promise<void> {
    await this.kv.put(key, encoder.encode(JSON.stringify(value)));
  }

  async getJson<T>(key: string): Promise<T | undefined> {
    const e = await this.kv.get(key);
    return e && e.operation === 'PUT' ? e.json<T>() : undefined;
  }

  /** Writes the key only if it does not exist; false if it did. */
  async claim(key: string, value: unknown): Promise<boolean> {
    try {
      await this.kv.create(key, encoder.encode(JSON.stringify(value)));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Calls `onValue` with every key matching `filter` as stored now and on each later change
   * (undefined once deleted), until `stop`. One watch (one ordered consumer) for the life of the
   * process, where listing the keys would create a consumer on every call.
   */
  async watchJson<T>(filter: string, onValue: (key: string, value: T | undefined) => void, log: Logger): Promise<{ stop(): void }> {
    const watch = await this.kv.watch({ key: filter });
    void (async () => {
      try {
        for await (const e of watch) {
          try {
            onValue(e.key, e.operation === 'PUT' ? e.json<T>() : undefined);
          } catch (err) {
            log.error({ err, key: e.key }, 'shard map: unreadable entry ignored');
          }
        }
      } catch (err) {
        log.warn({ err, filter }, 'shard map: watch ended');
      }
    })();
    return { stop: () => watch.stop() };
  }

  async keys(filter: string): Promise<string[]> {
    const out: string[] = [];
    for await (const k of await this.kv.keys(filter)) out.push(k);
    return out;
  }
}

/** A KV-safe key for an arbitrary client string (request ids may hold characters KV keys may not). */
export const hashedKey = (prefix: string, raw: string) => `${prefix}.${createHash('sha256').update(raw).digest('hex').slice(0, 40)}`;

/**
 * This replica's view of the map: the newest version seen, and a way to wait for a newer one
 * when a shard says a bucket has moved.
 */
export class ShardMapView {
  private waiters: Array<() => void> = [];

  constructor(
    private map: ShardMapData,
    private readonly store: ShardMapStore,
  ) {}

  get current(): ShardMapData {
    return this.map;
  }

  shardOf(bucket: number): number {
    const b = this.map.buckets[bucket];
    if (!b) throw new Error(`bucket ${bucket} out of range`);
    return b.shard;
  }

  /** Takes a map if it is newer than the one held. */
  offer(map: ShardMapData): void {
    if (map.version <= this.map.version) return;
    this.map = map;
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) w();
  }

  /**
   * Waits until the held map is newer than `version`, reading the KV directly if the watch is slow;
   * returns false if nothing newer arrived within `ms`.
   */
  async newerThan(version: number, ms: number): Promise<boolean> {
    if (this.map.version > version) return true;
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const loaded = await this.store.load();
      if (loaded) this.offer(loaded.map);
      if (this.map.version > version) return true;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(100, Math.max(1, deadline - Date.now())));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      if (this.map.version > version) return true;
    }
    return false;
  }
}
