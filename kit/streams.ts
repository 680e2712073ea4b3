import { Metadata, status as Code, type ServiceError } from '@grpc/grpc-js';
import { AckPolicy, DeliverPolicy, DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type ConsumerMessages, type JsMsg, type StreamConfig } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { GiftPaidEvent, GiftServiceClient, orderEffectToJSON, type AckOrderEffectsResponse, type OrderEffect } from '../gen/ts/livemesh/gift/v1/gift.js';
import { deadlineIn, serviceClient } from './clients.js';
import type { MeshCredentials } from './credentials.js';
import { failed, GroupCommit, ok, type Outcome } from './group-commit.js';
import { serviceErrorOf } from './grpc-errors.js';
import type { Logger } from './logger.js';
import { subject, type NatsConnection } from './nats.js';

/**
 * JetStream streams that more than one service touches live here, so the producer and every
 * consumer agree on names, subjects and limits. Stream names carry NATS_PREFIX (dots and other
 * characters streams may not use become underscores), which keeps test runs apart.
 */
export const streamName = (prefix: string, name: string) => `${prefix ? `${prefix.replace(/[^A-Za-z0-9_-]/g, '_')}_` : ''}${name}`;

/** Paid gifts: Gift's outbox relay publishes, Gift (EXP), Chat (barrage) and Ranking consume. */
export const GIFT_PAID = 'GIFT_PAID';

export const giftPaidStreamName = (prefix: string) => streamName(prefix, GIFT_PAID);

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

/**
 * What a handler tells the consumer loop to do with one event: acknowledge it, or have it
 * redelivered after `retryInMs` (by default a backoff on the delivery count).
 */
export type Verdict = { ack: true } | { ack: false; retryInMs?: number };

/** Redelivery delays for a failing effect: quick at first, then no faster than every 30 s. */
export const EFFECT_BACKOFF_MS = [500, 1000, 2000, 5000, 10_000, 30_000] as const;

const backoff = (deliveryCount: number) => EFFECT_BACKOFF_MS[Math.min(Math.max(deliveryCount, 1), EFFECT_BACKOFF_MS.length) - 1] ?? 30_000;

export interface GiftConsumerOptions {
  /** Durable name, one per effect (e.g. `chat-barrage`); replicas sharing it split the events. */
  durable: string;
  /** How long a delivered, unacknowledged event waits before JetStream redelivers it. */
  ackWaitMs: number;
  /** Unacknowledged events per consumer (all replicas), JetStream's max_ack_pending. */
  maxAckPending?: number;
  /** Events one replica handles at once; 64 unless given. */
  concurrency?: number;
  handle: (event: GiftPaidEvent, msg: JsMsg) => Promise<Verdict>;
  log: Logger;
}

/**
 * Runs a durable, explicitly acknowledged consumer of the paid-gift stream. An event is acked
 * only after its handler says its effect is done, so a replica that dies mid-way leaves the event
 * to be redelivered (handlers must be idempotent by order id). A handler failure naks with a
 * backoff; an undecodable event is terminated so it cannot block the consumer forever.
 */
export async function consumeGiftPaid(nc: NatsConnection, prefix: string, opts: GiftConsumerOptions): Promise<{ stop(): Promise<void> }> {
  await ensureGiftPaidStream(nc, prefix);
  const stream = giftPaidStreamName(prefix);
  const jsm = await jetstreamManager(nc);
  const config = {
    durable_name: opts.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(opts.ackWaitMs),
    max_ack_pending: opts.maxAckPending ?? 1000,
  };
  try {
    await jsm.consumers.add(stream, config);
  } catch {
    await jsm.consumers.update(stream, opts.durable, { ack_wait: config.ack_wait, max_ack_pending: config.max_ack_pending });
  }
  const consumer = await jetstream(nc).consumers.get(stream, opts.durable);
  // A short pull expiry, as Room's and Gift's consumers use: a killed replica's outstanding pull
  // holds redeliveries only this long (nats.js's default is 30 s).
  const messages: ConsumerMessages = await consumer.consume({ max_messages: 256, expires: 5000 });
  const handleOne = async (m: JsMsg) => {
    let event: GiftPaidEvent;
    try {
      event = GiftPaidEvent.decode(m.data);
    } catch (err) {
      opts.log.error({ err: (err as Error).message, subject: m.subject, seq: m.seq }, 'undecodable paid-gift event terminated');
      m.term();
      return;
    }
    try {
      const verdict = await opts.handle(event, m);
      if (verdict.ack) m.ack();
      else m.nak(verdict.retryInMs ?? backoff(m.info.deliveryCount));
    } catch (err) {
      const retryInMs = backoff(m.info.deliveryCount);
      opts.log.warn({ err, orderId: event.orderId, durable: opts.durable, attempt: m.info.deliveryCount, retryInMs }, 'paid-gift effect failed; will be redelivered');
      m.nak(retryInMs);
    }
  };
  // Events are independent (each handler is idempotent by order and order-insensitive), so a
  // replica works on several at once: one at a time, its throughput would be one Redis round
  // trip per event.
  const limit = opts.concurrency ?? 64;
  const inflight = new Set<Promise<void>>();
  const done = (async () => {
    for await (const m of messages) {
      const p: Promise<void> = handleOne(m).finally(() => inflight.delete(p));
      inflight.add(p);
      if (inflight.size >= limit) await Promise.race(inflight);
    }
    await Promise.all(inflight);
  })();
  return {
    async stop() {
      await messages.close();
      await done;
    },
  };
}

