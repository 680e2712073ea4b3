/**
 * `npm run soak -- --minutes N`: the whole mesh as separate processes under a steady mixed load,
 * sampling every process's heap, RSS and handle count, and judging at the end whether each stayed
 * flat after warm-up. Leaks in a long-running service are slow: a cache without a bound, a
 * listener added per request, a timer per stream never cleared. None of them fails a test; all of
 * them kill a replica after a few days. This run is where they show.
 *
 * Exit code: 0 when every process stayed flat and none crashed, 1 otherwise, 130 on Ctrl-C (the
 * report so far is still printed).
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isolate } from './isolation.js';
import { startMesh, type Mesh, type MeshProcess } from './mesh.js';
import { CALL_KINDS, formatKind, startLoad, type Load, type LoadRates } from './load/index.js';
import { assessGrowth, DEFAULT_GROWTH, mib, type GrowthVerdict } from './soak/growth.js';
import { sampleProcess, type ProcessSample } from './soak/process-stats.js';

/** A steady, everyday mix: gifts are the rare expensive call, reads the common cheap one. */
const BASE_RATES: LoadRates = { gifts: 10, chat: 30, roomReads: 120, bffReads: 40 };

interface SoakOptions {
  minutes: number;
  warmupMinutes: number;
  intervalS: number;
  scale: number;
  seed: number;
  samplesFile: string | undefined;
}

