/**
 * `npm run chaos [-- --minutes N --seed S]`: the mesh under a mixed load while replicas are
 * SIGKILLed, NATS restarts, MySQL connections are killed and MySQL is cut off, and Redis pauses;
 * then every money and effect invariant is checked. Exit code 1 if any is broken.
 */
import { runChaos, formatResult } from './chaos/run.js';

function parse(argv: string[]): { minutes: number; seed: number } {
  const out = { minutes: 5, seed: Date.now() % 1_000_000 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = (argv[i] ?? '').split('=', 2) as [string, string | undefined];
    const raw = inline ?? argv[++i];
    const value = Number(raw);
    if ((flag !== '--minutes' && flag !== '--seed') || !Number.isFinite(value) || value <= 0 || (flag === '--seed' && !Number.isInteger(value))) {
      process.stderr.write(`chaos: unknown or bad argument ${JSON.stringify(argv[i - (inline ? 0 : 1)] ?? flag)} ${raw ?? ''}; flags: --minutes N (> 0), --seed S (positive integer)\n`);
      process.exit(2);
    }
    out[flag === '--minutes' ? 'minutes' : 'seed'] = value;
  }
  return out;
}

async function main(): Promise<number> {
  const { minutes, seed } = parse(process.argv.slice(2));
  const log = (line: string) => void process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
  log(`chaos: ${minutes} min, seed ${seed} (repeat with --seed ${seed})`);
  const result = await runChaos({
    durationMs: minutes * 60_000,
    seed,
    rates: { gifts: 15, chat: 8, roomReads: 30, bffReads: 8 },
    faultGapMs: [2000, 4000],
    settleTimeoutMs: 180_000,
    log,
  });
  for (const line of formatResult(result)) process.stdout.write(`${line}\n`);
  return result.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`chaos: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
