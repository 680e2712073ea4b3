import type { EndpointStats, P2cOptions } from '../../lb/endpoint-stats.js';
import { P2cChooser } from '../../lb/p2c.js';
import { Rng } from '../../scripts/random.js';

/** The tooling's seeded PRNG as a bare `() => number`, so a "random" test run is the same run every time. */
export function seeded(seed: number): () => number {
  return new Rng(seed).next;
}

/** A clock the test moves by hand. */
export class ManualClock {
  t = 1_000;
  now = () => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

/** A chooser on a manual clock and a seeded PRNG, plus endpoints named a, b, c, ... */
export function testChooser(count: number, opts: Partial<P2cOptions> = {}, seed = 1) {
  const clock = new ManualClock();
  const chooser = new P2cChooser(opts, { random: seeded(seed), now: clock.now });
  const endpoints = Array.from({ length: count }, (_, i) => chooser.create(String.fromCharCode(97 + i)));
  return { clock, chooser, endpoints };
}

/** One call, start to end, on whatever the chooser picks; returns the endpoint. */
export function completeCall(chooser: P2cChooser, ready: readonly EndpointStats[], clock: ManualClock, outcome: { latencyMs?: number; failed?: boolean; load?: number } = {}): EndpointStats {
  const e = chooser.pick(ready)!;
  e.onStart();
  e.onEnd(clock.t, { failed: outcome.failed ?? false, latencyMs: outcome.latencyMs ?? 1, load: outcome.load });
  return e;
}

/**
 * A small discrete-time simulation: every millisecond `perMs` calls are picked and started; a
 * call on endpoint e ends `serviceMs(e)` ms later, reporting that latency and `load(e)`. Returns
 * how many calls each endpoint received, by address.
 */
export function simulate(
  chooser: P2cChooser,
  ready: readonly EndpointStats[],
  clock: ManualClock,
  opts: { ms: number; perMs: number; serviceMs: (e: EndpointStats) => number; load?: (e: EndpointStats) => number | undefined },
): Map<string, number> {
  const ending = new Map<number, EndpointStats[]>();
  const counts = new Map<string, number>(ready.map((e) => [e.address, 0]));
  const until = clock.t + opts.ms;
  while (clock.t < until) {
    for (const e of ending.get(clock.t) ?? []) e.onEnd(clock.t, { failed: false, latencyMs: opts.serviceMs(e), load: opts.load?.(e) });
    ending.delete(clock.t);
    for (let i = 0; i < opts.perMs; i++) {
      const e = chooser.pick(ready)!;
      e.onStart();
      counts.set(e.address, (counts.get(e.address) ?? 0) + 1);
      const at = clock.t + Math.max(1, Math.round(opts.serviceMs(e)));
      ending.set(at, [...(ending.get(at) ?? []), e]);
    }
    clock.advance(1);
  }
  // Drain what is still in flight, so endpoints end the run idle.
  for (const [at, list] of [...ending].sort((x, y) => x[0] - y[0])) {
    clock.t = Math.max(clock.t, at);
    for (const e of list) e.onEnd(clock.t, { failed: false, latencyMs: opts.serviceMs(e), load: opts.load?.(e) });
  }
  return counts;
}
