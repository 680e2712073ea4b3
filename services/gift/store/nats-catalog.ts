import { GiftCatalogChangedEvent } from '../../../gen/ts/livemesh/gift/v1/gift.js';
import { RoomChangedEvent, type Room } from '../../../gen/ts/livemesh/room/v1/room.js';
import type { Logger } from '../../../kit/logger.js';
import { subject, type NatsConnection } from '../../../kit/nats.js';
import type { CatalogEvents } from '../catalog.js';

export const catalogSubject = (prefix: string) => subject(prefix, 'gift.catalog.changed');

/** Catalog changes go out on core NATS: a replica that misses one is stale for one cache TTL at most. */
export class NatsCatalogEvents implements CatalogEvents {
  constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
  ) {}

  async changed(giftIds: string[], groupIds: string[]): Promise<void> {
    this.nc.publish(catalogSubject(this.prefix), GiftCatalogChangedEvent.encode({ giftIds, giftGroupIds: groupIds, changeTime: new Date() }).finish());
    await this.nc.flush();
  }
}

/** Every replica listens for catalog changes and for room changes (live status, gift group). */
export function watchChanges(
  nc: NatsConnection,
  prefix: string,
  handlers: { catalog(giftIds: string[], groupIds: string[]): void; room(room: Room): void },
  log: Logger,
): { stop(): Promise<void> } {
  const decodeOr = <T>(what: string, fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (err) {
      log.warn({ err: (err as Error).message }, `undecodable ${what} event ignored`);
      return undefined;
    }
  };
  const catalog = nc.subscribe(catalogSubject(prefix), {
    callback: (_err, msg) => {
      const e = decodeOr('catalog', () => GiftCatalogChangedEvent.decode(msg.data));
      if (e) handlers.catalog(e.giftIds, e.giftGroupIds);
    },
  });
  const rooms = nc.subscribe(subject(prefix, 'room.changed.>'), {
    callback: (_err, msg) => {
      const e = decodeOr('room', () => RoomChangedEvent.decode(msg.data));
      if (e?.room) handlers.room(e.room);
    },
  });
  return {
    async stop() {
      catalog.unsubscribe();
      rooms.unsubscribe();
      await Promise.resolve();
    },
  };
}
