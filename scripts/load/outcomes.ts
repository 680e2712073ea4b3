import { percentile } from '../stats.js';
import { isFailure } from './calls.js';

/** The kinds of call the mixed load makes; each is counted on its own. */
export const CALL_KINDS = ['gift.send', 'chat.send', 'room.get', 'room.batchGet', 'room.listLive', 'bff.room', 'bff.rooms'] as const;
export type CallKind = (typeof CALL_KINDS)[number];

/** One finished call, as handed to an observer (the chaos run matches these against its fault windows). */
export interface CallRecord {
  kind: CallKind;
  code: string;
  failed: boolean;
  /** epoch ms */
  startedAt: number;
  endedAt: number;
}

export interface KindStats {
  calls: number;
  failed: number;
  /** calls per outcome code, e.g. {"OK": 812, "UNAVAILABLE": 3} */
  byCode: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** for each code but OK (failures and refusals), its most frequent messages with their counts */
  messages: Record<string, Array<[string, number]>>;
}

/** Latency samples kept per kind: enough for a p99, bounded so an hour-long soak does not grow the generator itself. */
const RESERVOIR = 20_000;
const MESSAGES_PER_CODE = 20;

class KindCounter {
  calls = 0;
  failed = 0;
  maxMs = 0;
  readonly byCode = new Map<string, number>();
  private readonly samples: number[] = [];
  private readonly messages = new Map<string, Map<string, number>>();

  add(code: string, ms: number, random: () => number, message: string): void {
    this.calls++;
    if (isFailure(code)) this.failed++;
    if (code !== 'OK' && !/^HTTP [23]/.test(code)) {
      // Distinct messages per code are few (they name a dependency or a reason, not a request); the cap keeps it so.
      const m = this.messages.get(code) ?? new Map<string, number>();
      this.messages.set(code, m);
      // Ids and figures differ per call (correlation ids, deadlines): without them, like answers group together.
      const text = message.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<id>').replace(/\d+(\.\d+)?/g, '#').slice(0, 160);
      if (m.has(text) || m.size < MESSAGES_PER_CODE) m.set(text, (m.get(text) ?? 0) + 1);
    }
    this.byCode.set(code, (this.byCode.get(code) ?? 0) + 1);
    if (ms > this.maxMs) this.maxMs = ms;
    // Reservoir sampling (Algorithm R): every call has the same chance to be in the sample.
    if (this.samples.length < RESERVOIR) this.samples.push(ms);
    else {
      const j = Math.floor(random() * this.calls);
      if (j < RESERVOIR) this.samples[j] = ms;
    }
  }

  stats(): KindStats {
    const sorted = Float64Array.from(this.samples).sort();
    return {
      calls: this.calls,
      failed: this.failed,
      byCode: Object.fromEntries([...this.byCode].sort((a, b) => b[1] - a[1])),
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
      maxMs: this.maxMs,
      messages: Object.fromEntries([...this.messages].map(([code, m]) => [code, [...m].sort((a, b) => b[1] - a[1]).slice(0, 3)])),
    };
  }
}

/** Outcome counts and latencies per call kind, plus an optional observer of every call. */
export class Outcomes {
  private readonly kinds = new Map<CallKind, KindCounter>(CALL_KINDS.map((k) => [k, new KindCounter()]));

  constructor(
    private readonly random: () => number,
    private readonly observer?: (record: CallRecord) => void,
  ) {}

  record(kind: CallKind, code: string, startedAt: number, message = '', endedAt = Date.now()): void {
    this.kinds.get(kind)?.add(code, endedAt - startedAt, this.random, message);
    this.observer?.({ kind, code, failed: isFailure(code), startedAt, endedAt });
  }

  stats(): Record<CallKind, KindStats> {
    return Object.fromEntries(CALL_KINDS.map((k) => [k, this.kinds.get(k)!.stats()])) as Record<CallKind, KindStats>;
  }
}

/** "gift.send 1,204 calls, 0.4% failed, p50 12 ms, p99 240 ms" for progress lines and reports. */
export function formatKind(kind: CallKind, s: KindStats): string {
  const pct = s.calls === 0 ? '0.0' : ((100 * s.failed) / s.calls).toFixed(2);
  const ms = (v: number) => (Number.isFinite(v) ? `${Math.round(v)} ms` : '-');
  const codes = Object.entries(s.byCode)
    .map(([c, n]) => `${c} ${n}`)
    .join(', ');
  return `${kind.padEnd(14)} ${String(s.calls).padStart(7)} calls  ${pct.padStart(6)}% failed  p50 ${ms(s.p50Ms).padStart(7)}  p99 ${ms(s.p99Ms).padStart(7)}  max ${ms(s.maxMs).padStart(7)}  [${codes}]`;
}
