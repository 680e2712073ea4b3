/**
 * Moving averages for per-endpoint signals. Kept free of grpc-js and of any clock: the caller
 * passes `now` (milliseconds, monotonic) so tests can replay exact timelines.
 */

/**
 * A latency average that jumps to a peak at once and forgets it slowly (Finagle's "peak EWMA").
 * A replica that suddenly slows down must lose traffic on the very next pick, not after a
 * hundred slow calls have dragged a plain average up; recovering is allowed to be gradual.
 * Decay is by elapsed time, not by sample count, so a busy endpoint and a quiet one forget at
 * the same speed.
 */
export class PeakEwma {
  private current: number;
  private at: number;

  constructor(
    private readonly tauMs: number,
    initial: number,
    now: number,
  ) {
    this.current = initial;
    this.at = now;
  }

  observe(sample: number, now: number): void {
    if (sample >= this.current) {
      this.current = sample;
    } else {
      const w = Math.exp(-Math.max(0, now - this.at) / this.tauMs);
      this.current = this.current * w + sample * (1 - w);
    }
    this.at = now;
  }

  get value(): number {
    return this.current;
  }

  /**
   * The value as believed at `now` when nothing has been observed since the last sample: it
   * fades towards `reference` with the same time constant. Without this a peak would stick to an
   * endpoint that, because of that very peak, is no longer picked and so never gets a new sample.
   */
  valueAt(now: number, reference: number): number {
    const w = Math.exp(-Math.max(0, now - this.at) / this.tauMs);
    return reference + (this.current - reference) * w;
  }

  /** When the last sample arrived. */
  get updatedAt(): number {
    return this.at;
  }
}

/**
 * The recent fraction of calls that did not fail from overload or transport trouble. Weighted by
 * count (each call moves it by `alpha`), because a time-weighted average would let one failure
 * after a quiet minute count as total collapse. With no samples for a while it drifts back
 * towards 1, so an endpoint avoided for failing gets looked at again instead of staying
 * condemned on old evidence.
 */
export class SuccessEwma {
  private current = 1;
  private at: number;

  constructor(
    private readonly alpha: number,
    private readonly recoveryTauMs: number,
    now: number,
  ) {
    this.at = now;
  }

  observe(ok: boolean, now: number): void {
    this.current = this.valueAt(now) * (1 - this.alpha) + (ok ? this.alpha : 0);
    this.at = now;
  }

  valueAt(now: number): number {
    const w = Math.exp(-Math.max(0, now - this.at) / this.recoveryTauMs);
    return 1 - (1 - this.current) * w;
  }
}
