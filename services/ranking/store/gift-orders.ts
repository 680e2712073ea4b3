import { status as Code } from '@grpc/grpc-js';
import { OrderState, type ListOrdersResponse, type Order } from '../../../gen/ts/livemesh/gift/v1/gift.js';
import type { MeshCredentials } from '../../../kit/credentials.js';
import { GrpcCallError } from '../../../kit/grpc-errors.js';
import { giftClient, type GiftClient } from '../../gift/client.js';
import type { PaidGift } from '../boards.js';
import { rebuildSourceUnavailable } from '../errors.js';
import type { OrderSource } from '../rebuild.js';

/**
 * The contract allows 1,000 per page; the Gift service on main caps ListOrders at 100, and 100
 * works with both.
 */
const PAGE_SIZE = 100;

const giftOfOrder = (o: Order): PaidGift => ({
  orderId: o.orderId,
  roomId: o.roomId,
  streamerId: o.streamerId,
  senderId: o.senderId,
  senderName: o.senderName,
  amountMinor: o.amountMinor,
  paidAt: o.paidTime ?? new Date(0),
  liveStartAt: o.liveStartTime,
});

/**
 * Gift's refusal of a ListOrders request is not the RebuildRanking caller's mistake: passed
 * through, its INVALID_ARGUMENT would name a field of a request they never made. It becomes
 * REBUILD_SOURCE_UNAVAILABLE with Gift's words; Gift being down stays UNAVAILABLE (retry).
 */
function refusedBy(e: unknown): Error {
  const err = GrpcCallError.from(e);
  if (err.code === Code.UNAVAILABLE || err.code === Code.DEADLINE_EXCEEDED) return err;
  return rebuildSourceUnavailable(`the Gift service refused ListOrders (${Code[err.code]}: ${err.details})`);
}

/** Paid orders through the Gift service's ListOrders (admin), page by page. */
export class GrpcOrderSource implements OrderSource {
  private readonly client: GiftClient;

  constructor(address: string, credentials: MeshCredentials) {
    this.client = giftClient(address, credentials);
  }

  async *paidOrders(filter: { roomId?: string; paidFrom: Date; paidTo?: Date }): AsyncIterable<PaidGift[]> {
    let pageToken = '';
    do {
      const res: ListOrdersResponse = await this.client
        .listOrders(
          {
            roomId: filter.roomId ?? '0',
            streamerId: '0',
            senderId: '0',
            states: [OrderState.ORDER_STATE_PAID, OrderState.ORDER_STATE_DONE],
            paidStartTime: filter.paidFrom,
            paidEndTime: filter.paidTo,
            page: { pageSize: PAGE_SIZE, pageToken },
          },
          { deadlineMs: 10_000 },
        )
        .catch((err: unknown) => {
          throw refusedBy(err);
        });
      yield res.orders.filter((o) => o.paidTime !== undefined).map(giftOfOrder);
      pageToken = res.page?.nextPageToken ?? '';
    } while (pageToken !== '');
  }

  close(): void {
    this.client.close();
  }
}
