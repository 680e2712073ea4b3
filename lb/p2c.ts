import { DEFAULT_P2C_OPTIONS, EndpointStats, type P2cOptions, type PoolMeans } from './endpoint-stats.js';

/** Where randomness and time come from; injected so tests can replay a run exactly. */
export interface Sources {
  /** Uniform in [0, 1). */
  random: () => number;
  /** Monotonic milliseconds. */
  now: () => number;
}

export const systemSources: Sources = { random: Math.random, now: () => performance.now() };

/**
 * The power-of-two-choices decision, with no gRPC in it.
 *
 * Always sending to the single best endpoint herds every client onto the same replica (they all
 * see the same load report) until it tips over; picking two at random and taking the better one
 * keeps most of the benefit while spreading the herd. On top of that:
 *  - an endpoint nobody picked for `forcePickAfterMs` gets one pick, so its numbers refresh;
 *  - endpoints whose success collapsed or whose load is over `maxLoad` are left out, unless
 *    every endpoint is in that state (then sending somewhere beats failing the call here);
 *  - pool means (latency, load, in-flight) are the reference for new endpoints and old reports.
 * The expensive parts (means, usable set, stale scan) run at most every `scanIntervalMs`, so a
 * pick is two random numbers and two scores.
 */
export class P2cChooser {
  readonly opts: P2cOptions;
  pool: PoolMeans = { latencyMs: 0, load: 0, inflight: 0 };
  private scannedFor: readonly EndpointStats[] | undefined;
  private nextScan = -Infinity;
  private usable: EndpointStats[] = [];
  private forced: EndpointStats[] = [];

  constructor(
    opts: Partial<P2cOptions> = {},
    readonly sources: Sources = systemSources,
  ) {
    this.opts = { ...DEFAULT_P2C_OPTIONS, ...opts };
  }

  /** Stats for an endpoint that just joined, seeded with the pool's means. */
  create(address: string): EndpointStats {
    return new EndpointStats(address, this.opts, this.sources.now(), this.pool);
  }

  /** Call when an endpoint becomes ready again after a disconnect: it restarts at the pool mean. */
  restart(stats: EndpointStats): void {
    stats.restart(this.sources.now(), this.pool);
  }

  /** Picks one of `ready` (the endpoints that can take a call now); undefined if there are none. */
  pick(ready: readonly EndpointStats[]): EndpointStats | undefined {
    if (ready.length === 0) return undefined;
    const now = this.sources.now();
    if (ready !== this.scannedFor || now >= this.nextScan) this.scan(ready, now);
    const forced = this.forced.pop();
    if (forced) {
      forced.onPick(now, true);
      return forced;
    }
    const from = this.usable.length > 0 ? this.usable : ready;
    const chosen = from.length === 1 ? from[0]! : this.better(from, now);
    chosen.onPick(now, false);
    return chosen;
  }

  /** Two distinct endpoints at random; the one that is not avoided, else the lower score. */
  private better(from: readonly EndpointStats[], now: number): EndpointStats {
    const n = from.length;
    const i = Math.floor(this.sources.random() * n);
    let j = Math.floor(this.sources.random() * (n - 1));
    if (j >= i) j++;
    const a = from[i]!;
    const b = from[j]!;
    const aOut = a.avoided(now, this.pool);
    if (aOut !== b.avoided(now, this.pool)) return aOut ? b : a;
    return b.score(now, this.pool) < a.score(now, this.pool) ? b : a;
  }

  /** Recomputes pool means, the usable set and which endpoints are due a forced pick. */
  scan(ready: readonly EndpointStats[], now: number): void {
    this.scannedFor = ready;
    this.nextScan = now + this.opts.scanIntervalMs;
    if (ready.length === 0) return;
    let latency = 0;
    let inflight = 0;
    let load = 0;
    let reports = 0;
    for (const e of ready) {
      latency += e.latencyMs;
      inflight += e.inflight + e.pending;
      const reported = e.lastReport;
      if (reported !== undefined) {
        load += reported;
        reports++;
      }
    }
    this.pool = { latencyMs: latency / ready.length, inflight: inflight / ready.length, load: reports > 0 ? load / reports : 0 };
    this.usable = ready.filter((e) => !e.avoided(now, this.pool));
    // A pick normally starts within the same tick; one still pending now was cancelled first.
    for (const e of ready) e.clearPending();
    // Only with a choice to make is there anyone to starve: a lone endpoint is picked anyway.
    this.forced = ready.length > 1 ? ready.filter((e) => now - e.lastPickAt >= this.opts.forcePickAfterMs) : [];
  }
}