/** Reports one applied effect of a paid order to the Gift service (AckOrderEffect). */
export type EffectReporter = (orderId: string) => Promise<void>;

/** Acks one reporter sends in one AckOrderEffects call at most; Gift takes up to 1,000. */
const ACK_BATCH = 200;

/**
 * The AckOrderEffect report for one effect (BARRAGE for Chat, RANKING for Ranking), made as the
 * internal admin. With no Gift address configured the report is skipped with a debug line: the
 * effect is still applied, and Gift's saga, once it runs, re-publishes orders whose effects it
 * has not heard about, which the consumers answer again idempotently.
 *
 * Reports made while one call is out leave together in the next AckOrderEffects call (group
 * commit: one RPC and one Gift transaction for a burst of paid orders instead of one each). A
 * Gift that predates the batch RPC (UNIMPLEMENTED, during a rolling deploy) gets one
 * AckOrderEffect per order instead.
 *
 * A report Gift refuses for good (an order it does not know, a request it calls invalid) is
 * logged as an error and counts as made: redelivering the event could never change the answer.
 * Anything else (Gift down, a deadline) rejects, so the event is redelivered and reported again.
 */
export function effectReporter(giftAddress: string, credentials: MeshCredentials, effect: OrderEffect, log: Logger, timeoutMs = 3000): { report: EffectReporter; close(): void } {
  if (!giftAddress) {
    return {
      report: async (orderId) => void log.debug({ orderId, effect: orderEffectToJSON(effect) }, 'GIFT_ADDR unset: effect applied, AckOrderEffect skipped'),
      close: () => {},
    };
  }
  const client = serviceClient(GiftServiceClient, giftAddress, credentials);
  const settled = (orderId: string, err: ServiceError | null): Outcome<void> => {
    if (!err) return ok(undefined);
    if (err.code === Code.NOT_FOUND || err.code === Code.INVALID_ARGUMENT) {
      log.error({ orderId, effect: orderEffectToJSON(effect), code: err.code, details: err.details }, 'Gift refused AckOrderEffect for good; not retried');
      return ok(undefined);
    }
    return failed(err);
  };
  const one = (orderId: string) =>
    new Promise<Outcome<void>>((resolve) => client.ackOrderEffect({ orderId, effect }, new Metadata(), deadlineIn(timeoutMs), (err) => resolve(settled(orderId, err))));
  let batched = true;
  const batches = new GroupCommit<string, void>(
    async (orderIds) => {
      if (!batched) return Promise.all(orderIds.map(one));
      const res = await new Promise<AckOrderEffectsResponse | ServiceError>((resolve) =>
        client.ackOrderEffects({ acks: orderIds.map((orderId) => ({ orderId, effect })) }, new Metadata(), deadlineIn(timeoutMs), (err, r) => resolve(err ?? r)),
      );
      if (res instanceof Error) {
        if (res.code !== Code.UNIMPLEMENTED) return orderIds.map(() => failed(res));
        batched = false;
        log.warn({ effect: orderEffectToJSON(effect) }, 'Gift has no AckOrderEffects yet; acknowledging effects one call per order');
        return Promise.all(orderIds.map(one));
      }
      return orderIds.map((orderId, i) => {
        const r = res.results[i];
        if (r?.state !== undefined) return ok(undefined);
        return settled(orderId, r?.error ? serviceErrorOf(r.error) : Object.assign(new Error('AckOrderEffects answered no result for this ack'), { code: Code.INTERNAL, details: '', metadata: new Metadata() }));
      });
    },
    { maxBatch: ACK_BATCH, concurrency: 2 },
  );
  return {
    report: (orderId) => batches.submit(orderId),
    close: () => client.close(),
  };
}

/**
 * A consumer that applies one effect of paid orders outside the Gift service (Chat's BARRAGE,
 * Ranking's RANKING): `apply` does the work idempotently and says whether it is done; once done,
 * the effect is reported to Gift (AckOrderEffect) and only then is the event acknowledged, so a
 * failed report is retried by redelivery, which `apply` answers without doing the work twice.
 */
export async function runGiftEffect(
  nc: NatsConnection,
  prefix: string,
  opts: { durable: string; effect: OrderEffect; giftAddress: string; credentials: MeshCredentials; ackWaitMs: number; apply: (event: GiftPaidEvent) => Promise<Verdict>; log: Logger },
): Promise<{ stop(): Promise<void> }> {
  const acks = effectReporter(opts.giftAddress, opts.credentials, opts.effect, opts.log);
  const name = orderEffectToJSON(opts.effect).replace('ORDER_EFFECT_', '');
  const consumer = await consumeGiftPaid(nc, prefix, {
    durable: opts.durable,
    ackWaitMs: opts.ackWaitMs,
    log: opts.log,
    handle: async (event) => {
      const verdict = await opts.apply(event);
      if (!verdict.ack) return verdict;
      try {
        await acks.report(event.orderId);
      } catch (err) {
        opts.log.warn({ err, orderId: event.orderId }, `AckOrderEffect(${name}) failed; the event will be redelivered`);
        return { ack: false };
      }
      return { ack: true };
    },
  });
  return {
    async stop() {
      await consumer.stop();
      acks.close();
    },
  };
}
