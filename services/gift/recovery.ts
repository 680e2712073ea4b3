import type { Logger } from '../../kit/logger.js';
import type { OrderRecord } from './model.js';
import type { OrderStore, Payments } from './ports.js';

/**
 * Settles orders left CREATED by a crash or a lost Ledger answer (and, see pass(), publishes
 * again the events of paid orders whose effects are still missing long after). For each one older than
 * `afterMs`, it asks the Ledger to void the order's transfer id: if a transfer already has it the
 * money moved and the order goes on to PAID; otherwise the id can never be used again and the
 * order is FAILED with nothing debited. Every replica may run it: the Ledger call is idempotent
 * and the state changes are compare-and-set.
 */
export class Recovery {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  constructor(
    private readonly orders: OrderStore,
    private readonly payments: Payments,
    private readonly afterMs: number,
    private readonly onPaid: () => void,
    private readonly log: Logger,
    private readonly clock: () => Date = () => new Date(),
    /** A paid order whose effects are still missing this long after it was created is published again; 0: never. */
    private readonly republishAfterMs = 0,
  ) {}

  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.runOnce().catch((err: unknown) => this.log.warn({ err }, 'recovery pass failed; will retry')), intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** One pass; returns how many orders it settled. Concurrent callers share the pass. */
  runOnce(): Promise<number> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  /** Settles one CREATED order now: PAID if its transfer exists, otherwise voided and FAILED. */
  async settleOne(order: OrderRecord): Promise<void> {
    const outcome = await this.payments.settle(order);
    if (outcome === 'paid') {
      await this.orders.markPaid(order, null, this.clock());
      this.onPaid();
    } else {
      await this.orders.markFailed(order.orderId, 'ORDER_FAILED', this.clock());
    }
    this.log.info({ orderId: order.orderId, outcome }, 'settled an order left CREATED');
  }

  private async pass(): Promise<number> {
    const now = this.clock();
    const stale = await this.orders.createdBefore(new Date(now.getTime() - this.afterMs), 100);
    let settled = 0;
    for (const order of stale) {
      await this.settleOne(order);
      settled++;
    }
    if (this.republishAfterMs > 0) {
      // An acknowledged paid event can still be lost: nats-server 2.9 was seen losing one from an
      // R3 stream that lost its quorum and got it back (the quorum-loss test), so no consumer ever
      // saw the order. Its effects are idempotent by order id, so publishing it again, under a
      // new message id, at most once per period, is safe; it also repairs an effect a consumer
      // gave up on. RetryOrder does the same by hand.
      const again = await this.orders.republishStalled(new Date(now.getTime() - this.republishAfterMs), now, 100);
      if (again.length > 0) {
        this.log.warn({ orders: again, afterMs: this.republishAfterMs }, 'paid orders still missing effects: their events are published again');
        this.onPaid();
      }
    }
    return settled;
  }
}
