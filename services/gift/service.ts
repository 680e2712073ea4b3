import { z } from 'zod';
import { GiftServiceService } from '../../gen/ts/livemesh/gift/v1/gift.js';
import { int, list, port } from '../../kit/config.js';
import { migrate } from '../../kit/migrate.js';
import { createBatchingPool, createMysqlPool, databaseInUrl } from '../../kit/mysql.js';
import { connectNats } from '../../kit/nats.js';
import { ensureWhenStreamUp } from '../../kit/streams.js';
import { fromRoot } from '../../kit/paths.js';
import { connectRedis } from '../../kit/redis.js';
import type { ServiceConfig, ServiceHost } from '../../kit/server.js';
import { Catalog } from './catalog.js';
import { GIFT_ACCESS, giftHandlers, type GiftUseCases } from './handlers.js';
import { EFFECTS, type Effect } from './model.js';
import { Orders } from './orders.js';
import type { CrashPoint } from './ports.js';
import { Recovery } from './recovery.js';
import { GiftSender } from './send.js';
import { OutboxRelay, runExpConsumer } from './store/jetstream.js';
import { LedgerPayments } from './store/ledger-payments.js';
import { MysqlCatalogStore } from './store/mysql-catalog.js';
import { MysqlOrderStore } from './store/mysql-orders.js';
import { NatsCatalogEvents, watchChanges } from './store/nats-catalog.js';
import { CachedRoomDirectory, roomClient } from '../room/client.js';
import { ledgerClient } from '../ledger/client.js';
import { ensureGiftPaidStream } from './client.js';
import { RedisGiftListCache } from './store/redis-catalog.js';

const CRASH_STEPS = ['after_created', 'after_transfer', 'after_paid', 'after_publish', 'after_exp_grant'] as const;

/** Gift's own settings, on top of the kit's. */
export const giftConfigShape = {
  /** Gift listens on 50052 unless told otherwise (second local replica: 50152). */
  PORT: port(50052),
  /** Database for the catalog and orders; defaults to MYSQL_URL's path, else livemesh_gift. */
  MYSQL_DATABASE: z.string().regex(/^[A-Za-z0-9_]{1,64}$/, { error: 'must be 1-64 letters, digits or underscores' }).optional(),
  /** The Room service (gRPC target: host:port, or a comma-separated list, or dns:…). */
  ROOM_ADDR: z.string().min(1).default('127.0.0.1:50051'),
  /** The Ledger service. */
  LEDGER_ADDR: z.string().min(1).default('127.0.0.1:50053'),
  /** How long rooms, gifts, groups and gift lists stay in a replica's memory. */
  GIFT_CACHE_TTL_MS: int(500, 60_000, 3000),
  /** A CREATED order this old is settled by the recovery worker. */
  GIFT_RECOVERY_AFTER_MS: int(500, 600_000, 5000),
  GIFT_RECOVERY_INTERVAL_MS: int(100, 60_000, 2000),
  /**
   * A paid order whose effects are still missing this long after it was created has its event
   * published again (a new message id; the effects are idempotent), then at most once per this
   * period; 0 turns it off. Covers an event JetStream acknowledged and then lost.
   */
  GIFT_REPUBLISH_AFTER_MS: int(0, 86_400_000, 120_000),
  /** Fallback poll of the outbox; a paid order wakes the relay at once. */
  GIFT_RELAY_INTERVAL_MS: int(10, 60_000, 200),
  /** How long an EXP delivery may stay unacknowledged (a consumer died) before JetStream redelivers it. */
  GIFT_EFFECT_ACK_WAIT_MS: int(1000, 600_000, 10_000),
  /** Effects an order needs before it is DONE (a deployment without Chat or Ranking drops theirs). */
  GIFT_REQUIRED_EFFECTS: list(EFFECTS.join(',')).refine((l) => l.length > 0 && l.every((e) => (EFFECTS as readonly string[]).includes(e)), {
    error: `must be a comma-separated subset of ${EFFECTS.join(', ')}`,
  }),
  /** Most sends one group commit takes (one INSERT, one CreateTransfers call, one PAID transaction). */
  GIFT_SEND_BATCH_MAX: int(1, 500, 200),
  /** Send batches in flight at once per replica; sends arriving while all are busy wait for the next. */
  GIFT_SEND_BATCHES: int(1, 64, 4),
  /** Chaos testing only: SIGKILL this process at one step of the saga. */
  GIFT_FAULT_KILL_AT: z.enum(['', ...CRASH_STEPS], { error: `must be empty or one of ${CRASH_STEPS.join(', ')}` }).default(''),
};

export type GiftConfig = ServiceConfig<typeof giftConfigShape>;

