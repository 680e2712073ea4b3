/**
 * Screen assembly: every section of a screen is one upstream call, all started at once, each with
 * its own deadline inside the request's budget. Critical sections make the screen (a failure is
 * the screen's failure); optional ones are a nicety, so when they fail, time out, are switched off
 * or their upstream's breaker is open they become `null` and are named in `degraded`.
 */
import { status as Code } from '@grpc/grpc-js';
import { fromGrpc, HttpError, isGrpcFailure, retryAfterWithJitter } from './errors.js';
import type { SwitchName, Switches } from './switches.js';

export interface Section<T> {
  /** The upstream's name, for error bodies and the breaker check. */
  upstream: { name: string; open: boolean };
  /** Called with the section's absolute deadline. */
  run: (deadline: number) => Promise<T>;
  /** Optional sections name their switch; critical ones have none. */
  switch?: SwitchName;
}

export interface AssembleOptions {
  /** When the request started (ms since the epoch) and how long it may take in all. */
  startedAt: number;
  budgetMs: number;
  /** Deadline of each optional section, capped by the budget. */
  optionalDeadlineMs: number;
  switches: Pick<Switches, 'isOff'> | undefined;
}

type Values<C, O> = { [K in keyof C]: C[K] extends Section<infer T> ? T : never } & { [K in keyof O]: (O[K] extends Section<infer T> ? T : never) | null };

/**
 * Runs the sections and returns their values plus the names of the optional ones that were left
 * out. A critical failure is thrown: as the upstream's own error when it is the client's doing
 * (404 room not found), and as 503 with a jittered Retry-After when the upstream is down or slow.
 */
export async function assemble<C extends Record<string, Section<unknown>>, O extends Record<string, Section<unknown>>>(
  critical: C,
  optional: O,
  opts: AssembleOptions,
): Promise<{ values: Values<C, O>; degraded: string[] }> {
  const budgetEnd = opts.startedAt + opts.budgetMs;
  const degraded: string[] = [];
  const optionalRuns = Object.entries(optional).map(async ([name, section]): Promise<[string, unknown]> => {
    if ((section.switch && opts.switches?.isOff(section.switch)) || section.upstream.open) {
      degraded.push(name);
      return [name, null];
    }
    try {
      return [name, await section.run(Math.min(Date.now() + opts.optionalDeadlineMs, budgetEnd))];
    } catch {
      degraded.push(name);
      return [name, null];
    }
  });
  const criticalRuns = Object.entries(critical).map(async ([name, section]): Promise<[string, unknown]> => {
    try {
      return [name, await section.run(budgetEnd)];
    } catch (err) {
      throw criticalFailure(err, section.upstream.name);
    }
  });
  // Optional runs never reject, so waiting for the critical ones first cannot leave a rejection unhandled.
  const criticalValues = await Promise.all(criticalRuns);
  const optionalValues = await Promise.all(optionalRuns);
  // The order of `degraded` follows the screen, not the order failures happened in.
  const order = Object.keys(optional);
  degraded.sort((a, b) => order.indexOf(a) - order.indexOf(b));
  return { values: Object.fromEntries([...criticalValues, ...optionalValues]) as Values<C, O>, degraded };
}

/** A critical section's failure as the screen's answer. */
function criticalFailure(err: unknown, upstream: string): unknown {
  if (!isGrpcFailure(err)) return err;
  if (err.code === Code.UNAVAILABLE || err.code === Code.DEADLINE_EXCEEDED || err.code === Code.INTERNAL || err.code === Code.UNKNOWN) {
    return new HttpError(
      503,
      { error: { code: 'UNAVAILABLE', message: `${upstream} is ${err.code === Code.DEADLINE_EXCEEDED ? 'too slow' : 'unavailable'} right now; retry later`, upstream } },
      retryAfterWithJitter(),
    );
  }
  return fromGrpc(err, upstream);
}
