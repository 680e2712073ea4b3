/**
 * Figures the tooling measures with: percentiles of a latency sample, and a process's CPU time
 * from /proc. Shared by the benchmarks, the load generator and the soak run.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** The `q` quantile (0..1) of an ascending sample, nearest rank; NaN for an empty one. */
export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

/** Clock ticks per second, the unit of /proc's CPU times. */
export const CLK_TCK = (() => {
  const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(out.stdout?.trim());
  return Number.isInteger(n) && n > 0 ? n : 100;
})();

/** utime + stime of a process, in seconds (fields 14 and 15 of /proc/<pid>/stat). */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may contain spaces: count from after it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}
