/**
 * The micro-cache in front of public screens: what Douyu got from nginx's proxy_cache_lock and
 * proxy_cache_use_stale (seed 001), in-process. A hot room's entry screen is built once per TTL
 * per replica however many viewers arrive, and an upstream outage serves the last good screen
 * instead of errors.
 *
 * Entries are kept as bytes, already gzip- and brotli-compressed: compression is paid once per
 * refresh instead of once per response (seed 003), and a hit is a buffer write.
 *
 * A degraded screen (an optional section ran out of time: a cold BFF's first calls, a slow upstream) is
 * kept only for `degradedTtlMs`: past it the next request is served that screen while one
 * background rebuild fills the missing sections, so a cold spike does not pin a screen without its
 * ranking and messages on everyone for the full TTL.
 */
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { brotliCompress, constants as zlib, gzip } from 'node:zlib';
import { LRUCache } from 'lru-cache';
import { isTransient } from './errors.js';
import { missesSectionsToRetry } from './sections.js';

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
  /** How long this entry is fresh: the TTL, or the short one when the screen was degraded. */
  ttlMs: number;
  degraded: boolean;
}

/**
 * nginx's $upstream_cache_status words, so operators read them the same way: HIT (fresh), MISS
 * (built for this request, or shared with a concurrent one), UPDATING (stale, served while one
 * request refreshes it), STALE (stale, served because the upstream failed).
 */
export type CacheStatus = 'HIT' | 'MISS' | 'UPDATING' | 'STALE';

/** What the cache answers: the body, how it was found, and whether the screen left a section out. */
export interface CacheAnswer {
  body: EncodedBody;
  status: CacheStatus;
  degraded: boolean;
}

export interface MicroCacheOptions {
  /** How long an entry is fresh. */
  ttlMs: number;
  /** How long a degraded entry (see isDegraded) is fresh; defaults to the TTL (no difference). */
  degradedTtlMs?: number;
  /** Whether a built value misses something a rebuild soon may fill; default: a section that ran out of time (sections.ts). */
  isDegraded?: (value: unknown) => boolean;
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
  private readonly flights = new Map<string, Promise<Entry>>();
  private readonly now: () => number;
  private readonly isDegraded: (value: unknown) => boolean;
  private readonly degradedTtlMs: number;
  /** Screens built (loader runs), for tests and metrics: the single-flight check counts these. */
  loads = 0;
  /** Builds that came out degraded, and were therefore kept only for the short TTL. */
  degradedLoads = 0;
  /** Responses by cache status, for metrics (the fast path counts its hits here too). */
  readonly served: Record<CacheStatus, number> = { HIT: 0, MISS: 0, UPDATING: 0, STALE: 0 };

  constructor(private readonly opts: MicroCacheOptions) {
    this.now = opts.now ?? Date.now;
    this.isDegraded = opts.isDegraded ?? missesSectionsToRetry;
    this.degradedTtlMs = Math.min(opts.degradedTtlMs ?? opts.ttlMs, opts.ttlMs);
    this.entries = new LRUCache({ max: opts.max });
  }

  /**
   * The entry for `key`, building it with `load` when missing or too old. Concurrent misses share
   * one load; a failed load falls back to a stale entry only for transient failures (a room that
   * was deleted must stop showing, a room whose service is down should keep showing).
   */
  async get(key: string, load: () => Promise<unknown>): Promise<CacheAnswer> {
    const got = await this.lookup(key, load);
    this.served[got.status]++;
    return got;
  }

  private async lookup(key: string, load: () => Promise<unknown>): Promise<CacheAnswer> {
    const entry = this.entries.get(key);
    const age = entry ? this.now() - entry.storedAt : Infinity;
    if (entry && age < entry.ttlMs) return { body: entry.body, status: 'HIT', degraded: entry.degraded };
    if (entry && age < entry.ttlMs + this.opts.swrMs) {
      this.refresh(key, load).catch((err: unknown) => this.opts.onRefreshError?.(key, err));
      return { body: entry.body, status: 'UPDATING', degraded: entry.degraded };
    }
    try {
      const built = await this.refresh(key, load);
      return { body: built.body, status: 'MISS', degraded: built.degraded };
    } catch (err) {
      if (entry && isTransient(err) && age < entry.ttlMs + this.opts.staleIfErrorMs) return { body: entry.body, status: 'STALE', degraded: entry.degraded };
      throw err;
    }
  }

  /**
   * The entry while it is fresh, with no side effect: the fast path's whole lookup. A degraded
   * screen is not offered: the fast path would send it with the full max-age, and the router's
   * path both marks it uncacheable for clients and starts its rebuild when it is due.
   */
  peekFresh(key: string): EncodedBody | undefined {
    const entry = this.entries.get(key);
    return entry && !entry.degraded && this.now() - entry.storedAt < entry.ttlMs ? entry.body : undefined;
  }

  /** Single flight: one load per key at a time, whoever asks. */
  private refresh(key: string, load: () => Promise<unknown>): Promise<Entry> {
    const running = this.flights.get(key);
    if (running) return running;
    this.loads++;
    const flight = load()
      .then(async (value) => {
        const degraded = this.isDegraded(value);
        if (degraded) this.degradedLoads++;
        const entry: Entry = { body: await encodeJson(value), storedAt: this.now(), ttlMs: degraded ? this.degradedTtlMs : this.opts.ttlMs, degraded };
        this.entries.set(key, entry);
        return entry;
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
