import type { ProcessSample } from './process-stats.js';

/**
 * Whether a process's heap and handles stayed flat after warm-up.
 *
 * Heap used swings by tens of megabytes between collections, so single samples say little. What a
 * leak moves is the floor: the lowest heap seen over a stretch of time, just after a collection.
 * The floor over the first third of the measured period is compared with the floor over the last
 * third; a leak of any steady rate raises the second. Handles are judged the same way: open
 * client connections come and go with the load's concurrency, but a leaked socket or timer never
 * goes away, so it raises the lowest count seen.
 */
export interface GrowthOptions {
  warmupMs: number;
  /** heap floor growth tolerated as noise: the larger of these two */
  heapToleranceBytes: number;
  heapToleranceRatio: number;
  /** growth of the lowest handle count tolerated: the larger of these two */
  handleTolerance: number;
  handleToleranceRatio: number;
}

export const DEFAULT_GROWTH: Omit<GrowthOptions, 'warmupMs'> = {
  heapToleranceBytes: 4 * 1024 * 1024,
  heapToleranceRatio: 0.1,
  handleTolerance: 5,
  handleToleranceRatio: 0.1,
};

export interface GrowthVerdict {
  /** samples after warm-up; too few make no verdict */
  samples: number;
  heapFloorStart: number;
  heapFloorEnd: number;
  /** least-squares slope of the per-minute heap floors, for the report */
  heapSlopePerHour: number;
  handlesStart: number;
  handlesEnd: number;
  rssEnd: number;
  flat: boolean;
  /** why not flat, or why no verdict */
  reason: string | undefined;
}

const MIN_SAMPLES = 6;

export function assessGrowth(series: readonly ProcessSample[], startedAt: number, opts: GrowthOptions): GrowthVerdict {
  const measured = series.filter((s) => s.at >= startedAt + opts.warmupMs);
  const empty: GrowthVerdict = { samples: measured.length, heapFloorStart: NaN, heapFloorEnd: NaN, heapSlopePerHour: NaN, handlesStart: NaN, handlesEnd: NaN, rssEnd: NaN, flat: false, reason: undefined };
  if (measured.length < MIN_SAMPLES) return { ...empty, reason: `only ${measured.length} samples after warm-up (need ${MIN_SAMPLES})` };
  const from = measured[0]?.at ?? startedAt;
  const to = measured[measured.length - 1]?.at ?? from;
  const third = (to - from) / 3;
  const first = measured.filter((s) => s.at <= from + third);
  const last = measured.filter((s) => s.at >= to - third);
  const heapFloorStart = Math.min(...first.map((s) => s.heapUsedBytes));
  const heapFloorEnd = Math.min(...last.map((s) => s.heapUsedBytes));
  const handlesStart = Math.min(...first.map((s) => s.handles));
  const handlesEnd = Math.min(...last.map((s) => s.handles));
  const heapAllowed = Math.max(opts.heapToleranceBytes, heapFloorStart * opts.heapToleranceRatio);
  const handlesAllowed = Math.max(opts.handleTolerance, handlesStart * opts.handleToleranceRatio);
  const reasons: string[] = [];
  if (heapFloorEnd - heapFloorStart > heapAllowed) reasons.push(`heap floor grew ${mib(heapFloorEnd - heapFloorStart)} MiB (noise allowance ${mib(heapAllowed)} MiB)`);
  if (handlesEnd - handlesStart > handlesAllowed) reasons.push(`handles grew from ${handlesStart} to ${handlesEnd}`);
  return {
    samples: measured.length,
    heapFloorStart,
    heapFloorEnd,
    heapSlopePerHour: floorSlopePerHour(measured),
    handlesStart,
    handlesEnd,
    rssEnd: measured[measured.length - 1]?.rssBytes ?? NaN,
    flat: reasons.length === 0,
    reason: reasons.length > 0 ? reasons.join('; ') : undefined,
  };
}

/** Slope of the heap floor per minute-long window, scaled to an hour. */
function floorSlopePerHour(samples: readonly ProcessSample[]): number {
  const windows = new Map<number, number>();
  for (const s of samples) {
    const minute = Math.floor(s.at / 60_000);
    windows.set(minute, Math.min(windows.get(minute) ?? Infinity, s.heapUsedBytes));
  }
  const points = [...windows].map(([minute, floor]) => ({ x: minute / 60, y: floor }));
  if (points.length < 2) return 0;
  const mx = points.reduce((a, p) => a + p.x, 0) / points.length;
  const my = points.reduce((a, p) => a + p.y, 0) / points.length;
  const sxx = points.reduce((a, p) => a + (p.x - mx) ** 2, 0);
  const sxy = points.reduce((a, p) => a + (p.x - mx) * (p.y - my), 0);
  return sxx === 0 ? 0 : sxy / sxx;
}

export function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}
