import { jetstream } from '@nats-io/jetstream';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import { rowsOf, Statements, withConnection } from '../../../kit/mysql.js';
import type { Logger } from '../../../kit/logger.js';
import type { NatsConnection } from '../../../kit/nats.js';
import { publishFromStored } from '../../../kit/tracing-nats.js';
import { consumeGiftPaid, giftPaidSubject } from '../client.js';
import { GroupCommit, type GroupCommitOptions } from '../../../kit/group-commit.js';
import { jetStreamError, jetStreamProblem } from '../../../kit/streams.js';
import type { CrashPoint, ExpGrant, OrderStore, Payments } from '../ports.js';

interface OutboxRow extends RowDataPacket {
  outbox_id: string;
  subject_room_id: string;
  msg_id: string;
  payload: Buffer;
  traceparent: string | null;
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
  /** When the current run of failed passes began; undefined while passes succeed. */
  private failingSince: number | undefined;
  private lastWarnAt = 0;

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
      .then(() => {
        if (this.failingSince === undefined) return;
        this.log.info({ failedForMs: Date.now() - this.failingSince }, 'outbox relay: publishing again; the paid events held in the outbox are on their way');
        this.failingSince = undefined;
      })
      .catch((err: unknown) => {
        // Rows stay in the outbox until JetStream has stored them: a pass that fails deletes
        // nothing, so an offline stream delays paid events but never drops one. One line per
        // outage (and one a minute while it lasts), not one per pass.
        const now = Date.now();
        if (this.failingSince === undefined || now - this.lastWarnAt >= 60_000) {
          this.failingSince ??= now;
          this.lastWarnAt = now;
          this.log.warn({ err: jetStreamError(err), failingForMs: now - this.failingSince }, `outbox relay: ${jetStreamProblem(err)}; paid events stay in the outbox until they publish`);
        }
      })
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

  /**
   * Publishes one row, in the trace that paid the order (its context in the message's headers),
   * and resolves once JetStream has stored it.
   *
   * A clustered stream on a NATS server before 2.10.25 can answer "duplicate" for a message it
   * never stored (nats-server#6415): the leader notes the message id, with sequence 0, before the
   * write is agreed; if leadership is lost meanwhile (an outage, a node restart) the write is
   * dropped but the note stays, and every retry is called a duplicate until the dedupe window
   * (5 minutes) ends. Deleting the row on that answer loses the paid event for good; it was seen
   * in the quorum-loss test. So a duplicate without a sequence is published once more under a
   * second id: if the first write did land after all, the consumers see the event twice, which
   * they handle like any redelivery (every effect is idempotent by order id).
   */
  private async publish(r: OutboxRow): Promise<void> {
    const subject = giftPaidSubject(this.prefix, String(r.subject_room_id));
    const send = (msgID: string) => publishFromStored(r.traceparent, subject, (headers) => this.js.publish(subject, r.payload, { msgID, ...(headers ? { headers } : {}) }));
    const ack = await send(r.msg_id);
    if (!ack.duplicate || ack.seq > 0) return;
    this.log.warn({ msgId: r.msg_id, stream: ack.stream }, 'outbox relay: JetStream called a paid event a duplicate without storing it; publishing it again under a second id');
    const again = await send(`${r.msg_id}:again`);
    if (again.duplicate && again.seq === 0) throw new Error(`JetStream called paid event ${r.msg_id} a duplicate twice without storing it; it stays in the outbox`);
  }

  /**
   * One pass in two round trips: the transaction opened and the rows claimed in one, the
   * publishes, then the delete and the commit in one (the pool runs several statements a trip).
   */
  private async pass(): Promise<number> {
    return withConnection(this.pool, async (conn) => {
      // The pool's sessions are READ COMMITTED: the claim locks only the rows it read. Under
      // REPEATABLE READ it also locked the gap after the last row, where every new outbox row
      // goes, so each paid order waited for the relay's publish in flight: bench:gift measured it
      // as a ceiling of about 150 sends/s.
      const claim = new Statements();
      claim.add('START TRANSACTION');
      const iRows = claim.add('SELECT outbox_id, subject_room_id, msg_id, payload, traceparent FROM outbox ORDER BY outbox_id LIMIT ? FOR UPDATE SKIP LOCKED', [this.batch]);
      const rows = rowsOf<OutboxRow>((await claim.run(conn))[iRows]);
      if (rows.length === 0) {
        await conn.query('COMMIT');
        return 0;
      }
      await Promise.all(rows.map((r) => this.publish(r)));
      this.crash('after_publish');
      const finish = new Statements();
      finish.add('DELETE FROM outbox WHERE outbox_id IN (?)', [rows.map((r) => r.outbox_id)]);
      finish.add('COMMIT');
      await finish.run(conn);
      return rows.length;
    });
  }
}

/**
 * Gift's own effect consumer: EXP for the sender through the Ledger (transfer id `exp:<order>`,
 * so a redelivery cannot grant twice), then the effect marked done. Durable, shared by all Gift
 * replicas, on the kit's paid-gift consumer: a failure is redelivered with backoff until it
 * succeeds. Events handled at the same time are group-committed: one CreateTransfers call grants
 * a batch's EXP and one transaction marks it done, while each event keeps its own outcome.
 */
export function runExpConsumer(
  nc: NatsConnection,
  prefix: string,
  orders: OrderStore,
  payments: Payments,
  crash: CrashPoint,
  log: Logger,
  ackWaitMs = 10_000,
  batching: GroupCommitOptions = { maxBatch: 256, concurrency: 2 },
): Promise<{ stop(): Promise<void> }> {
  const grants = new GroupCommit<ExpGrant, void>(async (batch) => {
    const granted = await payments.grantExps(batch);
    crash('after_exp_grant');
    const done = batch.filter((_, i) => granted[i]!.ok);
    if (done.length > 0) await orders.effectsDone(done.map((g) => ({ orderId: g.orderId, effect: 'exp' as const })), new Date());
    return granted;
  }, batching);
  return consumeGiftPaid(nc, prefix, {
    durable: 'gift-exp',
    ackWaitMs,
    maxAckPending: 2000,
    log,
    handle: async (event) => {
      try {
        await grants.submit({ orderId: event.orderId, senderId: event.senderId, expMinor: event.expMinor });
        return { ack: true };
      } catch (err) {
        await orders.effectFailed(event.orderId, 'exp', (err as Error).message).catch(() => undefined);
        throw err;
      }
    },
  });
}
