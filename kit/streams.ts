import { AckPolicy, DeliverPolicy, JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager, type ConsumerMessages, type JsMsg, type StreamConfig } from '@nats-io/jetstream';
import { Kvm, type KV, type KvOptions } from '@nats-io/kv';
import { nanos, NoRespondersError, TimeoutError } from '@nats-io/nats-core';
import { ConfigError } from './config.js';
import type { Logger } from './logger.js';
import { jetStreamSettings, type NatsConnection } from './nats.js';
import { consumeInSpan } from './tracing-nats.js';

/**
 * JetStream plumbing every service shares; each stream's own contract (name, subjects, limits,
 * event type) lives with the service that owns it, in its client.ts. Stream names carry
 * NATS_PREFIX (dots and other characters streams may not use become underscores), which keeps
 * test runs apart.
 */
export const streamName = (prefix: string, name: string) => `${prefix ? `${prefix.replace(/[^A-Za-z0-9_-]/g, '_')}_` : ''}${name}`;

/** JetStream's "stream is offline" API error: the stream's replicas have no leader. */
const STREAM_OFFLINE = 10118;
/** "JetStream system temporarily unavailable": the cluster's meta group has no leader (no quorum). */
const CLUSTER_UNAVAILABLE = 10008;

/**
 * What a failed JetStream call means, for logs. nats.js reports a stream with no leader (its node
 * down, an election under way) as "jetstream is not enabled", because nobody answers the request;
 * on a server where JetStream is on, that is an offline stream, and saying so sends whoever reads
 * the log to the right place.
 */
export function jetStreamProblem(err: unknown): string {
  if ((err instanceof Error && err.name === 'JetStreamNotEnabled') || err instanceof NoRespondersError) return 'stream offline (no JetStream server answered for it)';
  if (err instanceof JetStreamApiError && err.code === STREAM_OFFLINE) return 'stream offline (its replicas have no leader)';
  if (err instanceof JetStreamApiError && err.code === CLUSTER_UNAVAILABLE) return 'stream offline (the JetStream cluster has no quorum)';
  if (err instanceof TimeoutError) return 'stream offline (JetStream did not answer in time)';
  return err instanceof Error ? err.message : String(err);
}

/**
 * The error to log beside jetStreamProblem's line: for an offline stream, the underlying cause
 * ("no responders: <subject>") rather than nats.js's wrapper, whose message would contradict the line.
 */
export function jetStreamError(err: unknown): unknown {
  return err instanceof Error && err.name === 'JetStreamNotEnabled' && err.cause !== undefined ? err.cause : err;
}

/**
 * Creates the stream, or brings an existing one's limits up to date, with the connection's
 * replica count (NATS_REPLICAS). An existing stream with fewer replicas is raised, and the log
 * says so; one with more is left as it is, so a process still configured for one replica during
 * a rollout never shrinks a cluster's stream. Safe to call from every replica.
 */
export async function ensureStream(nc: NatsConnection, config: Partial<StreamConfig> & { name: string }): Promise<void> {
  const { replicas, log } = jetStreamSettings(nc);
  const jsm = await jetstreamManager(nc);
  const existing = await jsm.streams.info(config.name).catch((err: unknown) => {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) return undefined;
    throw err;
  });
  if (!existing) {
    try {
      await jsm.streams.add({ ...config, num_replicas: replicas });
      return;
    } catch {
      // another replica created it meanwhile: update it below
    }
  }
  const had = existing?.config.num_replicas ?? (await jsm.streams.info(config.name)).config.num_replicas;
  const want = Math.max(had, replicas);
  await jsm.streams.update(config.name, { ...config, num_replicas: want });
  if (want > had) log?.info({ stream: config.name, from: had, to: want }, `stream ${config.name}: replicas raised from ${had} to ${want} (NATS_REPLICAS)`);
}

/**
 * Opens a KV bucket, creating it if need be, with the connection's replica count; like
 * ensureStream, an existing bucket with fewer replicas is raised (a bucket is the stream
 * `KV_<name>`) and the log says so.
 */
export async function ensureKv(nc: NatsConnection, name: string, opts: Partial<KvOptions> = {}): Promise<KV> {
  const { replicas, log } = jetStreamSettings(nc);
  const kv = await new Kvm(nc).create(name, { ...opts, replicas });
  const had = (await kv.status()).replicas;
  if (had < replicas) {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.update(`KV_${name}`, { num_replicas: replicas });
    log?.info({ bucket: name, from: had, to: replicas }, `KV bucket ${name}: replicas raised from ${had} to ${replicas} (NATS_REPLICAS)`);
  }
  return kv;
}

/**
 * Runs `attempt` until it succeeds, with a growing pause (up to 5 s) between tries, logging the
 * first failure and every tenth: a stream can be offline for a few seconds while its cluster
 * elects a leader, and a process that exits over it only turns that into a crash loop.
 * `afterTries` counts tries already made (and logged) by the caller.
 */
export async function untilDone<T>(what: string, attempt: () => Promise<T>, log: Logger, opts: { signal?: AbortSignal; afterTries?: number } = {}): Promise<T> {
  const { signal, afterTries = 0 } = opts;
  for (let i = afterTries + 1; ; i++) {
    if (i > 1) await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 250 * (i - 1))));
    if (signal?.aborted) throw new Error(`${what}: stopped`);
    try {
      const out = await attempt();
      if (i > 1) log.info({ tries: i }, `${what}: done after ${i} tries`);
      return out;
    } catch (err) {
      // A setting that contradicts the world (a shard's identity, say) does not heal by waiting:
      // the process exits EX_CONFIG instead of looking alive while it retries forever.
      if (signal?.aborted || err instanceof ConfigError) throw err;
      if (i === 1 || i % 10 === 0) log.warn({ err: jetStreamError(err), tries: i }, `${what}: ${jetStreamProblem(err)}; retrying`);
    }
  }
}

/**
 * Starts something that needs a stream (a durable consumer, say) so that the process serves
 * whether or not the stream is up: the first try is awaited, so in the usual case it is running
 * when this resolves; if the stream is offline, it keeps trying in the background, and `stop`
 * stops whichever it has become.
 */
export async function startWhenStreamUp(what: string, start: () => Promise<{ stop(): Promise<void> }>, log: Logger): Promise<{ stop(): Promise<void> }> {
  try {
    return await start();
  } catch (err) {
    log.warn({ err: jetStreamError(err) }, `${what}: ${jetStreamProblem(err)}; the process serves and keeps trying in the background`);
  }
  const abort = new AbortController();
  const started = untilDone(what, start, log, { signal: abort.signal, afterTries: 1 }).catch(() => undefined);
  return {
    async stop() {
      abort.abort();
      await (await started)?.stop();
    },
  };
}

/** ensureStream (or any one-off JetStream set-up) on startWhenStreamUp's terms; `stop` ends the retries. */
export const ensureWhenStreamUp = (what: string, ensure: () => Promise<void>, log: Logger) =>
  startWhenStreamUp(what, async () => {
    await ensure();
    return { stop: () => Promise.resolve() };
  }, log);

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
