import { collectDefaultMetrics, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { assessGrowth, DEFAULT_GROWTH } from '../scripts/soak/growth.js';
import { readGauges, type ProcessSample } from '../scripts/soak/process-stats.js';

const MiB = 1024 * 1024;
const start = Date.UTC(2026, 10, 21, 12, 0, 0);
const opts = { ...DEFAULT_GROWTH, warmupMs: 5 * 60_000 };

/** 30 minutes sampled every 10 s: heap saws between collections, as a healthy Node process's does. */
function series(heapAt: (minute: number, i: number) => number, handlesAt: (minute: number) => number = () => 40): ProcessSample[] {
  return Array.from({ length: 180 }, (_, i) => {
    const minute = i / 6;
    return { at: start + i * 10_000, heapUsedBytes: heapAt(minute, i), rssBytes: 120 * MiB, handles: handlesAt(minute) };
  });
}

const sawtooth = (i: number) => ((i % 7) / 7) * 25 * MiB;

describe('soak growth verdict (scripts/soak/growth.ts)', () => {
  it('calls a sawtooth heap with a constant floor flat, even with large swings and a noisy floor', () => {
    const v = assessGrowth(
      series((_m, i) => 40 * MiB + sawtooth(i) + (i % 5) * 0.3 * MiB),
      start,
      opts,
    );
    expect(v.flat).toBe(true);
    expect(v.reason).toBeUndefined();
  });

  it('catches a slow leak: the floor rising 0.5 MiB a minute', () => {
    const v = assessGrowth(
      series((m, i) => 40 * MiB + m * 0.5 * MiB + sawtooth(i)),
      start,
      opts,
    );
    expect(v.flat).toBe(false);
    expect(v.reason).toMatch(/heap floor grew \d+\.\d MiB/);
    expect(v.heapSlopePerHour / MiB).toBeCloseTo(30, 0);
  });

  it('tolerates handle spikes (client connections under bursts) but catches leaked handles even when the heap is flat', () => {
    const bursty = assessGrowth(
      series((_m, i) => 40 * MiB + sawtooth(i), (m) => (Math.floor(m * 6) % 9 === 0 ? 70 : 40) + (m > 25 ? 20 : 0) * (Math.floor(m * 6) % 2)),
      start,
      opts,
    );
    expect(bursty.flat).toBe(true);
    const v = assessGrowth(
      series((_m, i) => 40 * MiB + sawtooth(i), (m) => 40 + Math.floor(m)),
      start,
      opts,
    );
    expect(v.flat).toBe(false);
    expect(v.reason).toMatch(/handles grew from \d+ to \d+/);
  });

  it('ignores growth during warm-up (caches filling, JIT) and gives no verdict without enough samples', () => {
    const warming = assessGrowth(
      series((m, i) => (m < 5 ? 10 * MiB + m * 6 * MiB : 40 * MiB) + sawtooth(i)),
      start,
      opts,
    );
    expect(warming.flat).toBe(true);
    const short = assessGrowth(series(() => 40 * MiB).slice(0, 32), start, opts);
    expect(short.flat).toBe(false);
    expect(short.reason).toMatch(/only 2 samples after warm-up/);
  });
});

describe('process stats from a Prometheus endpoint (scripts/soak/process-stats.ts)', () => {
  it("reads heap, RSS and handles from prom-client's default metrics", async () => {
    const registry = new Registry();
    registry.setDefaultLabels({ service: 'room', replica: 'room-1' }); // as every service's registry does
    collectDefaultMetrics({ register: registry });
    const gauges = readGauges(await registry.metrics());
    expect(gauges.get('nodejs_heap_size_used_bytes')).toBeGreaterThan(MiB);
    expect(gauges.get('process_resident_memory_bytes')).toBeGreaterThan(MiB);
    expect(gauges.get('nodejs_active_handles_total')).toBeGreaterThanOrEqual(0);
  });
});
