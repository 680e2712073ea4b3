import { Counter, Gauge } from 'prom-client';
import { z } from 'zod';
import { ChatServiceService } from '../../gen/ts/livemesh/chat/v1/chat.js';
import { OrderEffect } from '../../gen/ts/livemesh/gift/v1/gift.js';
import { int, port } from '../../kit/config.js';
import { connectNats } from '../../kit/nats.js';
import { connectRedis } from '../../kit/redis.js';
import type { ServiceConfig, ServiceHost } from '../../kit/server.js';
import { Barrages } from './barrage.js';
import { MessageIds } from './events.js';
import { chatHandlers, type ChatUseCases } from './handlers.js';
import { CachedLevels } from './levels.js';
import { Likes } from './likes.js';
import { Messages } from './messages.js';
import { LiveNotices, OnlineNotices, type RoomChange } from './notices.js';
import { Policies } from './policies.js';
import { RoomDirectory } from './rooms.js';
import { NatsEventBus } from './store/nats-events.js';
import { RedisChatStore } from './store/redis-chat.js';
import { GrpcLevelSource, RoomOnlineSource, roomInfoOf } from './store/services.js';
import { runGiftEffect } from '../gift/client.js';
import { CachedRoomDirectory, roomClient, roomFacts, watchRoomChanges } from '../room/client.js';
import { RoomStream } from './stream.js';
import { Subscriptions } from './subscriptions.js';

/** Where another service is (host:port, a comma-separated list of them, or a DNS name), or empty for "not configured". */
const target = (fallback: string) => z.string().regex(/^\S*$/, { error: 'must be a gRPC target without spaces (host:port, a comma-separated list, or a DNS name)' }).default(fallback);

/** Chat's own settings, on top of the kit's. */
export const chatConfigShape = {
  /** Chat listens on 50054 unless told otherwise (second local replica: 50154). */
  PORT: port(50054),
  /** The Room service: whether a room exists, who owns it. */
  ROOM_ADDR: target('127.0.0.1:50051'),
  /** The Ledger: viewer levels for rooms with a minimum level. Empty: such rooms answer UNAVAILABLE. */
  LEDGER_ADDR: target('127.0.0.1:50053'),
  /** The Gift service, for AckOrderEffect(BARRAGE). Empty: the report is skipped (debug log). */
  GIFT_ADDR: target(''),
  /** Per-user token bucket: messages at once… */
  CHAT_RATE_BURST: int(1, 1000, 10),
  /** …and refilled per minute. */
  CHAT_RATE_PER_MIN: int(1, 60_000, 30),
  /** Identical texts in a room within this window merge into one message; 0 turns merging off. */
  CHAT_MERGE_WINDOW_MS: int(0, 60_000, 3000),
  /** How often each replica flushes its like sums to Redis and publishes a burst per room. */
  LIKE_FLUSH_MS: int(100, 10_000, 1000),
  /** Events one Subscribe stream may fall behind before it is cut off with SUBSCRIBER_TOO_SLOW. */
  SUBSCRIBE_BUFFER: int(1, 100_000, 1024),
  /** Concurrent Subscribe streams per replica. */
  SUBSCRIBE_MAX: int(1, 1_000_000, 10_000),
  /** How long a replica trusts its copy of a room's owner and status (change events refresh it sooner). */
  CHAT_ROOM_CACHE_MS: int(500, 600_000, 5000),
  /** How long a replica trusts its copy of a room's policy; changes made on it apply at once. */
  CHAT_POLICY_CACHE_MS: int(1, 60_000, 1000),
  /** How long a viewer's level is trusted before the Ledger is asked again. */
  CHAT_LEVEL_CACHE_MS: int(1000, 3_600_000, 60_000),
  /** How often the hot rooms' online counts are checked and, when they moved, announced. */
  CHAT_ONLINE_NOTICE_MS: int(500, 600_000, 5000),
  /** An online count is announced again once it moved by this percentage. */
  CHAT_ONLINE_CHANGE_PCT: int(0, 100, 5),
  /** Events of each room kept for recovery after a reconnect (GetRoomHistory), oldest dropped first. */
  CHAT_HISTORY_SIZE: int(1, 100_000, 1000),
  /** How long a room's events stay recoverable; a room quiet this long loses its history (its offsets go on). */
  CHAT_HISTORY_TTL_MS: int(1000, 86_400_000, 600_000),
  /** Gift barrages older than this when consumed are acknowledged but not shown. */
  BARRAGE_MAX_AGE_MS: int(1000, 86_400_000, 60_000),
  /** A delivered gift event not acknowledged within this is redelivered (to any replica). */
  GIFT_CONSUMER_ACK_WAIT_MS: int(1000, 600_000, 30_000),
};

export type ChatConfig = ServiceConfig<typeof chatConfigShape>;

/** client_message_id is remembered at least this long (the contract's ten minutes). */
const DEDUPE_MS = 10 * 60_000;

