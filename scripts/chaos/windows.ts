import type { CallKind, CallRecord } from '../load/index.js';
import type { Check } from './invariants.js';
import type { FaultRecord } from './faults.js';

const READ_KINDS: readonly CallKind[] = ['room.get', 'room.batchGet', 'room.listLive', 'bff.room', 'bff.rooms'];

/** How the clients fared around one fault. */
export interface FaultImpact {
  fault: FaultRecord;
  /** calls that ended failed between the fault's start and 5 s after its end (or the next fault's start, if sooner) */
  failedCalls: number;
  calls: number;
  /**
   * From the fault's end until every kind of call that failed during it has succeeded again (a
   * call started after the end); 0 when nothing failed; undefined when some kind never did.
   */
  recoveryMs: number | undefined;
}

export function faultImpacts(faults: FaultRecord[], calls: CallRecord[]): FaultImpact[] {
  return faults.map((fault, i) => {
    // A window never reaches into the next fault, so each failure is blamed on one fault only.
    const until = Math.min(fault.endedAt + 5000, faults[i + 1]?.startedAt ?? Infinity);
    const around = calls.filter((c) => c.endedAt >= fault.startedAt && c.endedAt <= until);
    const failedKinds = new Set(around.filter((c) => c.failed).map((c) => c.kind));
    let recoveryMs: number | undefined = 0;
    for (const kind of failedKinds) {
      const first = calls.find((c) => c.kind === kind && !c.failed && c.startedAt >= fault.endedAt);
      if (!first) recoveryMs = undefined;
      else if (recoveryMs !== undefined) recoveryMs = Math.max(recoveryMs, first.endedAt - fault.endedAt);
    }
    return { fault, failedCalls: around.filter((c) => c.failed).length, calls: around.length, recoveryMs };
  });
}

/**
 * Room reads (gRPC and the BFF's room screens) that started and ended while MySQL was cut off.
 * Reads never touch MySQL, so they must keep being served: at least one, and ideally all.
 */
export function readsDuringMysqlCuts(faults: FaultRecord[], calls: CallRecord[]): Check {
  const cuts = faults.filter((f) => f.kind === 'mysql-cut');
  const inside = calls.filter((c) => READ_KINDS.includes(c.kind) && cuts.some((f) => c.startedAt >= f.startedAt && c.endedAt <= f.endedAt));
  const ok = inside.filter((c) => !c.failed).length;
  const cutMs = cuts.reduce((t, f) => t + (f.endedAt - f.startedAt), 0);
  const pct = inside.length === 0 ? 0 : (100 * ok) / inside.length;
  const details = [`${cuts.length} MySQL cuts, ${(cutMs / 1000).toFixed(1)} s in all: ${ok} of ${inside.length} room reads inside them served (${pct.toFixed(2)}%)`];
  const byKind = READ_KINDS.map((k) => {
    const mine = inside.filter((c) => c.kind === k);
    return `${k} ${mine.filter((c) => !c.failed).length}/${mine.length}`;
  });
  details.push(byKind.join(', '));
  const violations: string[] = [];
  if (cuts.length === 0) violations.push('no MySQL cut happened: nothing to check');
  else if (ok === 0) violations.push('no room read was served while MySQL was cut off');
  // Failed reads are listed for the record; the invariant is that reads were served at all.
  for (const c of inside.filter((x) => x.failed).slice(0, 10)) details.push(`  ${c.kind} failed with ${c.code}, ${c.startedAt - (cuts.find((f) => c.startedAt >= f.startedAt)?.startedAt ?? 0)} ms into a cut`);
  return { name: 'room reads served during the MySQL interruption', holds: violations.length === 0, details, violations };
}
