import { describe, expect, it } from 'vitest';
import { PeakEwma, SuccessEwma } from '../lb/ewma.js';
import { DEFAULT_P2C_OPTIONS } from '../lb/endpoint-stats.js';
import { completeCall, simulate, testChooser } from './support/lb.js';

const share = (counts: Map<string, number>, key: string) => (counts.get(key) ?? 0) / [...counts.values()].reduce((a, b) => a + b, 0);

describe('moving averages', () => {
  it('peak EWMA jumps to a peak at once and forgets it by elapsed time', () => {
    const e = new PeakEwma(1000, 10, 0);
    e.observe(50, 1);
    expect(e.value).toBe(50);
    e.observe(10, 1001); // one time constant later: 1/e of the gap remains
    expect(e.value).toBeCloseTo(10 + 40 / Math.E, 6);
    e.observe(10, 11_001);
    expect(e.value).toBeCloseTo(10, 2);
  });

  it('success EWMA moves by count, and drifts back to 1 when nothing is observed', () => {
    const s = new SuccessEwma(0.1, 5000, 0);
    for (let i = 0; i < 7; i++) s.observe(false, 0);
    expect(s.valueAt(0)).toBeCloseTo(0.9 ** 7, 9);
    expect(s.valueAt(5000)).toBeCloseTo(1 - (1 - 0.9 ** 7) / Math.E, 9);
    expect(s.valueAt(60_000)).toBeGreaterThan(0.999);
  });
});

describe('score', () => {
  it('is latency × (in-flight + 1) / (1 − load) / success', () => {
    const { clock, endpoints } = testChooser(1);
    const [a] = endpoints as [(typeof endpoints)[number]];
    a.onEnd(clock.t, { failed: false, latencyMs: 8, load: 0.5 });
    a.onStart();
    a.onStart();
    const pool = { latencyMs: 8, load: 0.5, inflight: 2 };
    clock.advance(DEFAULT_P2C_OPTIONS.slowStartMs); // past slow start: only the real in-flight counts
    expect(a.score(clock.t, pool)).toBeCloseTo((8 * 3) / 0.5 / 1, 9);
  });

  it('prefers lower latency, fewer calls in flight and lower server load', () => {
    const { clock, endpoints } = testChooser(2);
    const [a, b] = endpoints as [(typeof endpoints)[number], (typeof endpoints)[number]];
    clock.advance(5000);
    const pool = { latencyMs: 5, load: 0.3, inflight: 0 };
    a.onEnd(clock.t, { failed: false, latencyMs: 5, load: 0.3 });
    b.onEnd(clock.t, { failed: false, latencyMs: 5, load: 0.3 });
    expect(a.score(clock.t, pool)).toBeCloseTo(b.score(clock.t, pool), 9);
    b.onEnd(clock.t, { failed: false, latencyMs: 9, load: 0.3 });
    expect(b.score(clock.t, pool)).toBeGreaterThan(a.score(clock.t, pool));
    a.onStart();
    a.onStart();
    expect(a.score(clock.t, pool)).toBeGreaterThan(b.score(clock.t, pool)); // 5×3 > 9×1
    a.onEnd(clock.t, { failed: false, latencyMs: 5 });
    a.onEnd(clock.t, { failed: false, latencyMs: 5 });
    b.onEnd(clock.t, { failed: false, latencyMs: 5, load: 0.8 });
    expect(b.score(clock.t, pool)).toBeGreaterThan(a.score(clock.t, pool));
  });

  it('counts only overload and transport failures against success; business errors are successes', () => {
    const { clock, endpoints } = testChooser(1);
    const [a] = endpoints as [(typeof endpoints)[number]];
    for (let i = 0; i < 20; i++) a.onEnd(clock.t, { failed: false, latencyMs: 1 }); // e.g. NOT_FOUND
    expect(a.successAt(clock.t)).toBe(1);
    for (let i = 0; i < 3; i++) a.onEnd(clock.t, { failed: true });
    expect(a.successAt(clock.t)).toBeCloseTo(0.9 ** 3, 9);
    a.onEnd(clock.t, { failed: undefined }); // cancelled by the client: no evidence either way
    expect(a.successAt(clock.t)).toBeCloseTo(0.9 ** 3, 9);
  });

  it('P2C sends less to a slower endpoint, without starving it', () => {
    const { clock, chooser, endpoints } = testChooser(4);
    const counts = simulate(chooser, endpoints, clock, { ms: 5000, perMs: 2, serviceMs: (e) => (e.address === 'd' ? 6 : 2) });
    expect(share(counts, 'd')).toBeLessThan(0.1);
    expect(counts.get('d')).toBeGreaterThan(0);
    for (const k of ['a', 'b', 'c']) expect(share(counts, k)).toBeGreaterThan(0.25);
  });

  it('uses server load to steer clear of a replica busy with other clients’ traffic', () => {
    const { clock, chooser, endpoints } = testChooser(3);
    // Same latency everywhere for this client, but c reports 80% load (its other clients keep it busy).
    const counts = simulate(chooser, endpoints, clock, { ms: 3000, perMs: 2, serviceMs: () => 2, load: (e) => (e.address === 'c' ? 0.8 : 0.3) });
    expect(share(counts, 'c')).toBeLessThan(0.2);
  });
});

