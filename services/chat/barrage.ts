import type { Logger } from '../../kit/logger.js';
import type { Verdict } from '../../kit/streams.js';
import type { CachedLevels } from './levels.js';
import type { ChatStore } from './ports.js';
import type { RoomPublisher } from './stream.js';

/**
 * The fields of Gift's paid-gift event a barrage shows. Declared here rather than taken from the
 * generated contract so the domain does not depend on protobuf; the decoded event satisfies it.
 */
export interface PaidGiftEvent {
  orderId: string;
  roomId: string;
  senderId: string;
  senderName: string;
  giftId: string;
  count: number;
  comboCount: string;
  amountMinor: string;
  paidTime?: Date | undefined;
}

/** How long a replica may take between claiming an order's barrage and marking it published. */
const CLAIM_MS = 10_000;

/**
 * Gift barrages from the paid-gift stream. Replicas share one durable consumer, and an order can
 * arrive twice at once (a RetryOrder re-publish next to the original), so a replica first claims
 * the order in Redis; the claim becomes "done" after the publish. A replica that dies holding a
 * claim lets it lapse and a redelivery publishes: a gift may show twice (gateways absorb that by
 * order_id), never zero times. A barrage older than `maxAgeMs` (a consumer catching up after an outage) is not
 * shown, only acknowledged: nobody wants yesterday's rocket. The BARRAGE effect is reported to
 * Gift before the event is acked, so a failed report is retried by redelivery.
 */
export class Barrages {
  constructor(
    private readonly store: ChatStore,
    private readonly stream: RoomPublisher,
    private readonly levels: CachedLevels,
    private readonly maxAgeMs: number,
    private readonly log: Logger,
    private readonly clock: () => number = Date.now,
  ) {}

  async handle(e: PaidGiftEvent): Promise<Verdict> {
    const claim = await this.store.claimBarrage(e.orderId, CLAIM_MS);
    if (claim === 'busy') return { ack: false, retryInMs: 1000 };
    if (claim === 'claimed') {
      const now = this.clock();
      const paidAt = e.paidTime?.getTime() ?? now;
      if (now - paidAt <= this.maxAgeMs) {
        await this.stream.publish(
          e.roomId,
          {
            gift: {
              orderId: e.orderId,
              senderId: e.senderId,
              senderName: e.senderName,
              senderLevel: this.levels.known(e.senderId),
              giftId: e.giftId,
              count: e.count,
              comboCount: e.comboCount,
              amountMinor: e.amountMinor,
            },
          },
          new Date(now),
        );
      } else {
        this.log.info({ orderId: e.orderId, ageMs: now - paidAt }, 'gift barrage too old to show; acknowledged without publishing');
      }
      await this.store.markBarrage(e.orderId);
    }
    return { ack: true };
  }
}
