import { PeakEwma, SuccessEwma } from './ewma.js';

/** Tuning of the P2C policy; every field has a default (DEFAULT_P2C_OPTIONS). */
export interface P2cOptions {
  /** How long a latency peak takes to fade (time constant of the peak EWMA). */
  latencyTauMs: number;
  /** Weight of one call in the success average. */
  successAlpha: number;
  /** Time constant with which an unused success average drifts back to 1. */
  successRecoveryMs: number;
  /** Time constant with which a load report fades towards the pool mean as it ages. */
  loadTauMs: number;
  /** An endpoint nobody picked for this long gets one pick regardless of its score. */
  forcePickAfterMs: number;
  /** Reported load above which an endpoint is avoided (unless all are). */
  maxLoad: number;
  /** Success average below which an endpoint is avoided (unless all are). */
  minSuccess: number;
  /** A new or reconnected endpoint is charged the pool's mean in-flight, fading to 0 over this long. */
  slowStartMs: number;
  /** How often pool means, the usable set and the forced picks are recomputed. */
  scanIntervalMs: number;
  /**
   * How long an endpoint whose connection just failed a call is left out (unless every endpoint
   * is), or until it is ready again, whichever comes first.
   */
  transportEjectMs: number;
}

export const DEFAULT_P2C_OPTIONS: Readonly<P2cOptions> = Object.freeze({
  latencyTauMs: 1000,
  successAlpha: 0.1,
  successRecoveryMs: 10_000,
  loadTauMs: 2000,
  forcePickAfterMs: 3000,
  maxLoad: 0.9,
  minSuccess: 0.5,
  slowStartMs: 3000,
  scanIntervalMs: 100,
  transportEjectMs: 1000,
});

/** What the pool looks like on average; the reference for new endpoints and stale reports. */
export interface PoolMeans {
  latencyMs: number;
  load: number;
  inflight: number;
}

/** How one call ended, as the score needs it (no gRPC types: the policy classifies codes). */
export interface CallOutcome {
  /**
   * Overload or transport failure (UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED); false for
   * success and business errors; undefined when the call says nothing about the endpoint (the
   * client cancelled it).
   */
  failed: boolean | undefined;
  /** Client-side latency to feed the peak EWMA; omitted when the number would mislead (fast refusals). */
  latencyMs?: number;
  /** Server load from the response (max of CPU and event-loop utilization), if it sent one. */
  load?: number;
  /**
   * The call failed on the connection, not with an answer from the server (UNAVAILABLE with no
   * load report: refused, reset, dropped). The endpoint is left out at once rather than when the
   * success average has sunk: a replica killed under load otherwise looks idle (its calls all
   * ended) in the moments before its connection state reaches the picker, and a retry, sent
   * there 10 ms later, fails too.
   */
  transportFailure?: boolean;
}

/** The inputs of an endpoint's score at one instant: what the metrics and the debug view show. */
export interface ScoreInputs {
  inflight: number;
  latencyMs: number;
  success: number;
  load: number;
  loadReported: number | undefined;
  loadAgeMs: number | undefined;
  avoided: boolean;
  score: number;
}

/** Loads above this are treated as this, so one report of 100% cannot make a cost infinite. */
const LOAD_CAP = 0.95;
/** Latency floor in ms, so a pool without samples still ranks by in-flight count. */
const LATENCY_FLOOR_MS = 0.001;

/**
 * Everything the balancer knows about one endpoint, and its score. Lower is better.
 *
 * The score estimates how long a new call would take there: latency × (in-flight + 1) is the
 * classic P2C/peak-EWMA cost (time per call times the queue ahead of it); 1/(1 − load) is the
 * M/M/1 factor by which queueing stretches response time at utilization `load`, so the server's
 * own report (which includes every other client's traffic) counts as much as what this client
 * sees; dividing by the success rate makes a replica that sheds calls look proportionally slower.
 */
export class EndpointStats {
  inflight = 0;
  /** Picked but not started yet: counted so a burst of picks in one tick does not pile up on one endpoint. */
  pending = 0;
  picks = 0;
  forcedPicks = 0;
  lastPickAt: number;
  readySince: number;
  private latency: PeakEwma;
  private success: SuccessEwma;
  private reportedLoad: number | undefined;
  private reportAt = 0;
  /** Left out until then after a transport failure (see CallOutcome.transportFailure). */
  private ejectedUntil = -Infinity;

