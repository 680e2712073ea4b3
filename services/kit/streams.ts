import { DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType, type StreamConfig } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { subject, type NatsConnection } from './nats.js';

/**
 * JetStream streams that more than one service touches live here, so the producer and every
 * consumer agree on names, subjects and limits. Stream names carry NATS_PREFIX (dots and other
 * characters streams may not use become underscores), which keeps test runs apart.
 */
export const streamName = (prefix: string, name: string) => `${prefix ? `${prefix.replace(/[^A-Za-z0-9_-]/g, '_')}_` : ''}${name}`;

/** Paid gifts: Gift's outbox relay publishes, Gift (EXP), Chat (barrage) and Ranking consume. */
export const GIFT_PAID = 'GIFT_PAID';

/** `gift.paid.<room_id>`: one subject per room, so a consumer can filter one room. */
export const giftPaidSubject = (prefix: string, roomId: string) => subject(prefix, `gift.paid.${roomId}`);

/**
 * The duplicate window must cover the combo window (3 minutes): a relay that dies after
 * publishing and republishes on restart is deduplicated by Nats-Msg-Id (the order id) as long as
 * the restart happens within it. Consumers still dedupe by order id for anything later.
 */
export function giftPaidStreamConfig(prefix: string): Partial<StreamConfig> & { name: string } {
  return {
    name: streamName(prefix, GIFT_PAID),
    subjects: [subject(prefix, 'gift.paid.>')],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(7 * 24 * 3600 * 1000),
    duplicate_window: nanos(5 * 60 * 1000),
  };
}

/** Creates the stream, or brings an existing one's limits up to date. Safe to call from every replica. */
export async function ensureStream(nc: NatsConnection, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.add(config);
  } catch {
    await jsm.streams.update(config.name, config);
  }
}

export const ensureGiftPaidStream = (nc: NatsConnection, prefix: string) => ensureStream(nc, giftPaidStreamConfig(prefix));