const giftDatabase = (config: Pick<GiftConfig, 'MYSQL_DATABASE' | 'MYSQL_URL'>) => config.MYSQL_DATABASE ?? databaseInUrl(config.MYSQL_URL) ?? 'livemesh_gift';

/** Connects Gift's dependencies, migrates, starts its workers and registers it on the host. */
export async function wireGift(host: ServiceHost, config: GiftConfig): Promise<GiftUseCases & { relay: OutboxRelay; recovery: Recovery }> {
  const log = host.log;
  const database = giftDatabase(config);
  await migrate({ url: config.MYSQL_URL, database, dir: fromRoot('services', 'gift', 'migrations'), log: (line) => log.info(line) });
  const pool = createMysqlPool(config.MYSQL_URL, database, config.MYSQL_POOL_SIZE);
  host.onClose('mysql', () => pool.end());
  // The saga's batched writes get their own pool: several statements a round trip, READ COMMITTED.
  const ordersPool = createBatchingPool(config.MYSQL_URL, database, config.MYSQL_POOL_SIZE);
  host.onClose('mysql (orders)', () => ordersPool.end());
  const redis = await connectRedis(config, log);
  host.onClose('redis', () => redis.quit());
  const nats = await connectNats(config.NATS_URL, `gift-${config.REPLICA}`, log, { replicas: config.NATS_REPLICAS });
  host.onClose('nats', () => nats.drain());
  // Paid orders wait in the outbox while the stream is offline, so Gift serves without it.
  const paidStream = await ensureWhenStreamUp('stream GIFT_PAID', () => ensureGiftPaidStream(nats, config.NATS_PREFIX), log);
  host.onClose('paid stream set-up', () => paidStream.stop());

  const crash: CrashPoint = (step) => {
    if (config.GIFT_FAULT_KILL_AT !== step) return;
    log.warn({ step }, 'GIFT_FAULT_KILL_AT: killing the process');
    process.kill(process.pid, 'SIGKILL');
  };
  if (config.GIFT_FAULT_KILL_AT) log.warn({ step: config.GIFT_FAULT_KILL_AT }, 'fault injection: this process will SIGKILL itself at that step');

  // The channels retry reads and keyed writes only: CreateTransfers is neither, and the saga's own idempotency covers it.
  const clients = { room: roomClient(config.ROOM_ADDR, host.credentials), ledger: ledgerClient(config.LEDGER_ADDR, host.credentials) };
  host.onClose('grpc clients', () => {
    clients.room.close();
    clients.ledger.close();
  });
  const rooms = new CachedRoomDirectory(clients.room, (facts) => facts, { max: 100_000, ttlMs: config.GIFT_CACHE_TTL_MS, deadlineMs: 2000 });
  const catalog = new Catalog(new MysqlCatalogStore(pool), new RedisGiftListCache(redis), new NatsCatalogEvents(nats, config.NATS_PREFIX), rooms, config.GIFT_CACHE_TTL_MS);
  const watcher = watchChanges(nats, config.NATS_PREFIX, { catalog: (g, gr) => catalog.forget(g, gr), room: (r) => rooms.changed(r) }, log);
  host.onClose('change watch', () => watcher.stop());

  const orderStore = new MysqlOrderStore(ordersPool, config.GIFT_REQUIRED_EFFECTS as Effect[]);
  const payments = new LedgerPayments(clients.ledger);
  const relay = new OutboxRelay(ordersPool, nats, config.NATS_PREFIX, crash, log);
  const wake = () => relay.wake();
  const recovery = new Recovery(orderStore, payments, config.GIFT_RECOVERY_AFTER_MS, wake, log, undefined, config.GIFT_REPUBLISH_AFTER_MS);
  const sender = new GiftSender(rooms, catalog, orderStore, payments, crash, wake, { maxBatch: config.GIFT_SEND_BATCH_MAX, concurrency: config.GIFT_SEND_BATCHES });
  const orders = new Orders(orderStore, recovery, wake);

  relay.start(config.GIFT_RELAY_INTERVAL_MS);
  host.onClose('outbox relay', () => relay.stop());
  recovery.start(config.GIFT_RECOVERY_INTERVAL_MS);
  host.onClose('recovery', () => recovery.stop());
  const exp = await runExpConsumer(nats, config.NATS_PREFIX, orderStore, payments, crash, log, config.GIFT_EFFECT_ACK_WAIT_MS);
  host.onClose('exp consumer', () => exp.stop());

  const useCases = { catalog, sender, orders };
  host.addService(GiftServiceService, giftHandlers(useCases, log), GIFT_ACCESS);
  return { ...useCases, relay, recovery };
}