/** Connects Chat's dependencies and registers it on the host. */
export async function wireChat(host: ServiceHost, config: ChatConfig): Promise<ChatUseCases> {
  const log = host.log;
  const redis = await connectRedis(config, log, { autoPipelining: true });
  host.onClose('redis', () => redis.quit());
  const nats = await connectNats(config.NATS_URL, `chat-${config.REPLICA}`, log, { replicas: config.NATS_REPLICAS });
  host.onClose('nats', () => nats.drain());

  const store = new RedisChatStore(redis);
  const bus = new NatsEventBus(nats, config.NATS_PREFIX, log);
  const roomC = roomClient(config.ROOM_ADDR, host.credentials);
  host.onClose('room client', () => roomC.close());
  const levelSource = new GrpcLevelSource(config.LEDGER_ADDR, host.credentials);
  host.onClose('ledger client', () => levelSource.close());

  const rooms = new RoomDirectory(new CachedRoomDirectory(roomC, roomInfoOf, { ttlMs: config.CHAT_ROOM_CACHE_MS, max: 100_000, deadlineMs: 2000 }));
  const levels = new CachedLevels(levelSource, { ttlMs: config.CHAT_LEVEL_CACHE_MS, max: 200_000 });
  const stream = new RoomStream(rooms, store, bus, { size: config.CHAT_HISTORY_SIZE, ttlMs: config.CHAT_HISTORY_TTL_MS });
  const policies = new Policies(rooms, store, stream, { ttlMs: config.CHAT_POLICY_CACHE_MS, max: 100_000 });
  const ids = new MessageIds(await store.takeWorkerId());
  const messages = new Messages(
    rooms, policies, levels, store, stream, ids,
    { rateBurst: config.CHAT_RATE_BURST, ratePerSecond: config.CHAT_RATE_PER_MIN / 60, mergeWindowMs: config.CHAT_MERGE_WINDOW_MS, dedupeMs: DEDUPE_MS },
    (err, what) => log.warn({ err }, `could not publish the ${what}`),
  );
  const likes = new Likes(rooms, store, stream, (err, roomId) => log.warn({ err, roomId }, 'like flush failed; kept for the next one'));
  const subscriptions = new Subscriptions(rooms, messages, bus, { bufferEvents: config.SUBSCRIBE_BUFFER, maxSubscribers: config.SUBSCRIBE_MAX });
  const notices = new LiveNotices(rooms, store, stream, (err, roomId) => log.warn({ err, roomId }, 'live notice failed'));

  const watch = watchRoomChanges<RoomChange>(nats, config.NATS_PREFIX, (change) => notices.changed(change), log, (r) => ({ ...roomInfoOf(roomFacts(r)), title: r.title, notice: r.notice }));
  host.onClose('room change watch', () => watch.stop());

  const barrages = new Barrages(store, stream, levels, config.BARRAGE_MAX_AGE_MS, log);
  const consumer = await runGiftEffect(nats, config.NATS_PREFIX, {
    durable: 'chat-barrage',
    effect: OrderEffect.ORDER_EFFECT_BARRAGE,
    giftAddress: config.GIFT_ADDR,
    credentials: host.credentials,
    ackWaitMs: config.GIFT_CONSUMER_ACK_WAIT_MS,
    apply: (event) => barrages.handle(event),
    log,
  });
  host.onClose('gift barrage consumer', () => consumer.stop());

  const online = new OnlineNotices(new RoomOnlineSource(roomC), store, stream, { intervalMs: config.CHAT_ONLINE_NOTICE_MS, minChangePct: config.CHAT_ONLINE_CHANGE_PCT }, (err) =>
    log.warn({ err }, 'online count notices skipped this round'),
  );
  online.start();
  host.onClose('online notices', () => online.stop());
  likes.start(config.LIKE_FLUSH_MS);
  messages.start();
  // Streams end when the server stops accepting; once calls are done, the last likes and merge counts go out.
  host.onClose('merge windows', () => messages.stop());
  host.onClose('likes', () => likes.stop());
  host.onStopAccepting(() => subscriptions.closeAll());
  exportChatMetrics(host, subscriptions);

  const useCases = { messages, likes, policies, subscriptions, stream };
  host.addService(ChatServiceService, chatHandlers(useCases, log));
  return useCases;
}

function exportChatMetrics(host: ServiceHost, subs: Subscriptions): void {
  const registers = [host.metrics.registry];
  new Gauge({ name: 'chat_subscribe_streams', help: 'Open Subscribe streams on this replica', registers, collect() { this.set(subs.active); } });
  new Counter({
    name: 'chat_subscribe_cut_total',
    help: 'Subscribe streams ended with SUBSCRIBER_TOO_SLOW',
    registers,
    collect() {
      this.reset();
      this.inc(subs.cut);
    },
  });
}
