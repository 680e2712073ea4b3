import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDevKeys } from '../../scripts/credentials.js';
import { ensureInfra, infraUrlsFromEnv } from '../../scripts/infra.js';
import { repoRoot } from '../../kit/paths.js';

/**
 * Runs once before all test files: makes sure MariaDB, Redis and NATS answer (starting private
 * instances under .data/ when only the binaries are installed), with the same rule as `npm start`:
 * a MYSQL_URL, REDIS_URL or NATS_URL set explicitly must answer, and is never replaced by a private one.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const root = repoRoot();
  for (const built of ['gen/descriptor.binpb', 'dist/services/room/main.js']) {
    if (!existsSync(join(root, built))) throw new Error(`${built} is missing: run \`npm test\` (it builds first) or \`npm run build\``);
  }
  ensureDevKeys(undefined, (line) => console.log(line));
  const infra = await ensureInfra(infraUrlsFromEnv(), { dataDir: join(root, '.data'), log: (line) => console.log(line) });
  return () => infra.stop();
}