  constructor(
    readonly address: string,
    private readonly opts: P2cOptions,
    now: number,
    seed: PoolMeans,
  ) {
    this.lastPickAt = now;
    this.readySince = now;
    this.latency = new PeakEwma(opts.latencyTauMs, seed.latencyMs, now);
    this.success = new SuccessEwma(opts.successAlpha, opts.successRecoveryMs, now);
  }

  /**
   * A (re)connected endpoint starts from the pool's mean rather than from zero or from what it
   * looked like before it went away: a restarted replica is cold, and zero latency would flood it.
   */
  restart(now: number, seed: PoolMeans): void {
    this.latency = new PeakEwma(this.opts.latencyTauMs, seed.latencyMs, now);
    this.success = new SuccessEwma(this.opts.successAlpha, this.opts.successRecoveryMs, now);
    this.reportedLoad = undefined;
    this.pending = 0;
    this.readySince = now;
    this.lastPickAt = now;
    this.ejectedUntil = -Infinity;
  }

  onPick(now: number, forced: boolean): void {
    this.picks++;
    if (forced) this.forcedPicks++;
    this.pending++;
    this.lastPickAt = now;
  }

  onStart(): void {
    if (this.pending > 0) this.pending--;
    this.inflight++;
  }

  onEnd(now: number, outcome: CallOutcome): void {
    if (this.inflight > 0) this.inflight--;
    if (outcome.failed !== undefined) this.success.observe(!outcome.failed, now);
    if (outcome.transportFailure) this.ejectedUntil = now + this.opts.transportEjectMs;
    if (outcome.latencyMs !== undefined) this.latency.observe(outcome.latencyMs, now);
    if (outcome.load !== undefined) {
      this.reportedLoad = outcome.load;
      this.reportAt = now;
    }
  }

  /** Picks that never turned into calls (cancelled before start) must not count forever. */
  clearPending(): void {
    this.pending = 0;
  }

  get latencyMs(): number {
    return this.latency.value;
  }

  get lastReport(): number | undefined {
    return this.reportedLoad;
  }

  /** The last report, faded towards the pool mean by its age: an old "idle" is not believed forever. */
  effectiveLoad(now: number, poolLoad: number): number {
    if (this.reportedLoad === undefined) return poolLoad;
    const w = Math.exp(-Math.max(0, now - this.reportAt) / this.opts.loadTauMs);
    return poolLoad + (this.reportedLoad - poolLoad) * w;
  }

  /** The latency EWMA, fading towards the pool mean while no call comes back (see PeakEwma.valueAt). */
  latencyAt(now: number, poolLatencyMs: number): number {
    return this.latency.valueAt(now, poolLatencyMs);
  }

  successAt(now: number): number {
    return this.success.valueAt(now);
  }

  /** In-flight, or during slow start the pool mean fading to zero, whichever is larger. */
  inflightAt(now: number, poolInflight: number): number {
    const real = this.inflight + this.pending;
    const left = 1 - (now - this.readySince) / this.opts.slowStartMs;
    return left > 0 ? Math.max(real, poolInflight * left) : real;
  }

  avoided(now: number, pool: PoolMeans): boolean {
    return now < this.ejectedUntil || this.successAt(now) < this.opts.minSuccess || this.effectiveLoad(now, pool.load) > this.opts.maxLoad;
  }

  score(now: number, pool: PoolMeans): number {
    const load = Math.min(this.effectiveLoad(now, pool.load), LOAD_CAP);
    const latency = Math.max(this.latencyAt(now, pool.latencyMs), LATENCY_FLOOR_MS);
    return (latency * (this.inflightAt(now, pool.inflight) + 1)) / (1 - load) / Math.max(this.successAt(now), 0.01);
  }

  inputs(now: number, pool: PoolMeans): ScoreInputs {
    return {
      inflight: this.inflight,
      latencyMs: this.latencyAt(now, pool.latencyMs),
      success: this.successAt(now),
      load: this.effectiveLoad(now, pool.load),
      loadReported: this.reportedLoad,
      loadAgeMs: this.reportedLoad === undefined ? undefined : now - this.reportAt,
      avoided: this.avoided(now, pool),
      score: this.score(now, pool),
    };
  }
}
