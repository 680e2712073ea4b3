/**
 * The fuzzing loop, independent of transport: for each target, N cases from its own seeded stream,
 * a fixed number in flight, every outcome counted under its status, every failure kept with the
 * input that reproduces it. Between targets it asks whether any process died, and blames the
 * target whose cases were in flight.
 */
import { Rng } from '../random.js';

/** A thing to fuzz: a gRPC method or a BFF route. */
export interface Target<C> {
  name: string;
  kind: 'rpc' | 'http';
  /** Builds a case from the target's random stream. */
  make(rng: Rng): C;
  /** Sends it: the status it is counted under, and why it is a failure (if it is one). */
  send(c: C): Promise<{ label: string; failure?: string; detail?: string }>;
  /** Text that lets a person send the same input again. */
  reproduce(c: C): string;
}

export interface Failure {
  target: string;
  why: string;
  reproducer: string;
}

export interface TargetReport {
  name: string;
  kind: 'rpc' | 'http';
  cases: number;
  seconds: number;
  /** Outcomes per status label (gRPC code name or HTTP status). */
  counts: Map<string, number>;
  /** One message seen per status label (gRPC details, HTTP error message), to tell the causes apart. */
  samples: Map<string, string>;
  failures: number;
}

export interface RunOptions {
  seed: string;
  cases: number;
  /** Cases in flight per target. */
  concurrency: number;
  /** Targets fuzzed at the same time (default 1). */
  parallel?: number;
  /** Failures kept per target (all are counted). */
  keepFailures?: number;
  /** Names of processes that died unasked since the last call; checked after every target. */
  newCrashes?: () => string[];
  onTargetStart?: (index: number, total: number, name: string) => void;
  onCase?: () => void;
  onTargetDone?: (report: TargetReport) => void;
}

export interface RunResult {
  reports: TargetReport[];
  failures: Failure[];
  crashes: Array<{ process: string; target: string; suspects: string[] }>;
}

const SUSPECTS = 10;

export async function runTargets(targets: Array<Target<unknown>>, opts: RunOptions): Promise<RunResult> {
  const result: RunResult = { reports: [], failures: [], crashes: [] };
  // Several targets at once: a method bound by row locks or a slow dependency (StartLive, CheckInvariants)
  // then overlaps with cheap ones instead of holding the whole run up.
  let nextTarget = 0;
  const lane = async () => {
    while (nextTarget < targets.length) {
      const index = nextTarget++;
      await runOne(targets[index] as Target<unknown>, index);
    }
  };
  const runOne = async (target: Target<unknown>, index: number) => {
    opts.onTargetStart?.(index, targets.length, target.name);
    const rng = new Rng(`${opts.seed}:${target.name}`);
    const counts = new Map<string, number>();
    const samples = new Map<string, string>();
    const recent: string[] = [];
    let made = 0;
    let failures = 0;
    const started = performance.now();
    const worker = async () => {
      while (made < opts.cases) {
        made++;
        const c = target.make(rng);
        recent.push(target.reproduce(c));
        if (recent.length > SUSPECTS) recent.shift();
        let outcome: { label: string; failure?: string; detail?: string };
        try {
          outcome = await target.send(c);
        } catch (err) {
          outcome = { label: 'CLIENT_ERROR', failure: `the fuzzer itself failed sending this case: ${(err as Error).stack ?? String(err)}` };
        }
        counts.set(outcome.label, (counts.get(outcome.label) ?? 0) + 1);
        if (outcome.detail && !samples.has(outcome.label)) samples.set(outcome.label, outcome.detail.slice(0, 200));
        if (outcome.failure !== undefined) {
          failures++;
          if (failures <= (opts.keepFailures ?? 5)) result.failures.push({ target: target.name, why: outcome.failure, reproducer: target.reproduce(c) });
        }
        opts.onCase?.();
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, opts.concurrency) }, worker));
    const report: TargetReport = { name: target.name, kind: target.kind, cases: made, seconds: (performance.now() - started) / 1000, counts, samples, failures };
    for (const process of opts.newCrashes?.() ?? []) {
      result.crashes.push({ process, target: target.name, suspects: [...recent] });
      report.failures++;
    }
    result.reports[index] = report;
    opts.onTargetDone?.(report);
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.parallel ?? 1) }, lane));
  return result;
}
