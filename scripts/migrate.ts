import { existsSync, readdirSync } from 'node:fs';
import { kitConfigShape, parseConfig, ConfigError, EXIT_CONFIG } from '../kit/config.js';
import { migrate } from '../kit/migrate.js';
import { databaseInUrl } from '../kit/mysql.js';
import { fromRoot } from '../kit/paths.js';

/**
 * `npm run migrate -- <service>`: applies a service's migrations by hand, for operators who want
 * schema changes before a deploy rather than at the first replica's start.
 */
const services = readdirSync(fromRoot('services')).filter((s) => existsSync(fromRoot('services', s, 'migrations')));
const name = process.argv[2];
if (!name || !services.includes(name)) {
  console.error(`usage: npm run migrate -- <service>\n  services with migrations: ${services.join(', ')}\n  uses MYSQL_URL and MYSQL_DATABASE (default livemesh_<service>)`);
  process.exit(2);
}
try {
  const { MYSQL_URL } = parseConfig({ MYSQL_URL: kitConfigShape.MYSQL_URL });
  const database = process.env.MYSQL_DATABASE || databaseInUrl(MYSQL_URL) || `livemesh_${name}`;
  const result = await migrate({ url: MYSQL_URL, database, dir: fromRoot('services', name, 'migrations'), log: (l) => console.log(l) });
  console.log(`migrate: ${result.applied.length} applied, ${result.alreadyApplied} already there`);
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : `migrate failed: ${(err as Error).message}`);
  process.exit(err instanceof ConfigError ? EXIT_CONFIG : 1);
}
