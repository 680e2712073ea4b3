import { z } from 'zod';
import { RoomServiceService } from '../../gen/ts/livemesh/room/v1/room.js';
import { port } from '../kit/config.js';
import { migrate } from '../kit/migrate.js';
import { createMysqlPool, databaseInUrl } from '../kit/mysql.js';
import { connectNats } from '../kit/nats.js';
import { fromRoot } from '../kit/paths.js';
import { connectRedis } from '../kit/redis.js';
import type { ServiceHost, ServiceConfig } from '../kit/server.js';
import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import { roomHandlers } from './handlers.js';
import { Rooms } from './rooms.js';
import { MysqlRoomStore } from './store/mysql-rooms.js';
import { NatsRoomEvents } from './store/nats-events.js';
import { RedisRoomCache } from './store/redis-rooms.js';

/** Room's own settings, on top of the kit's. */
export const roomConfigShape = {
  /** Room listens on 50051 unless told otherwise (second local replica: 50151). */
  PORT: port(50051),
  /** Database for rooms; defaults to the one in MYSQL_URL's path, else livemesh_room. */
  MYSQL_DATABASE: z.string().regex(/^[A-Za-z0-9_]{1,64}$/, { error: 'must be 1-64 letters, digits or underscores' }).optional(),
};

export type RoomConfig = ServiceConfig<typeof roomConfigShape>;

/** Connects Room's dependencies, migrates its schema and registers it on the host. */
export async function wireRoom(host: ServiceHost, config: RoomConfig): Promise<Rooms> {
  const log = host.log;
  const database = config.MYSQL_DATABASE ?? databaseInUrl(config.MYSQL_URL) ?? 'livemesh_room';
  await migrate({ url: config.MYSQL_URL, database, dir: fromRoot('services', 'room', 'migrations'), log: (line) => log.info(line) });

  const pool = createMysqlPool(config.MYSQL_URL, database, config.MYSQL_POOL_SIZE);
  host.onClose('mysql', () => pool.end());
  const redis = await connectRedis(config.REDIS_URL, config.REDIS_PREFIX, log);
  host.onClose('redis', () => redis.quit());
  const nats = await connectNats(config.NATS_URL, `room-${config.REPLICA}`, log);
  host.onClose('nats', () => nats.drain());

  const rooms = new Rooms(new MysqlRoomStore(pool), new RedisRoomCache(redis), new NatsRoomEvents(nats, config.NATS_PREFIX, config.REGION));
  host.addService(RoomServiceService, roomHandlers(rooms, log) as UntypedServiceImplementation);
  return rooms;
}
