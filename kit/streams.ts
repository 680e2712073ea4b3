import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JsMsg, type StreamConfig } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import type { Logger } from './logger.js';
import type { NatsConnection } from './nats.js';
import { consumeInSpan } from './tracing-nats.js';

/**
 * JetStream plumbing every service shares; each stream's own contract (name, subjects, limits,
 * event type) lives with the service that owns it, in its client.ts. Stream names carry
 * NATS_PREFIX (dots and other characters streams may not use become underscores), which keeps
 * test runs apart.
 */
export const streamName = (prefix: string, name: string) => `${prefix ? `${prefix.replace(/[^A-Za-z0-9_-]/g, '_')}_` : ''}${name}`;

/** Creates the stream, or brings an existing one's limits up to date. Safe to call from every replica. */
export async function ensureStream(nc: NatsConnection, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.add(config);
  } catch {
    await jsm.streams.update(config.name, config);
  }
}

/**
 * What a handler tells the consumer loop to do with one event: acknowledge it, or have it
 * redelivered after `retryInMs` (by default a backoff on the delivery count).
 */
export type Verdict = { ack: true } | { ack: false; retryInMs?: number };

/** Redelivery delays for a failing effect: quick at first, then no faster than every 30 s. */
export const EFFECT_BACKOFF_MS = [500, 1000, 2000, 5000, 10_000, 30_000] as const;

const backoff = (deliveryCount: number) => EFFECT_BACKOFF_MS[Math.min(Math.max(deliveryCount, 1), EFFECT_BACKOFF_MS.length) - 1] ?? 30_000;

export interface DurableConsumerOptions<E> {
  /** Durable name, one per effect (e.g. `chat-barrage`); replicas sharing it split the events. */
  durable: string;
  /** How long a delivered, unacknowledged event waits before JetStream redelivers it. */
  ackWaitMs: number;
  /** Unacknowledged events per consumer (all replicas), JetStream's max_ack_pending. */
  maxAckPending?: number;
  /** Events one replica handles at once; 64 unless given. */
  concurrency?: number;
  /** The event's decoder; what it throws marks the message undecodable. */
  decode: (data: Uint8Array) => E;
  /** Names the event in logs (an order id, say). */
  describe?: (event: E) => Record<string, unknown>;
  handle: (event: E, msg: JsMsg) => Promise<Verdict>;
  log: Logger;
}

/**
 * Runs a durable, explicitly acknowledged consumer of `stream`. An event is acked only after its
 * handler says its effect is done, so a replica that dies mid-way leaves the event to be
 * redelivered (handlers must be idempotent). A handler failure naks with a backoff; an
 * undecodable event is terminated so it cannot block the consumer forever. The consumer is
 * created, or its ack wait and pending limit brought up to date, so a changed setting applies on
 * the next deploy.
 */
export async function consumeDurable<E>(nc: NatsConnection, stream: string, opts: DurableConsumerOptions<E>): Promise<{ stop(): Promise<void> }> {
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
    let event: E;
    try {
      event = opts.decode(m.data);
    } catch (err) {
      opts.log.error({ err: (err as Error).message, subject: m.subject, seq: m.seq }, `undecodable event on ${stream} terminated`);
      m.term();
      return;
    }
    try {
      // Traced as the publisher's child: the trace context rides in the message's headers.
      const verdict = await consumeInSpan(stream, opts.durable, m.headers, () => describeForSpan(opts.describe?.(event)), () => opts.handle(event, m));
      if (verdict.ack) m.ack();
      else m.nak(verdict.retryInMs ?? backoff(m.info.deliveryCount));
    } catch (err) {
      const retryInMs = backoff(m.info.deliveryCount);
      opts.log.warn({ err, ...opts.describe?.(event), durable: opts.durable, attempt: m.info.deliveryCount, retryInMs }, 'event handler failed; will be redelivered');
      m.nak(retryInMs);
    }
  };
  // Events are independent (each handler is idempotent and order-insensitive), so a replica
  // works on several at once: one at a time, its throughput would be one Redis round trip per event.
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

/** A consumer's `describe` fields as span attributes (`livemesh.orderId`…). */
function describeForSpan(fields: Record<string, unknown> | undefined): Record<string, string> | undefined {
  if (!fields) return undefined;
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [`livemesh.${k}`, String(v)]));
}
