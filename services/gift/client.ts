/**
 * Gift's public face: what other services (and the BFF) may use of Gift. A typed promise client,
 * the paid-gift stream's contract (name, subjects, limits, event type) for its consumers, and the
 * effect reporter the services applying a paid order's effects acknowledge them with. Nothing
 * else of services/gift is imported from outside it.
 */
import { status as Code } from '@grpc/grpc-js';
import { DiscardPolicy, RetentionPolicy, StorageType, type JsMsg, type StreamConfig } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { GiftPaidEvent, GiftServiceClient, orderEffectToJSON, type OrderEffect } from '../../gen/ts/livemesh/gift/v1/gift.js';
import { promiseClient, type PromiseClient } from '../../kit/clients.js';
import type { MeshCredentials } from '../../kit/credentials.js';
import { failed, GroupCommit, ok, type Outcome } from '../../kit/group-commit.js';
import { GrpcCallError, serviceErrorOf } from '../../kit/grpc-errors.js';
import type { Logger } from '../../kit/logger.js';
import { subject, type NatsConnection } from '../../kit/nats.js';
import { consumeDurable, ensureStream, startWhenStreamUp, streamName, type Verdict } from '../../kit/streams.js';

export type GiftClient = PromiseClient<GiftServiceClient>;

/** A Gift client over lb/ (P2C over every replica `target` names, this process's token, mTLS when configured). */
export const giftClient = (target: string, credentials: MeshCredentials): GiftClient => promiseClient(GiftServiceClient, target, credentials);

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
    name: giftPaidStreamName(prefix),
    subjects: [subject(prefix, 'gift.paid.>')],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(7 * 24 * 3600 * 1000),
    duplicate_window: nanos(5 * 60 * 1000),
  };
}

/** Consumers create the stream too, so they can start before Gift has ever run. */
export const ensureGiftPaidStream = (nc: NatsConnection, prefix: string) => ensureStream(nc, giftPaidStreamConfig(prefix));

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
 * A durable, explicitly acknowledged consumer of the paid-gift stream (see kit's consumeDurable):
 * handlers must be idempotent by order id, since a replica dying mid-way leaves the event to be
 * redelivered.
 */
export async function consumeGiftPaid(nc: NatsConnection, prefix: string, opts: GiftConsumerOptions): Promise<{ stop(): Promise<void> }> {
  // A stream offline at start (its node down) must not stop the process: the consumer starts
  // once the stream is back, and the events wait in it meanwhile.
  return startWhenStreamUp(`consumer ${opts.durable}`, async () => {
    await ensureGiftPaidStream(nc, prefix);
    return consumeDurable(nc, giftPaidStreamName(prefix), { ...opts, decode: (data) => GiftPaidEvent.decode(data), describe: (e) => ({ orderId: e.orderId }) });
  }, opts.log);
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
      report: (orderId) => {
        log.debug({ orderId, effect: orderEffectToJSON(effect) }, 'GIFT_ADDR unset: effect applied, AckOrderEffect skipped');
        return Promise.resolve();
      },
      close: () => {},
    };
  }
  const client = giftClient(giftAddress, credentials);
  const settled = (orderId: string, err: GrpcCallError | undefined): Outcome<void> => {
    if (!err) return ok(undefined);
    if (err.code === Code.NOT_FOUND || err.code === Code.INVALID_ARGUMENT) {
      log.error({ orderId, effect: orderEffectToJSON(effect), code: err.code, details: err.details }, 'Gift refused AckOrderEffect for good; not retried');
      return ok(undefined);
    }
    return failed(err);
  };
  const one = (orderId: string) =>
    client.ackOrderEffect({ orderId, effect }, { deadlineMs: timeoutMs }).then(
      () => settled(orderId, undefined),
      (err: unknown) => settled(orderId, GrpcCallError.from(err)),
    );
  let batched = true;
  const batches = new GroupCommit<string, void>(
    async (orderIds) => {
      if (!batched) return Promise.all(orderIds.map(one));
      const res = await client.ackOrderEffects({ acks: orderIds.map((orderId) => ({ orderId, effect })) }, { deadlineMs: timeoutMs }).catch((err: unknown) => GrpcCallError.from(err));
      if (res instanceof GrpcCallError) {
        if (res.code !== Code.UNIMPLEMENTED) return orderIds.map(() => failed(res));
        batched = false;
        log.warn({ effect: orderEffectToJSON(effect) }, 'Gift has no AckOrderEffects yet; acknowledging effects one call per order');
        return Promise.all(orderIds.map(one));
      }
      return orderIds.map((orderId, i) => {
        const r = res.results[i];
        if (r?.state !== undefined) return ok(undefined);
        return settled(orderId, r?.error ? serviceErrorOf(r.error) : new GrpcCallError(Code.INTERNAL, '', undefined, { message: 'AckOrderEffects answered no result for this ack' }));
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
