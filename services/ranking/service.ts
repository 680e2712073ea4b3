import { z } from 'zod';
import { OrderEffect } from '../../gen/ts/livemesh/gift/v1/gift.js';
import { RankingServiceService } from '../../gen/ts/livemesh/ranking/v1/ranking.js';
import { int, port } from '../../kit/config.js';
import type { Logger } from '../../kit/logger.js';
import { connectNats, type NatsConnection } from '../../kit/nats.js';
import { connectRedis } from '../../kit/redis.js';
import type { ServiceConfig, ServiceHost } from '../../kit/server.js';
import { Boards, RETENTION } from './boards.js';
import { Calendar, isTimeZone } from './calendar.js';
import { rankingHandlers, type RankingUseCases } from './handlers.js';
import { RankingReader } from './reads.js';
import { Rebuilder } from './rebuild.js';
import { GrpcOrderSource } from './store/gift-orders.js';
import { RedisBoards } from './store/redis-boards.js';
import { RankingUpdates } from './updates.js';
import { runGiftEffect } from '../gift/client.js';
import { watchRoomChanges } from '../room/client.js';

/** Ranking's own settings, on top of the kit's. */
export const rankingConfigShape = {
  /** Ranking listens on 50055 unless told otherwise (second local replica: 50155). */
  PORT: port(50055),
  /** The Gift service: AckOrderEffect(RANKING) and ListOrders for RebuildRanking. Empty: acks are skipped and rebuilds refused. */
  GIFT_ADDR: z.string().regex(/^\S*$/, { error: 'must be a gRPC target without spaces (host:port, a comma-separated list, or a DNS name)' }).default(''),
  /** IANA time zone of the business day and week. */
  RANKING_TIME_ZONE: z.string().default('UTC').refine(isTimeZone, { error: 'must be an IANA time zone such as UTC or Asia/Shanghai' }),
  /**
   * How often a replica re-reads the top of a board it is serving. Half a second keeps a gift
   * visible within a second at p99 (the snapshot's age plus the consumer's lag plus the refresh).
   */
  RANKING_SNAPSHOT_MS: int(100, 10_000, 500),
  /** A delivered gift event not acknowledged within this is redelivered (to any replica). */
  GIFT_CONSUMER_ACK_WAIT_MS: int(1000, 600_000, 30_000),
};

export type RankingConfig = ServiceConfig<typeof rankingConfigShape>;

/** Connects Ranking's dependencies and registers it on the host. */
export async function wireRanking(host: ServiceHost, config: RankingConfig): Promise<RankingUseCases> {
  const log = host.log;
  const redis = await connectRedis(config, log, { autoPipelining: true });
  host.onClose('redis', () => redis.quit());
  const nats = await connectNats(config.NATS_URL, `ranking-${config.REPLICA}`, log, { replicas: config.NATS_REPLICAS });
  host.onClose('nats', () => nats.drain());

  const boards = new Boards(new Calendar(config.RANKING_TIME_ZONE));
  const store = new RedisBoards(redis);
  const orders = config.GIFT_ADDR ? new GrpcOrderSource(config.GIFT_ADDR, host.credentials) : undefined;
  if (orders) host.onClose('gift orders client', () => orders.close());
  const reader = new RankingReader(boards, store, { snapshotMs: config.RANKING_SNAPSHOT_MS, max: 10_000 });
  const rebuilder = new Rebuilder(boards, store, orders);

  const watch = watchLiveStarts(nats, config.NATS_PREFIX, store, reader, log);
  host.onClose('room change watch', () => watch.stop());
  const updates = new RankingUpdates(boards, store, log);
  const consumer = await runGiftEffect(nats, config.NATS_PREFIX, {
    durable: 'ranking-boards',
    effect: OrderEffect.ORDER_EFFECT_RANKING,
    giftAddress: config.GIFT_ADDR,
    credentials: host.credentials,
    ackWaitMs: config.GIFT_CONSUMER_ACK_WAIT_MS,
    apply: (event) => updates.handle(event),
    log,
  });
  host.onClose('gift consumer', () => consumer.stop());

  const useCases = { reader, rebuilder };
  host.addService(RankingServiceService, rankingHandlers(useCases, log));
  return useCases;
}

/**
 * A new broadcast gets an empty LIVE board at once: room changes carry the live start, so a room
 * that just went live does not show its previous session's board until its first gift. Every
 * replica sees every change, and drops its LIVE snapshot of the room once the start is recorded.
 */
function watchLiveStarts(nc: NatsConnection, prefix: string, store: RedisBoards, reader: RankingReader, log: Logger): { stop(): void } {
  return watchRoomChanges(
    nc,
    prefix,
    (room) => {
      const start = room.liveStartedAt;
      if (!start) return;
      store
        .noteLiveStart(room.roomId, start, RETENTION.liveMs)
        .then(() => reader.newBroadcast(room.roomId, start))
        .catch((e: unknown) => log.warn({ err: e, roomId: room.roomId }, 'could not record a live start'));
    },
    log,
  );
}
