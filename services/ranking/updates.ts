import type { Logger } from '../../kit/logger.js';
import type { Verdict } from '../../kit/streams.js';
import { RETENTION, type Boards, type PaidGift } from './boards.js';
import type { BoardStore } from './ports.js';

/**
 * The fields of Gift's paid-gift event that Ranking reads. Declared here rather than taken from the
 * generated contract so the domain does not depend on protobuf; the decoded event satisfies it.
 */
export interface PaidGiftEvent {
  orderId: string;
  roomId: string;
  streamerId: string;
  senderId: string;
  senderName: string;
  amountMinor: string;
  paidTime?: Date | undefined;
  liveStartTime?: Date | undefined;
}

const giftOfEvent = (e: PaidGiftEvent): PaidGift => ({
  orderId: e.orderId,
  roomId: e.roomId,
  streamerId: e.streamerId,
  senderId: e.senderId,
  senderName: e.senderName,
  amountMinor: e.amountMinor,
  paidAt: e.paidTime ?? new Date(0),
  liveStartAt: e.liveStartTime,
});

/**
 * Applies paid gifts to the boards: one Redis script per event updates every board the gift
 * touches, skipping boards that already counted the order, so redeliveries (a replica killed
 * before its ack, a relay re-publish, a RetryOrder) never count twice. While a rebuild holds the
 * room or the week, events are put back for a moment rather than applied to a board about to be
 * replaced.
 */
export class RankingUpdates {
  constructor(
    private readonly boards: Boards,
    private readonly store: BoardStore,
    private readonly log: Logger,
  ) {}

  async handle(event: PaidGiftEvent): Promise<Verdict> {
    const gift = giftOfEvent(event);
    if (!event.paidTime || !/^[1-9]\d*$/.test(gift.amountMinor)) {
      this.log.error({ orderId: gift.orderId }, 'paid-gift event without paid_time or a positive amount; acknowledged and ignored');
      return { ack: true };
    }
    const applied = await this.store.apply(
      {
        orderId: gift.orderId,
        roomId: gift.roomId,
        amountMinor: gift.amountMinor,
        reachMs: gift.paidAt.getTime(),
        liveStartMs: gift.liveStartAt?.getTime() ?? 0,
        weekId: this.boards.calendar.week(gift.paidAt).id,
      },
      this.boards.forGift(gift),
      RETENTION.liveMs,
    );
    return applied === 'locked' ? { ack: false, retryInMs: 500 } : { ack: true };
  }
}
