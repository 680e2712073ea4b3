import { Counter, Gauge } from 'prom-client';
import { z } from 'zod';
import { RoomServiceService } from '../../gen/ts/livemesh/room/v1/room.js';
import { int, onOff, port } from '../../kit/config.js';
import { isDependencyUnavailable } from '../../kit/grpc-errors.js';
import type { Logger } from '../../kit/logger.js';
import { migrate } from '../../kit/migrate.js';
import { createMysqlPool, databaseInUrl } from '../../kit/mysql.js';
import { connectNats } from '../../kit/nats.js';
import { ensureWhenStreamUp } from '../../kit/streams.js';
import { fromRoot } from '../../kit/paths.js';
import { connectRedis } from '../../kit/redis.js';
import type { ServiceConfig, ServiceHost } from '../../kit/server.js';
import { VersionedCache } from '../../kit/versioned-cache.js';
import { roomHandlers, type RoomUseCases } from './handlers.js';
import { HotRooms, Presence } from './presence.js';
import { RoomReader } from './reads.js';
import type { RoomRecord } from './rooms.js';
import { backfill, compare } from './sync.js';
import { GrpcGiftGroups } from './store/grpc-gift.js';
import { MysqlRoomStore } from './store/mysql-rooms.js';
import { ensureRoomStream, NatsRoomEvents, runRegionRefresher, watchRoomChanges } from './store/nats-events.js';
import { RedisPresence, RedisRoomCache } from './store/redis-rooms.js';
import { RoomWriter } from './writes.js';

/** Room's own settings, on top of the kit's (REGION and REDIS_URL name the region and its Redis). */
export const roomConfigShape = {
  /** Room listens on 50051 unless told otherwise (second local replica: 50151). */
  PORT: port(50051),
  /** Database for rooms; defaults to the one in MYSQL_URL's path, else livemesh_room. */
  MYSQL_DATABASE: z.string().regex(/^[A-Za-z0-9_]{1,64}$/, { error: 'must be 1-64 letters, digits or underscores' }).optional(),
  /** How long a replica serves a room from memory before asking Redis again; change events update it sooner. */
  ROOM_CACHE_TTL_MS: int(1000, 5000, 3000),
  /** Rooms kept in memory per replica. */
  ROOM_CACHE_MAX: int(100, 1_000_000, 10_000),
  /** How often the hot list is recomputed. */
  HOT_REFRESH_MS: int(500, 60_000, 3000),
  /** A viewer session not re-entered for this long stops counting as online. */
  ONLINE_SESSION_TTL_MS: int(60_000, 86_400_000, 1_800_000),
  /** Compare Redis with MySQL at start-up and backfill when Redis is incomplete. */
  ROOM_STARTUP_CHECK: onOff('on'),
  /**
   * The Gift service, asked by AssignGiftGroup whether the group exists. Empty: the check is
   * skipped (logged at start-up), so Room alone still runs; the mesh, Compose and Kubernetes set it.
   */
  GIFT_ADDR: z.string().regex(/^\S*$/, { error: 'must be a gRPC target without spaces (host:port, a comma-separated list, or a DNS name)' }).default(''),
};

export type RoomConfig = ServiceConfig<typeof roomConfigShape>;

export const roomDatabase = (config: Pick<RoomConfig, 'MYSQL_DATABASE' | 'MYSQL_URL'>) => config.MYSQL_DATABASE ?? databaseInUrl(config.MYSQL_URL) ?? 'livemesh_room';

/**
 * Connects Room's dependencies and registers it on the host.
 *
 * MySQL is needed only for writes, so a replica starts without it (a MySQL outage during a big
 * event must not stop new replicas from serving viewers): the migration and the Redis
 * completeness check are skipped with a warning, and writes answer UNAVAILABLE until it is back.
 */
