/**
 * The micro-cache in front of public screens: what Douyu got from nginx's proxy_cache_lock and
 * proxy_cache_use_stale (seed 001), in-process. A hot room's entry screen is built once per TTL
 * per replica however many viewers arrive, and an upstream outage serves the last good screen
 * instead of errors.
 *
 * Entries are kept as bytes, already gzip- and brotli-compressed: compression is paid once per
 * refresh instead of once per response (seed 003), and a hit is a buffer write.
 */
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { brotliCompress, constants as zlib, gzip } from 'node:zlib';
import { LRUCache } from 'lru-cache';
import { isTransient } from './errors.js';

const gzipAsync = promisify(gzip);
const brotliAsync = promisify(brotliCompress);

/** A JSON response body in the three encodings clients ask for. */
export interface EncodedBody {
  raw: Buffer;
  gzip: Buffer;
  br: Buffer;
  /** Weak: the representations differ per encoding but carry the same content. */
  etag: string;
}

interface Entry {
  body: EncodedBody;
  storedAt: number;
}

/**
 * nginx's $upstream_cache_status words, so operators read them the same way: HIT (fresh), MISS
 * (built for this request, or shared with a concurrent one), UPDATING (stale, served while one
 * request refreshes it), STALE (stale, served because the upstream failed).
 */
export type CacheStatus = 'HIT' | 'MISS' | 'UPDATING' | 'STALE';

export interface MicroCacheOptions {
  /** How long an entry is fresh. */
  ttlMs: number;
  /** Past its TTL, how long an entry is served at once while one background request refreshes it. */
  swrMs: number;
  /** Past its TTL, how long an entry may stand in for an upstream that is UNAVAILABLE or too slow. */
  staleIfErrorMs: number;
  max: number;
  /** A background refresh failed; the stale entry is kept. */
  onRefreshError?: (key: string, err: unknown) => void;
  now?: () => number;
}

/** Serializes and compresses a JSON value once, for every response that will carry it. */
export async function encodeJson(value: unknown): Promise<EncodedBody> {
  const raw = Buffer.from(JSON.stringify(value));
  const [gz, br] = await Promise.all([
    gzipAsync(raw, { level: 9 }),
    brotliAsync(raw, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11, [zlib.BROTLI_PARAM_MODE]: zlib.BROTLI_MODE_TEXT, [zlib.BROTLI_PARAM_SIZE_HINT]: raw.length } }),
  ]);
  return { raw, gzip: gz, br, etag: `W/"${createHash('sha1').update(raw).digest('base64url')}"` };
}

export class MicroCache {
  private readonly entries: LRUCache<string, Entry>;
  private readonly flights = new Map<string, Promise<EncodedBody>>();
  private readonly now: () => number;
  /** Screens built (loader runs), for tests and metrics: the single-flight check counts these. */
  loads = 0;
  /** Responses by cache status, for metrics (the fast path counts its hits here too). */
  readonly served: Record<CacheStatus, number> = { HIT: 0, MISS: 0, UPDATING: 0, STALE: 0 };

  constructor(private readonly opts: MicroCacheOptions) {
    this.now = opts.now ?? Date.now;
    this.entries = new LRUCache({ max: opts.max });
  }

  /**
   * The entry for `key`, building it with `load` when missing or too old. Concurrent misses share
   * one load; a failed load falls back to a stale entry only for transient failures (a room that
   * was deleted must stop showing, a room whose service is down should keep showing).
   */
  async get(key: string, load: () => Promise<unknown>): Promise<{ body: EncodedBody; status: CacheStatus }> {
    const got = await this.lookup(key, load);
    this.served[got.status]++;
    return got;
  }

  private async lookup(key: string, load: () => Promise<unknown>): Promise<{ body: EncodedBody; status: CacheStatus }> {
    const entry = this.entries.get(key);
    const age = entry ? this.now() - entry.storedAt : Infinity;
    if (entry && age < this.opts.ttlMs) return { body: entry.body, status: 'HIT' };
    if (entry && age < this.opts.ttlMs + this.opts.swrMs) {
      this.refresh(key, load).catch((err: unknown) => this.opts.onRefreshError?.(key, err));
      return { body: entry.body, status: 'UPDATING' };
    }
    try {
      return { body: await this.refresh(key, load), status: 'MISS' };
    } catch (err) {
      if (entry && isTransient(err) && age < this.opts.ttlMs + this.opts.staleIfErrorMs) return { body: entry.body, status: 'STALE' };
      throw err;
    }
  }

  /** The entry while it is fresh, with no side effect: the fast path's whole lookup. */
  peekFresh(key: string): EncodedBody | undefined {
    const entry = this.entries.get(key);
    return entry && this.now() - entry.storedAt < this.opts.ttlMs ? entry.body : undefined;
  }

  /** Single flight: one load per key at a time, whoever asks. */
  private refresh(key: string, load: () => Promise<unknown>): Promise<EncodedBody> {
    const running = this.flights.get(key);
    if (running) return running;
    this.loads++;
    const flight = load()
      .then(encodeJson)
      .then((body) => {
        this.entries.set(key, { body, storedAt: this.now() });
        return body;
      })
      .finally(() => this.flights.delete(key));
    this.flights.set(key, flight);
    return flight;
  }

  /** Drops an entry, e.g. after this replica changed the room (the streamer sees their edit at once). */
  delete(key: string): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
