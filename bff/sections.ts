/**
 * Screen assembly: every section of a screen is one upstream call, all started at once, each with
 * its own deadline inside the request's budget. Critical sections make the screen (a failure is
 * the screen's failure); optional ones are a nicety, so when they fail, time out, are switched off
 * or their upstream's breaker is open they become `null` and are named in `degraded`.
 *
 * Cold start: an optional section's first call to an upstream this process has not called yet
 * pays for the channel (DNS, TCP, TLS, HTTP/2 settings) and often the service's own first read,
 * which does not fit OPTIONAL_DEADLINE_MS on a fresh BFF. That first call gets the rest of the
 * request's budget instead; every later one gets the short deadline. A section that still misses
 * is filled by the micro-cache's early rebuild of degraded screens (microcache.ts).
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

/** Upstreams an optional section has already called (once settled, the channel is warm or known to be failing). */
const calledOnce = new WeakSet<object>();

/**
 * `degraded` lists in which some section ran out of time (a cold channel, a slow upstream): a
 * rebuild moments later is likely to fill it. Sections switched off, behind an open breaker or
 * refused by a down upstream are not retried sooner than the TTL: that would only add load.
 */
const timedOut = new WeakSet<string[]>();

/**
 * Whether a built screen (anything with a `degraded` list from assemble) misses a section that ran
 * out of time. The micro-cache keeps such a screen only briefly and rebuilds it.
 */
export function missesSectionsToRetry(screen: unknown): boolean {
  if (typeof screen !== 'object' || screen === null) return false;
  const degraded = (screen as { degraded?: unknown }).degraded;
  return Array.isArray(degraded) && timedOut.has(degraded as string[]);
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
  let late = 0;
  const optionalRuns = Object.entries(optional).map(async ([name, section]): Promise<[string, unknown]> => {
    if ((section.switch && opts.switches?.isOff(section.switch)) || section.upstream.open) {
      degraded.push(name);
      return [name, null];
    }
    const cold = !calledOnce.has(section.upstream);
    try {
      return [name, await section.run(cold ? budgetEnd : Math.min(Date.now() + opts.optionalDeadlineMs, budgetEnd))];
    } catch (err) {
      if (isGrpcFailure(err) && err.code === Code.DEADLINE_EXCEEDED) late++;
      degraded.push(name);
      return [name, null];
    } finally {
      calledOnce.add(section.upstream);
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
  if (late > 0) timedOut.add(degraded);
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
