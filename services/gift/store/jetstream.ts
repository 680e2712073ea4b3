import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import { GiftPaidEvent } from '../../../gen/ts/livemesh/gift/v1/gift.js';
import type { Logger } from '../../kit/logger.js';
import type { NatsConnection } from '../../kit/nats.js';
import { GIFT_PAID, giftPaidSubject, streamName } from '../../kit/streams.js';
import type { CrashPoint, OrderStore, Payments } from '../ports.js';

interface OutboxRow extends RowDataPacket {
  outbox_id: string;
  subject_room_id: string;
  msg_id: string;
  payload: Buffer;
}

/**
 * Publishes outbox rows to the paid-gift stream and deletes each once JetStream has stored it.
 * Rows are claimed with SKIP LOCKED, so several replicas relay side by side without publishing a
 * row twice; a relay that dies between publish and delete republishes with the same Nats-Msg-Id
 * and JetStream drops the duplicate. A paid order wakes the relay at once; the interval is only
 * the fallback for rows other replicas or the recovery worker wrote.
 */
export class OutboxRelay {
  private readonly js;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly pool: Pool,
    nc: NatsConnection,
    private readonly prefix: string,
    private readonly crash: CrashPoint,
    private readonly log: Logger,
    private readonly batch = 256,
  ) {
    this.js = jetstream(nc);
  }

  start(intervalMs: number): void {
    this.timer = setInterval(() => this.wake(), intervalMs);
    this.timer.unref();
    this.wake();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** Runs a pass now, or right after the current one. */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.drain()
      .catch((err: unknown) => this.log.warn({ err }, 'outbox relay pass failed; will retry'))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
  }

  private async drain(): Promise<void> {
    while (!this.stopped && (await this.pass()) === this.batch) {
      // a full batch: there may be more
    }
  }

  private async pass(): Promise<number> {
    const conn: PoolConnection = await this.pool.getConnection();
    try {
      await conn.beginTransaction();
      const [rows] = await conn.query<OutboxRow[]>('SELECT outbox_id, subject_room_id, msg_id, payload FROM outbox ORDER BY outbox_id LIMIT ? FOR UPDATE SKIP LOCKED', [this.batch]);
      if (rows.length === 0) {
        await conn.commit();
        return 0;
      }
      await Promise.all(rows.map((r) => this.js.publish(giftPaidSubject(this.prefix, String(r.subject_room_id)), r.payload, { msgID: r.msg_id })));
      this.crash('after_publish');
      await conn.query('DELETE FROM outbox WHERE outbox_id IN (?)', [rows.map((r) => r.outbox_id)]);
      await conn.commit();
      return rows.length;
    } catch (err) {
      await conn.rollback().catch(() => undefined);
      throw err;
    } finally {
      conn.release();
    }
  }
}

/** Redelivery delays for a failing effect: quick at first, then no faster than every 30 s. */
export const EFFECT_BACKOFF_MS = [500, 1000, 2000, 5000, 10_000, 30_000];

/**
 * Gift's own effect consumer: EXP for the sender through the Ledger (transfer id `exp:<order>`,
 * so a redelivery cannot grant twice), then the effect marked done. Durable, shared by all Gift
 * replicas; a failure is retried with backoff until it succeeds.
 */
export async function runExpConsumer(
  nc: NatsConnection,
  prefix: string,
  orders: OrderStore,
  payments: Payments,
  crash: CrashPoint,
  log: Logger,
  ackWaitMs = 10_000,
): Promise<{ stop(): Promise<void> }> {
  const stream = streamName(prefix, GIFT_PAID);
  const durable = 'gift-exp';
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.consumers.info(stream, durable);
  } catch {
    await jsm.consumers.add(stream, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(ackWaitMs),
      max_ack_pending: 2000,
    });
  }
  const consumer = await jetstream(nc).consumers.get(stream, durable);
  // A short pull expiry: a killed replica's outstanding pull holds redeliveries until it expires
  // (nats.js's default is 30 s, which the crash tests measured as a 30 s stall).
  const messages: ConsumerMessages = await consumer.consume({ max_messages: 512, expires: 5000 });
  const handle = async (m: JsMsg) => {
    let orderId = '?';
    try {
      const event = GiftPaidEvent.decode(m.data);
      orderId = event.orderId;
      await payments.grantExp({ orderId: event.orderId, senderId: event.senderId, expMinor: event.expMinor });
      crash('after_exp_grant');
      await orders.effectDone(event.orderId, 'exp', new Date());
      m.ack();
    } catch (err) {
      const attempt = m.info.deliveryCount;
      const delay = EFFECT_BACKOFF_MS[Math.min(attempt - 1, EFFECT_BACKOFF_MS.length - 1)] ?? 30_000;
      log.warn({ err, orderId, attempt, retryInMs: delay }, 'EXP effect failed; will be redelivered');
      await orders.effectFailed(orderId, 'exp', (err as Error).message).catch(() => undefined);
      m.nak(delay);
    }
  };
  // Messages are handled concurrently (each order's EXP is independent), with a bound.
  const inflight = new Set<Promise<void>>();
  const done = (async () => {
    for await (const m of messages) {
      const p = handle(m).finally(() => inflight.delete(p));
      inflight.add(p);
      if (inflight.size >= 64) await Promise.race(inflight);
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
