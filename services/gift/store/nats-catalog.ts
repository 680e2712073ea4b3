import { GiftCatalogChangedEvent } from '../../../gen/ts/livemesh/gift/v1/gift.js';
import type { Logger } from '../../../kit/logger.js';
import { subject, type NatsConnection } from '../../../kit/nats.js';
import { receiveInSpan, traceHeaders } from '../../../kit/tracing-nats.js';
import { watchRoomChanges, type RoomFacts } from '../../room/client.js';
import type { CatalogEvents } from '../catalog.js';

const catalogSubject = (prefix: string) => subject(prefix, 'gift.catalog.changed');

/** Catalog changes go out on core NATS: a replica that misses one is stale for one cache TTL at most. */
export class NatsCatalogEvents implements CatalogEvents {
  constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
  ) {}

  async changed(giftIds: string[], groupIds: string[]): Promise<void> {
    const headers = traceHeaders();
    this.nc.publish(catalogSubject(this.prefix), GiftCatalogChangedEvent.encode({ giftIds, giftGroupIds: groupIds, changeTime: new Date() }).finish(), headers ? { headers } : undefined);
    await this.nc.flush();
  }
}

/** Every replica listens for catalog changes and for room changes (live status, gift group). */
export function watchChanges(
  nc: NatsConnection,
  prefix: string,
  handlers: { catalog(giftIds: string[], groupIds: string[]): void; room(room: RoomFacts): void },
  log: Logger,
): { stop(): Promise<void> } {
  const catalog = nc.subscribe(catalogSubject(prefix), {
    callback: (_err, msg) => {
      let e: GiftCatalogChangedEvent;
      try {
        e = GiftCatalogChangedEvent.decode(msg.data);
      } catch (err) {
        return log.warn({ err: (err as Error).message }, 'undecodable catalog event ignored');
      }
      receiveInSpan(msg, () => handlers.catalog(e.giftIds, e.giftGroupIds));
    },
  });
  const rooms = watchRoomChanges(nc, prefix, (room) => handlers.room(room), log);
  return {
    async stop() {
      catalog.unsubscribe();
      rooms.stop();
      await Promise.resolve();
    },
  };
}
