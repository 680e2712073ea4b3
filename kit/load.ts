import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { encodeOrca, formatLoad, type CallRates, type LoadSample } from '../lb/load-report.js';

export { formatLoad, LOAD_METADATA_KEY, ORCA_TRAILER_KEY, parseLoad, type CallRates, type LoadSample } from '../lb/load-report.js';


/**
 * CPUs this process may actually use: the cgroup quota when one is set (containers), else the
 * machine's cores. Without this a pod limited to 0.5 CPU on a 32-core node would report 1.5%
 * load while being throttled.
 */
function effectiveCpus(readFile: (path: string) => string = (p) => readFileSync(p, 'utf8')): number {
  const cores = availableParallelism();
  const tryRead = (path: string): string | undefined => {
    try {
      return readFile(path).trim();
    } catch {
      return undefined;
    }
  };
  // cgroup v2: "<quota> <period>" or "max <period>".
  const v2 = tryRead('/sys/fs/cgroup/cpu.max');
  if (v2) {
    const [quota, period] = v2.split(/\s+/);
    if (quota && quota !== 'max' && period && Number(period) > 0) return Math.min(cores, Number(quota) / Number(period));
    return cores;
  }
  // cgroup v1.
  const quota = Number(tryRead('/sys/fs/cgroup/cpu/cpu.cfs_quota_us'));
  const period = Number(tryRead('/sys/fs/cgroup/cpu/cpu.cfs_period_us'));
  if (quota > 0 && period > 0) return Math.min(cores, quota / period);
  return cores;
}


/**
 * Samples CPU and event-loop utilization on a timer so a response only reads two numbers.
 * ELU matters most for Node: a replica whose loop is saturated is overloaded even when the
 * machine's CPUs are not, so the application utilization reported is max(cpu, elu).
 */
export class LoadMonitor {
  private timer: NodeJS.Timeout | undefined;
  private lastCpu = process.cpuUsage();
  private lastWall = performance.now();
  private lastElu: EventLoopUtilization = performance.eventLoopUtilization();
  private current: LoadSample = { cpu: 0, elu: 0 };
  private currentRates: CallRates = { rps: 0, eps: 0 };
  private calls = 0;
  private errors = 0;
  private currentHeader = formatLoad(this.current);
  private currentOrca = encodeOrca(this.current, this.currentRates);
  private readonly cpus: number;

  constructor(private readonly windowMs: number, cpus = effectiveCpus()) {
    this.cpus = cpus;
  }

  start(): this {
    this.timer ??= setInterval(() => this.sample(), this.windowMs).unref();
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Takes a sample now; the timer calls this, tests may too. */
  sample(): LoadSample {
    const now = performance.now();
    const wallMs = now - this.lastWall;
    if (wallMs <= 0) return this.current;
    const cpu = process.cpuUsage(this.lastCpu);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    const elu = performance.eventLoopUtilization(this.lastElu);
    this.lastCpu = process.cpuUsage();
    this.lastWall = now;
    this.lastElu = performance.eventLoopUtilization();
    this.current = { cpu: clamp01(cpuMs / (wallMs * this.cpus)), elu: clamp01(elu.utilization) };
    this.currentRates = { rps: (this.calls * 1000) / wallMs, eps: (this.errors * 1000) / wallMs };
    this.calls = 0;
    this.errors = 0;
    this.currentHeader = formatLoad(this.current);
    this.currentOrca = encodeOrca(this.current, this.currentRates);
    return this.current;
  }

  /**
   * Counts a finished call for the ORCA report's rates. grpc-js's weighted_round_robin weighs an
   * endpoint by rps / utilization and ignores a report without rps, so without this count it
   * silently degrades to plain round robin.
   */
  countCall(failed: boolean): void {
    this.calls++;
    if (failed) this.errors++;
  }

  /** Calls and server-side failures per second over the last window. */
  get rates(): CallRates {
    return this.currentRates;
  }

  get load(): LoadSample {
    return this.current;
  }

  /** The value written under LOAD_METADATA_KEY, formatted once per sample rather than per call. */
  get header(): string {
    return this.currentHeader;
  }

  /**
   * The serialized ORCA report, encoded once per sample. grpc-js's own per-call recorder
   * (`grpc.server_call_metric_recording`) re-parses orca.proto on every call in 1.14.7, which
   * cost ~7 ms of CPU per call in bench:kit; a pre-encoded buffer costs nothing.
   */
  get orcaTrailer(): Buffer {
    return this.currentOrca;
  }
}



function clamp01(x: number): number {
  return Number.isFinite(x) ? Math.min(1, Math.max(0, x)) : 0;
}

