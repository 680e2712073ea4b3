import { Cluster, Redis, type ChainableCommander } from 'ioredis';
import type { Logger } from './logger.js';
import { tracingOn } from './tracing.js';
import { traceRedis } from './tracing-redis.js';

/**
 * A single Redis server or a Redis Cluster: both speak the same commands, scripts, pipelines and
 * transactions, so stores take either. On a Cluster every script, pipeline, MULTI and multi-key
 * command must stay within one hash slot; the stores tag the keys that travel together with their
 * owner (`{r:<room>}`, `{c:<room>}`, `{rk:<room>}`, …) and split what spans owners with the helpers
 * below.
 */
export type RedisClient = Redis | Cluster;

export interface RedisSettings {
  REDIS_URL: string;
  /** Seed nodes (host:port) of a Redis Cluster; empty means the single server at REDIS_URL. */
  REDIS_CLUSTER_NODES: string[];
  /** Must not contain `{` or `}`: the hash tag in each key, not the prefix, decides its slot. */
  REDIS_PREFIX: string;
}

/** Exponential, capped: reconnects forever without hammering a server that is restarting. */
const backoff = (attempt: number) => Math.min(50 * 2 ** attempt, 2000);

/**
 * A Redis client that reconnects forever but fails individual commands fast while disconnected,
 * so a Redis blip turns into quick UNAVAILABLE answers rather than requests hanging until their
 * deadline. Every key is prefixed, which is how tests and environments share one server.
 *
 * With REDIS_CLUSTER_NODES set it is ioredis's Cluster client, which follows MOVED and ASK during
 * resharding and retries CLUSTERDOWN and TRYAGAIN for a moment itself; what is still failing after
 * that reaches kit/grpc-errors.ts, which answers UNAVAILABLE. Auto-pipelining is always on for a
 * Cluster: batches that span owners are split into one call per slot, and auto-pipelining puts the
 * calls bound for one node back into one write.
 */
export async function connectRedis(settings: RedisSettings, log: Logger, opts: { autoPipelining?: boolean } = {}): Promise<RedisClient> {
  const redis = createRedis(settings, opts);
  let down = false;
  const onError = (err: Error) => {
    if (!down) log.warn({ err: err.message }, 'redis connection error');
    down = true;
  };
  redis.on('error', onError);
  redis.on('node error', onError);
  redis.on('ready', () => {
    if (down) log.info('redis reconnected');
    down = false;
  });
  await redis.connect();
  return tracingOn() ? traceRedis(redis, settings.REDIS_PREFIX) : redis;
}

/**
 * The client alone, not connected (lazy): for tools that connect on first use (the Room CLI).
 * Commands fail after one retry; the Cluster client follows up to 16 redirections first.
 */
export function createRedis(settings: RedisSettings, opts: { autoPipelining?: boolean } = {}): RedisClient {
  const { REDIS_URL: url, REDIS_CLUSTER_NODES: nodes, REDIS_PREFIX: keyPrefix } = settings;
  if (/[{}]/.test(keyPrefix)) throw new Error(`REDIS_PREFIX must not contain { or } (got ${JSON.stringify(keyPrefix)}): on a Cluster the key's hash tag decides its slot`);
  const common = { connectTimeout: 5000, maxRetriesPerRequest: 1 };
  if (nodes.length === 0) {
    return new Redis(url, {
      ...common,
      keyPrefix,
      // Commands issued in the same tick leave in one write: under load, the per-command socket
      // write is the largest CPU cost of a Redis call (a service on the hot path opts in).
      enableAutoPipelining: opts.autoPipelining ?? false,
      lazyConnect: true,
      retryStrategy: backoff,
    });
  }
  // Credentials and TLS come from REDIS_URL, so one secret serves both modes.
  const base = new URL(url);
  return new Cluster(nodes.map(clusterNode), {
    keyPrefix,
    enableAutoPipelining: true,
    lazyConnect: true,
    clusterRetryStrategy: backoff,
    retryDelayOnClusterDown: 200,
    retryDelayOnTryAgain: 100,
    retryDelayOnMoved: 20,
    slotsRefreshTimeout: 2000,
    redisOptions: {
      ...common,
      username: decodeURIComponent(base.username) || undefined,
      password: decodeURIComponent(base.password) || undefined,
      tls: base.protocol === 'rediss:' ? {} : undefined,
    },
  });
}

function clusterNode(hostPort: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(hostPort);
  if (!m) throw new Error(`REDIS_CLUSTER_NODES: ${JSON.stringify(hostPort)} is not host:port`);
  return { host: m[1] ?? '', port: Number(m[2]) };
}

/**
 * What decides a key's slot: the text between its first `{` and the next `}` when that is not
 * empty (Redis's hash tag rule), else the whole key. Keys with the same owner share a slot.
 */
export function slotOwner(key: string): string {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) return key.slice(open + 1, close);
  }
  return key;
}

/**
 * Runs one command per item, as one pipeline on a single server and as one pipeline per owner
 * (hash tag) on a Cluster, where a pipeline must stay in one slot. `add` queues exactly one
 * command for the item, touching only keys of `keyOf(item)`'s owner. Answers come back in the
 * items' order, as [error, result] pairs like a pipeline's.
 */
export async function pipelineByOwner<T>(
  redis: RedisClient,
  items: readonly T[],
  keyOf: (item: T) => string,
  add: (pipeline: ChainableCommander, item: T) => void,
): Promise<Array<[Error | null, unknown]>> {
  if (items.length === 0) return [];
  const groups = new Map<string, number[]>();
  items.forEach((item, i) => {
    const owner = redis instanceof Cluster ? slotOwner(keyOf(item)) : '';
    const group = groups.get(owner);
    if (group) group.push(i);
    else groups.set(owner, [i]);
  });
  const out = new Array<[Error | null, unknown]>(items.length);
  await Promise.all(
    [...groups.values()].map(async (indexes) => {
      const p = redis.pipeline();
      for (const i of indexes) add(p, items[i] as T);
      const results = (await p.exec()) ?? [];
      indexes.forEach((i, j) => (out[i] = results[j] ?? [new Error('pipeline answered short'), null]));
    }),
  );
  return out;
}

/** DEL of keys that may belong to different owners: one DEL per owner on a Cluster. Returns how many existed. */
export async function deleteKeys(redis: RedisClient, keys: readonly string[]): Promise<number> {
  if (keys.length === 0) return 0;
  if (!(redis instanceof Cluster)) return redis.del(...keys);
  const byOwner = new Map<string, string[]>();
  for (const key of keys) byOwner.set(slotOwner(key), [...(byOwner.get(slotOwner(key)) ?? []), key]);
  const counts = await Promise.all([...byOwner.values()].map((group) => redis.del(...group)));
  return counts.reduce((a, b) => a + b, 0);
}