function options(): SoakOptions {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '10' },
      warmup: { type: 'string' },
      interval: { type: 'string', default: '5' },
      samples: { type: 'string' },
      scale: { type: 'string', default: '1' },
      seed: { type: 'string', default: String(Date.now() % 100_000) },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    say('usage: npm run soak -- [--minutes 10] [--warmup M (default a quarter of the run, at most 5)] [--interval 5 (s between samples)] [--samples FILE (every sample as CSV)] [--scale 1 (load multiplier)] [--seed S]');
    process.exit(0);
  }
  const num = (name: string, raw: string | undefined, min: number, max: number): number => {
    const v = Number(raw);
    if (!Number.isFinite(v) || v < min || v > max) {
      say(`--${name} must be a number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
      process.exit(2);
    }
    return v;
  };
  const minutes = num('minutes', values.minutes, 1, 24 * 60);
  return {
    minutes,
    warmupMinutes: values.warmup === undefined ? Math.min(5, minutes / 4) : num('warmup', values.warmup, 0, minutes - 0.5),
    intervalS: num('interval', values.interval, 1, 300),
    scale: num('scale', values.scale, 0.01, 100),
    seed: num('seed', values.seed, 0, Number.MAX_SAFE_INTEGER),
    samplesFile: values.samples,
  };
}

function say(line: string): void {
  process.stdout.write(`[soak] ${line}\n`);
}

function clock(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function metricsUrl(p: MeshProcess): string | undefined {
  return p.metricsPort === undefined ? undefined : `http://127.0.0.1:${p.metricsPort}/metrics`;
}

/** Samples every process at once, so one slow answer does not skew the others' timestamps. */
async function sampleAll(mesh: Mesh, series: Map<string, ProcessSample[]>): Promise<void> {
  await Promise.all(
    mesh.processes.map(async (p) => {
      const url = metricsUrl(p);
      const sample = url ? await sampleProcess(url) : undefined;
      if (sample) series.get(p.name)?.push(sample);
    }),
  );
}

function latestTable(mesh: Mesh, series: Map<string, ProcessSample[]>): string[] {
  const lines = [`  ${'process'.padEnd(10)} ${'heap MiB'.padStart(9)} ${'rss MiB'.padStart(8)} ${'handles'.padStart(8)}`];
  for (const p of mesh.processes) {
    const last = series.get(p.name)?.at(-1);
    lines.push(last ? `  ${p.name.padEnd(10)} ${mib(last.heapUsedBytes).padStart(9)} ${mib(last.rssBytes).padStart(8)} ${String(last.handles).padStart(8)}` : `  ${p.name.padEnd(10)} (no sample)`);
  }
  return lines;
}

function verdictTable(mesh: Mesh, verdicts: Map<string, GrowthVerdict>): string[] {
  const head = `  ${'process'.padEnd(10)} ${'heap floor start→end MiB'.padStart(25)} ${'slope MiB/h'.padStart(12)} ${'handles start→end'.padStart(18)} ${'rss MiB'.padStart(8)}  verdict`;
  const lines = [head];
  for (const p of mesh.processes) {
    const v = verdictOf(verdicts, p.name);
    const heap = `${mib(v.heapFloorStart)} → ${mib(v.heapFloorEnd)}`;
    const handles = `${v.handlesStart} → ${v.handlesEnd}`;
    const verdict = v.flat ? 'flat' : `NOT FLAT: ${v.reason}`;
    lines.push(`  ${p.name.padEnd(10)} ${heap.padStart(25)} ${mib(v.heapSlopePerHour).padStart(12)} ${handles.padStart(18)} ${mib(v.rssEnd).padStart(8)}  ${verdict}`);
  }
  return lines;
}

/** One row per sample, so a run's curves can be plotted or re-judged later. */
function writeSamples(file: string, series: Map<string, ProcessSample[]>, startedAt: number): void {
  const rows = ['process,seconds,heap_used_bytes,rss_bytes,handles'];
  for (const [name, samples] of series) {
    for (const s of samples) rows.push(`${name},${((s.at - startedAt) / 1000).toFixed(1)},${s.heapUsedBytes},${s.rssBytes},${s.handles}`);
  }
  writeFileSync(file, `${rows.join('\n')}\n`);
}

function verdictOf(verdicts: Map<string, GrowthVerdict>, name: string): GrowthVerdict {
  const v = verdicts.get(name);
  if (!v) throw new Error(`no verdict for ${name}`);
  return v;
}

async function main(): Promise<number> {
  const opts = options();
  const rates: LoadRates = {
    gifts: BASE_RATES.gifts * opts.scale,
    chat: BASE_RATES.chat * opts.scale,
    roomReads: BASE_RATES.roomReads * opts.scale,
    bffReads: BASE_RATES.bffReads * opts.scale,
  };
  say(`${opts.minutes} min, warm-up ${opts.warmupMinutes} min, a sample every ${opts.intervalS} s, seed ${opts.seed}`);
  say(`load per second: ${rates.gifts} gift sends, ${rates.chat} chat messages, ${rates.roomReads} room reads, ${rates.bffReads} BFF reads`);

  const iso = isolate('soak');
  let mesh: Mesh | undefined;
  let load: Load | undefined;
  let interrupted = false;
  let wake: (() => void) | undefined;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    say('interrupted: stopping the load and reporting what was sampled so far (again to quit at once)');
    wake?.();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  try {
    say('starting the mesh (2 replicas of every service and the BFF)…');
    mesh = await startMesh({ env: { ...iso.env, LOG_LEVEL: 'warn' }, onLine: (p, line, stream) => stream === 'stderr' && process.stderr.write(`${p.name} | ${line}\n`) });
    say(`mesh up: ${mesh.processes.length} processes`);
    load = await startLoad(mesh, { rates, seed: opts.seed, log: say });
    const startedAt = Date.now();
    const endAt = startedAt + opts.minutes * 60_000;
    const series = new Map<string, ProcessSample[]>(mesh.processes.map((p) => [p.name, []]));
    let nextReport = startedAt + 60_000;
    while (!interrupted && Date.now() < endAt) {
      await sampleAll(mesh, series);
      if (Date.now() >= nextReport) {
        nextReport += 60_000;
        const phase = Date.now() - startedAt < opts.warmupMinutes * 60_000 ? ' (warm-up)' : '';
        const stats = load.snapshot();
        say(`${clock(Date.now() - startedAt)} / ${clock(endAt - startedAt)}${phase}: ${stats.gifts.ok} gifts paid, ${CALL_KINDS.reduce((n, k) => n + stats.kinds[k].calls, 0)} calls`);
        for (const line of latestTable(mesh, series)) say(line);
      }
      await pause(Math.max(0, Math.min(opts.intervalS * 1000, endAt - Date.now())));
    }
    await sampleAll(mesh, series);
    const report = await load.stop({ drainMs: 10_000 });
    load = undefined;

    if (opts.samplesFile) {
      writeSamples(opts.samplesFile, series, startedAt);
      say(`samples written to ${opts.samplesFile}`);
    }
    say('load:');
    for (const kind of CALL_KINDS) say(`  ${formatKind(kind, report.kinds[kind])}`);
    const warmupMs = opts.warmupMinutes * 60_000;
    const verdicts = new Map(mesh.processes.map((p) => [p.name, assessGrowth(series.get(p.name) ?? [], startedAt, { ...DEFAULT_GROWTH, warmupMs })]));
    say(`memory and handles after warm-up (${clock(Date.now() - startedAt - warmupMs)} measured):`);
    for (const line of verdictTable(mesh, verdicts)) say(line);
    const crashed = mesh.crashed();
    if (crashed.length > 0) say(`CRASHED: ${crashed.map((p) => `${p.name} (${JSON.stringify(p.exits)})`).join(', ')}`);
    const growing = [...verdicts].filter(([, v]) => !v.flat).map(([name]) => name);
    if (interrupted) return 130;
    if (crashed.length > 0 || growing.length > 0) {
      say(`FAILED: ${[...crashed.map((p) => `${p.name} crashed`), ...growing.map((n) => `${n} not flat`)].join(', ')}`);
      return 1;
    }
    say(`every process stayed flat after warm-up; no crashes`);
    return 0;
  } finally {
    await load?.stop({ drainMs: 1_000 });
    await mesh?.stop();
    await iso.cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
