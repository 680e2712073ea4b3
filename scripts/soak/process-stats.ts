/**
 * Memory and handle counts of one mesh process, read from its Prometheus endpoint. Every process
 * already serves prom-client's default metrics, so the soak needs no inspector, no extra port and
 * no cooperation from the code under test: it sees what a production dashboard would see.
 */
export interface ProcessSample {
  at: number;
  heapUsedBytes: number;
  rssBytes: number;
  /** libuv handles kept alive (sockets, timers, servers): a leak of connections or intervals shows here first */
  handles: number;
}

const GAUGES = {
  heapUsedBytes: 'nodejs_heap_size_used_bytes',
  rssBytes: 'process_resident_memory_bytes',
  handles: 'nodejs_active_handles_total',
} as const;

/**
 * The first sample of each metric in Prometheus text format, by name. The gauges read here carry
 * only the process's own default labels (service, replica), so the first sample is the only one.
 */
export function readGauges(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match?.[1] || !match[2] || values.has(match[1])) continue;
    const value = Number(match[2]);
    if (Number.isFinite(value)) values.set(match[1], value);
  }
  return values;
}

/**
 * One sample, or undefined when the process does not answer (killed, restarting, or too busy to
 * answer within the deadline): a gap in the series, not a zero.
 */
export async function sampleProcess(metricsUrl: string, timeoutMs = 3_000): Promise<ProcessSample | undefined> {
  let text: string;
  try {
    const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(timeoutMs) });
    text = await res.text();
    if (!res.ok) return undefined;
  } catch {
    return undefined;
  }
  const gauges = readGauges(text);
  const sample: ProcessSample = { at: Date.now(), heapUsedBytes: NaN, rssBytes: NaN, handles: NaN };
  for (const [field, name] of Object.entries(GAUGES) as Array<[keyof typeof GAUGES, string]>) {
    const value = gauges.get(name);
    if (value === undefined) return undefined;
    sample[field] = value;
  }
  return sample;
}