export async function wireRoom(host: ServiceHost, config: RoomConfig): Promise<RoomUseCases> {
  const log = host.log;
  const database = roomDatabase(config);
  const redis = await connectRedis(config, log);
  host.onClose('redis', () => redis.quit());
  const nats = await connectNats(config.NATS_URL, `room-${config.REPLICA}`, log, { replicas: config.NATS_REPLICAS });
  host.onClose('nats', () => nats.drain());
  const roomStream = await ensureWhenStreamUp('stream ROOM_CHANGES', () => ensureRoomStream(nats, config.NATS_PREFIX), log);
  host.onClose('room stream set-up', () => roomStream.stop());

  const store = new MysqlRoomStore(createMysqlPoolClosedBy(host, config, database));
  const cache = new RedisRoomCache(redis);
  const local = new VersionedCache<RoomRecord>((id) => cache.get(id), { max: config.ROOM_CACHE_MAX, ttlMs: config.ROOM_CACHE_TTL_MS });
  const reader = new RoomReader(local, cache);
  exportCacheMetrics(host, local);
  const presenceStore = new RedisPresence(redis);
  const hot = new HotRooms(presenceStore, reader, (err) => log.warn({ err }, 'hot list refresh failed; serving the previous list'));
  const giftGroups = config.GIFT_ADDR ? new GrpcGiftGroups(config.GIFT_ADDR, host.credentials) : undefined;
  if (giftGroups) host.onClose('gift client', () => giftGroups.close());
  else log.info('GIFT_ADDR unset: AssignGiftGroup stores gift group ids without checking that they exist');
  const writer = new RoomWriter(store, cache, new NatsRoomEvents(nats, config.NATS_PREFIX, config.REGION), giftGroups, (err, roomId) =>
    log.warn({ err, roomId }, 'room write saved in MySQL but not yet published everywhere'),
  );

  // The refresher starts before the completeness check, so no change can fall between the two.
  const watcher = watchRoomChanges(nats, config.NATS_PREFIX, (room) => local.offer(room.roomId, room), log);
  host.onClose('room change watch', () => watcher.stop());
  const refresher = await runRegionRefresher(nats, config.NATS_PREFIX, config.REGION, (room) => cache.put(room), log);
  host.onClose('region refresher', () => refresher.stop());

  if (await prepareMysql(config, database, log)) {
    if (config.ROOM_STARTUP_CHECK === 'on') await ensureRedisComplete(store, cache, log);
  }
  hot.start(config.HOT_REFRESH_MS);
  host.onClose('hot list', () => hot.stop());

  const useCases = { writer, reader, presence: new Presence(reader, presenceStore, config.ONLINE_SESSION_TTL_MS), hot };
  host.addService(RoomServiceService, roomHandlers(useCases, log));
  return useCases;
}

/** Local-cache figures on /metrics: the hit ratio during a spike is the first thing to check. */
function exportCacheMetrics(host: ServiceHost, local: VersionedCache<RoomRecord>): void {
  const registers = [host.metrics.registry];
  new Counter({
    name: 'room_local_cache_reads_total',
    help: 'Room reads by outcome: hit (memory), miss (waited for Redis), load (Redis reads actually made; misses share loads)',
    labelNames: ['outcome'],
    registers,
    collect() {
      this.reset();
      this.inc({ outcome: 'hit' }, local.stats.hits);
      this.inc({ outcome: 'miss' }, local.stats.misses);
      this.inc({ outcome: 'load' }, local.stats.loads);
    },
  });
  new Gauge({ name: 'room_local_cache_rooms', help: 'Rooms held in the local cache', registers, collect() { this.set(local.size); } });
}

function createMysqlPoolClosedBy(host: ServiceHost, config: RoomConfig, database: string) {
  const pool = createMysqlPool(config.MYSQL_URL, database, config.MYSQL_POOL_SIZE);
  host.onClose('mysql', () => pool.end());
  return pool;
}

/** Migrates the schema; false (with a warning) when MySQL cannot be reached. */
async function prepareMysql(config: RoomConfig, database: string, log: Logger): Promise<boolean> {
  try {
    await migrate({ url: config.MYSQL_URL, database, dir: fromRoot('services', 'room', 'migrations'), log: (line) => log.info(line) });
    return true;
  } catch (err) {
    if (!isDependencyUnavailable(err)) throw err;
    log.warn(
      { err: (err as Error).message },
      'MySQL unreachable at start-up: serving reads from Redis, writes answer UNAVAILABLE; run `npm run room -- check` once MySQL is back',
    );
    return false;
  }
}

async function ensureRedisComplete(store: MysqlRoomStore, cache: RedisRoomCache, log: Logger): Promise<void> {
  const verdict = await compare(store, cache);
  if (verdict.complete) {
    log.info({ rooms: verdict.mysql.rooms }, 'Redis holds every room at its latest version');
    return;
  }
  log.warn({ mysql: verdict.mysql, redis: verdict.redis }, 'Redis is missing rooms or versions: backfilling from MySQL');
  let last = 0;
  const result = await backfill(store, cache, {
    start: (total) => log.info({ total }, 'backfill started'),
    batch: (scanned, written) => {
      if (Date.now() - last < 1000) return;
      last = Date.now();
      log.info({ scanned, written }, 'backfill progress');
    },
  });
  log.info(result, 'backfill done');
}