describe('stale or missing information', () => {
  it('a load report fades towards the pool mean as it ages', () => {
    const { clock, chooser, endpoints } = testChooser(1, { loadTauMs: 2000 });
    const [a] = endpoints as [(typeof endpoints)[number]];
    a.onEnd(clock.t, { failed: false, latencyMs: 1, load: 0.9 });
    expect(a.effectiveLoad(clock.t, 0.3)).toBeCloseTo(0.9, 9);
    clock.advance(2000);
    expect(a.effectiveLoad(clock.t, 0.3)).toBeCloseTo(0.3 + 0.6 / Math.E, 9);
    clock.advance(20_000);
    expect(a.effectiveLoad(clock.t, 0.3)).toBeCloseTo(0.3, 3);
    // An endpoint that never reported counts as the pool mean.
    expect(chooser.create('new').effectiveLoad(clock.t, 0.42)).toBe(0.42);
  });

  it('an endpoint not picked for 3 s gets exactly one forced pick', () => {
    const { clock, chooser, endpoints } = testChooser(3);
    const [, , c] = endpoints;
    // c is so slow it loses every comparison it is part of.
    c!.onEnd(clock.t, { failed: false, latencyMs: 10_000 });
    const picksOfC = () => c!.picks;
    for (let ms = 0; ms < 2900; ms += 10) {
      clock.advance(10);
      completeCall(chooser, endpoints, clock);
    }
    expect(picksOfC()).toBe(0);
    clock.advance(100); // now 3 s since c was last picked (or created)
    const forced = completeCall(chooser, endpoints, clock, { latencyMs: 10_000 });
    expect(forced).toBe(c);
    expect(c!.forcedPicks).toBe(1);
    for (let i = 0; i < 100; i++) {
      clock.advance(10);
      completeCall(chooser, endpoints, clock);
    }
    expect(picksOfC()).toBe(1);
  });

  it('a new endpoint starts at the pool mean and is warmed up, not flooded', () => {
    const { clock, chooser, endpoints } = testChooser(3);
    // Three busy endpoints, each holding about four calls in flight.
    simulate(chooser, endpoints, clock, { ms: 3000, perMs: 3, serviceMs: () => 4, load: () => 0.5 });
    const pool = chooser.pool;
    const fresh = chooser.create('d');
    expect(fresh.latencyMs).toBeCloseTo(pool.latencyMs, 9);
    expect(fresh.effectiveLoad(clock.t, pool.load)).toBeCloseTo(0.5, 9);
    expect(fresh.inflightAt(clock.t, pool.inflight)).toBeCloseTo(pool.inflight, 9);
    const all = [...endpoints, fresh];
    // Its first picks: an empty newcomer would win every comparison it is in (half of all picks
    // with four endpoints); charged the pool's mean in-flight, it gets about its fair quarter.
    const first = simulate(chooser, all, clock, { ms: 20, perMs: 3, serviceMs: () => 4, load: () => 0.5 });
    expect(share(first, 'd')).toBeLessThan(0.35);
    // Cold (10× slower) for its first half second: the pool-mean latency it started with is
    // replaced by the real one as soon as calls come back, and it gets less than its share.
    const cold = simulate(chooser, all, clock, { ms: 500, perMs: 3, serviceMs: (e) => (e === fresh ? 40 : 4), load: () => 0.5 });
    expect(share(cold, 'd')).toBeLessThan(0.2);
    // Warm again: the peak fades with its 1 s time constant, and within a few seconds d is back to its share.
    simulate(chooser, all, clock, { ms: 3000, perMs: 3, serviceMs: () => 4, load: () => 0.5 });
    const warm = simulate(chooser, all, clock, { ms: 1000, perMs: 3, serviceMs: () => 4, load: () => 0.5 });
    expect(share(warm, 'd')).toBeGreaterThan(0.2);
  });

  it('charges a newcomer the pool mean in-flight only during slow start', () => {
    const { clock, chooser } = testChooser(0, { slowStartMs: 3000 });
    const fresh = chooser.create('d');
    expect(fresh.inflightAt(clock.t, 6)).toBe(6);
    expect(fresh.inflightAt(clock.t + 1500, 6)).toBeCloseTo(3, 9);
    fresh.onStart();
    expect(fresh.inflightAt(clock.t + 3000, 6)).toBe(1);
  });
});

