/**
 * `npm run room -- <command>`: Room operations.
 *
 *   check              compare Redis with MySQL (room count and version sum); exit 0 when Redis
 *                      holds every room at its latest version, 1 when a backfill is due
 *   backfill [--batch N]
 *                      copy every room from MySQL into Redis (version-checked, safe while the mesh
 *                      runs), with a progress bar on a terminal and a line per second otherwise
 *
 * Uses the service's own settings: MYSQL_URL, MYSQL_DATABASE, REDIS_URL, REDIS_PREFIX. Run it
 * once per region, with that region's REDIS_URL.
 *
 * Unlike the Ledger's CLI this is not a client of the service's API: the Room service has no admin
 * RPC for these (they work on its storage while no replica may be serving it yet), so the CLI is a
 * second entry point of the service, wired like main.ts from the service's own store and sync.
 */
import { SingleBar, Presets } from 'cli-progress';
import { ConfigError, EXIT_CONFIG, kitConfigShape, parseConfig } from '../../kit/config.js';
import { createMysqlPool } from '../../kit/mysql.js';
import { createRedis } from '../../kit/redis.js';
import { roomConfigShape, roomDatabase } from './service.js';
import { MysqlRoomStore } from './store/mysql-rooms.js';
import { RedisRoomCache } from './store/redis-rooms.js';
import { backfill, compare, type BackfillProgress } from './sync.js';

const USAGE = 'usage: npm run room -- check | backfill [--batch N]   (uses MYSQL_URL, MYSQL_DATABASE, REDIS_URL, REDIS_PREFIX)';

function progressReporter(): BackfillProgress & { stop(): void } {
  if (process.stdout.isTTY) {
    const bar = new SingleBar({ format: 'backfill [{bar}] {percentage}% | {value}/{total} rooms | {written} written | eta {eta}s' }, Presets.shades_classic);
    return {
      start: (total) => bar.start(total, 0, { written: 0 }),
      batch: (scanned, written) => bar.update(scanned, { written }),
      stop: () => bar.stop(),
    };
  }
  let total = 0;
  let last = 0;
  return {
    start: (n) => {
      total = n;
      console.log(`backfill: ${n} rooms in MySQL`);
    },
    batch: (scanned, written) => {
      if (Date.now() - last < 1000) return;
      last = Date.now();
      console.log(`backfill: ${scanned}/${total} rooms scanned, ${written} written`);
    },
    stop: () => undefined,
  };
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== 'check' && command !== 'backfill') {
    console.error(USAGE);
    return 2;
  }
  let batch = 500;
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i];
    const value = Number(rest[i + 1]);
    if (command === 'backfill' && flag === '--batch' && Number.isInteger(value) && value >= 1 && value <= 10_000) {
      batch = value;
      i++;
    } else {
      console.error(`unknown or invalid argument ${JSON.stringify(flag)} (--batch takes 1..10000)\n${USAGE}`);
      return 2;
    }
  }
  const config = parseConfig(
    { MYSQL_URL: kitConfigShape.MYSQL_URL, MYSQL_DATABASE: roomConfigShape.MYSQL_DATABASE, REDIS_URL: kitConfigShape.REDIS_URL, REDIS_CLUSTER_NODES: kitConfigShape.REDIS_CLUSTER_NODES, REDIS_PREFIX: kitConfigShape.REDIS_PREFIX },
    process.env,
  );
  const pool = createMysqlPool(config.MYSQL_URL, roomDatabase(config), 4);
  const redis = createRedis(config);
  try {
    const store = new MysqlRoomStore(pool);
    const cache = new RedisRoomCache(redis);
    const verdict = await compare(store, cache);
    const figures = (c: { rooms: number; versionSum: string }) => `${c.rooms} rooms, version sum ${c.versionSum}`;
    if (command === 'check') {
      if (verdict.complete) console.log(`check: Redis is complete (${figures(verdict.mysql)})`);
      else console.log(`check: Redis is INCOMPLETE: MySQL has ${figures(verdict.mysql)}, Redis ${figures(verdict.redis)}; run \`npm run room -- backfill\``);
      return verdict.complete ? 0 : 1;
    }
    const progress = progressReporter();
    const started = Date.now();
    const result = await backfill(store, cache, progress, batch).finally(() => progress.stop());
    const after = await compare(store, cache);
    console.log(
      `backfill: ${result.scanned} rooms scanned, ${result.written} written in ${((Date.now() - started) / 1000).toFixed(1)}s; ` +
        (after.complete ? 'Redis is complete' : `Redis still differs (MySQL ${figures(after.mysql)}, Redis ${figures(after.redis)}): rooms changed meanwhile, run it again`),
    );
    return 0;
  } finally {
    await pool.end();
    redis.disconnect();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof ConfigError ? err.message : `room: ${(err as Error).message}`);
    process.exit(err instanceof ConfigError ? EXIT_CONFIG : 1);
  },
);
