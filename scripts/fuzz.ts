/**
 * `npm run fuzz`: random and malformed input to every RPC of the five services and to every BFF
 * route, against the mesh running as separate processes. Every gRPC case carries a caller token:
 * a real one, none, or (in 'identity' cases) an expired, forged, wrong-audience or garbage one
 * (scripts/fuzz/grpc-identity.ts). Prints outcome counts per target and exits 1 if any input
 * produced INTERNAL, UNKNOWN, DATA_LOSS, a 5xx, or a crashed process, or if a credential that must
 * be refused got any answer but UNAUTHENTICATED (or the transport's own), each printed with the
 * input that reproduces it.
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

const USAGE = `usage: npm run fuzz -- [--cases N] [--seed S] [--only PATTERN] [--concurrency N] [--parallel N] [--replicas N]
  --cases N         cases per target (default 10000)
  --seed S          the run's seed (default random); a run prints it, and the same seed gives the same cases
  --only PATTERN    only targets whose name contains PATTERN or matches it as a regular expression
                    (e.g. 'LedgerService', 'POST /v1', '^livemesh\\.gift')
  --concurrency N   cases in flight per target (default 12)
  --parallel N      targets fuzzed at the same time (default 4)
  --replicas N      replicas per gRPC service (default 2)
Every gRPC case carries a caller token (a real one, none, or an expired, forged, wrong-audience or
garbage one: 'identity' cases). Exit status 1 if any input produced INTERNAL, UNKNOWN, DATA_LOSS, a
5xx or a crashed process, or if a credential that must be refused was not (UNAUTHENTICATED).`;

let values: Record<string, string | boolean | undefined>;
try {
  ({ values } = parseArgs({
    options: {
      cases: { type: 'string' },
      seed: { type: 'string' },
      only: { type: 'string' },
      concurrency: { type: 'string' },
      parallel: { type: 'string' },
      replicas: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  }) as { values: Record<string, string | boolean | undefined> });
} catch (err) {
  process.stderr.write(`fuzz: ${(err as Error).message}\n${USAGE}\n`);
  process.exit(2);
}
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const str = (v: string | boolean | undefined): string | undefined => (typeof v === 'string' ? v : undefined);

const session = await runFuzzSession({
  seed: str(values.seed) ?? randomBytes(4).toString('hex'),
  cases: positiveInt('cases', str(values.cases), 10_000),
  only: str(values.only),
  concurrency: positiveInt('concurrency', str(values.concurrency), 12),
  parallel: positiveInt('parallel', str(values.parallel), 4),
  replicas: positiveInt('replicas', str(values.replicas), 2),
  tolerateOverload: false,
  say,
  bar: process.stdout.isTTY,
});
process.stdout.write(`${session.text}\n`);
process.exit(session.ok ? 0 : 1);
