import { burnCpu } from './interceptors.js';

/** Process CPU time (user + system) in milliseconds. */
function processCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** One tick never blocks longer than this, however long the work it follows was. */
const MAX_BURN_PER_TICK_MS = 500;

/**
 * Fault injection (FAULT_CPU_FACTOR): makes the whole process cost `factor` times the CPU for the
 * same work, the way a noisy neighbour stealing cycles would. Every `tickMs` it looks at how much
 * CPU the process used for real since the last tick and burns (factor − 1) times that on the event
 * loop. Cheap and expensive calls alike get slower in proportion, which a fixed per-call burn
 * (FAULT_CPU_MS) cannot do; load reports, latency and /proc all see the extra cost.
 */
export class CpuStealer {
  private timer: NodeJS.Timeout | undefined;
  private last: number;
  /** Total extra CPU burned so far, ms. */
  burnedMs = 0;

  constructor(
    readonly factor: number,
    private readonly tickMs = 10,
    private readonly cpuMs: () => number = processCpuMs,
    private readonly burn: (ms: number) => void = burnCpu,
  ) {
    if (!(factor >= 1)) throw new Error(`CPU factor must be >= 1 (got ${factor})`);
    this.last = cpuMs();
  }

  start(): this {
    if (this.factor > 1) this.timer ??= setInterval(() => this.tick(), this.tickMs).unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Burns for the work done since the last tick; returns the ms burned. The timer calls this, tests may too. */
  tick(): number {
    const real = Math.max(0, this.cpuMs() - this.last);
    const extra = Math.min(real * (this.factor - 1), MAX_BURN_PER_TICK_MS);
    if (extra > 0) this.burn(extra);
    this.burnedMs += extra;
    // Read again after burning, so the burn itself is never mistaken for work next tick.
    this.last = this.cpuMs();
    return extra;
  }
}
