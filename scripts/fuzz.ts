/**
 * `npm run fuzz`: random and malformed input to every RPC of the five services and to every BFF
 * route, against the mesh running as separate processes. Prints outcome counts per target and
 * exits 1 if any input produced INTERNAL, UNKNOWN, DATA_LOSS, a 5xx, or a crashed process, each
 * printed with the input that reproduces it.
 *
 *   npm run fuzz -- [--cases N] [--seed S] [--only PATTERN] [--concurrency N] [--parallel N] [--replicas N]
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { runFuzzSession } from './fuzz/session.js';

const say = (line: string) => void process.stdout.write(`fuzz: ${line}\n`);

function positiveInt(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`fuzz: --${name} needs a positive integer (got ${JSON.stringify(raw)})\n`);
    process.exit(2);
  }
  return n;
}

let values: Record<string, string | undefined>;
try {
  ({ values } = parseArgs({
    options: { cases: { type: 'string' }, seed: { type: 'string' }, only: { type: 'string' }, concurrency: { type: 'string' }, parallel: { type: 'string' }, replicas: { type: 'string' } },
    strict: true,
  }) as { values: Record<string, string | undefined> });
} catch (err) {
  process.stderr.write(`fuzz: ${(err as Error).message}\nusage: npm run fuzz -- [--cases N] [--seed S] [--only PATTERN] [--concurrency N] [--parallel N] [--replicas N]\n`);
  process.exit(2);
}

const session = await runFuzzSession({
  seed: values.seed ?? randomBytes(4).toString('hex'),
  cases: positiveInt('cases', values.cases, 10_000),
  only: values.only,
  concurrency: positiveInt('concurrency', values.concurrency, 12),
  parallel: positiveInt('parallel', values.parallel, 4),
  replicas: positiveInt('replicas', values.replicas, 2),
  tolerateOverload: false,
  say,
  bar: process.stdout.isTTY,
});
process.stdout.write(`${session.text}\n`);
process.exit(session.ok ? 0 : 1);