describe('ejection', () => {
  it('an endpoint whose success collapsed is avoided, then tried again as its record ages', () => {
    const { clock, chooser, endpoints } = testChooser(3);
    const [a, b, c] = endpoints;
    for (let i = 0; i < 10; i++) c!.onEnd(clock.t, { failed: true });
    expect(c!.avoided(clock.t, chooser.pool)).toBe(true);
    for (let i = 0; i < 300; i++) {
      clock.advance(5);
      completeCall(chooser, endpoints, clock);
    }
    // 1.5 s: no forced pick due yet, and P2C never chose it.
    expect(c!.picks).toBe(0);
    expect(a!.picks + b!.picks).toBe(300);
    clock.advance(20_000);
    expect(c!.avoided(clock.t, chooser.pool)).toBe(false);
  });

  it('one call failed by its connection leaves the endpoint out at once, until it is ready again or a second has passed', () => {
    const { clock, chooser, endpoints } = testChooser(3);
    const [a, b, c] = endpoints;
    for (let i = 0; i < 30; i++) completeCall(chooser, endpoints, clock);
    // A server answering UNAVAILABLE (with its load) is one failure among many; the connection failing is not.
    c!.onEnd(clock.t, { failed: true, load: 0.2 });
    expect(c!.avoided(clock.t, chooser.pool)).toBe(false);
    c!.onEnd(clock.t, { failed: true, transportFailure: true });
    expect(c!.avoided(clock.t, chooser.pool)).toBe(true);
    const before = c!.picks;
    for (let i = 0; i < 100; i++) {
      clock.advance(5);
      completeCall(chooser, endpoints, clock);
    }
    expect(c!.picks).toBe(before);
    expect(a!.picks + b!.picks).toBeGreaterThan(100);
    clock.advance(600);
    expect(c!.avoided(clock.t, chooser.pool)).toBe(false);
    // Reconnected (ready again) before the second is up: back in at once.
    c!.onEnd(clock.t, { failed: true, transportFailure: true });
    chooser.restart(c!);
    expect(c!.avoided(clock.t, chooser.pool)).toBe(false);
  });

  it('an endpoint reporting load over 90% is avoided', () => {
    const { clock, chooser, endpoints } = testChooser(3);
    const [, , c] = endpoints;
    for (const e of endpoints) e.onEnd(clock.t, { failed: false, latencyMs: 1, load: 0.4 });
    c!.onEnd(clock.t, { failed: false, latencyMs: 1, load: 0.97 });
    for (let i = 0; i < 200; i++) {
      clock.advance(5);
      completeCall(chooser, endpoints, clock, { load: 0.4 });
    }
    expect(c!.picks).toBe(0);
  });

  it('when every endpoint is in trouble, calls still go out, spread over all of them', () => {
    const { clock, chooser, endpoints } = testChooser(3);
    for (const e of endpoints) for (let i = 0; i < 10; i++) e.onEnd(clock.t, { failed: true });
    const counts = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const e = chooser.pick(endpoints)!;
      counts.set(e.address, (counts.get(e.address) ?? 0) + 1);
    }
    expect(counts.size).toBe(3);
    for (const n of counts.values()) expect(n).toBeGreaterThan(50);
  });

  it('returns nothing when nothing is ready, and the only endpoint when there is one', () => {
    const { chooser, endpoints } = testChooser(1);
    expect(chooser.pick([])).toBeUndefined();
    expect(chooser.pick(endpoints)).toBe(endpoints[0]);
  });
});
