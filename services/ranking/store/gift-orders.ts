import { Metadata, status as Code, type ServiceError } from '@grpc/grpc-js';
import { GiftServiceClient, OrderState, type ListOrdersResponse, type Order } from '../../../gen/ts/livemesh/gift/v1/gift.js';
import { deadlineIn, serviceClient } from '../../../kit/clients.js';
import type { MeshCredentials } from '../../../kit/credentials.js';
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
function refusedBy(err: ServiceError): Error {
  if (err.code === Code.UNAVAILABLE || err.code === Code.DEADLINE_EXCEEDED) return err;
  return rebuildSourceUnavailable(`the Gift service refused ListOrders (${Code[err.code]}: ${err.details})`);
}

/** Paid orders through the Gift service's ListOrders (admin), page by page. */
export class GrpcOrderSource implements OrderSource {
  private readonly client: GiftServiceClient;

  constructor(address: string, credentials: MeshCredentials) {
    this.client = serviceClient(GiftServiceClient, address, credentials);
  }

  async *paidOrders(filter: { roomId?: string; paidFrom: Date; paidTo?: Date }): AsyncIterable<PaidGift[]> {
    let pageToken = '';
    do {
      const res = await new Promise<ListOrdersResponse>((resolve, reject) =>
        this.client.listOrders(
          {
            roomId: filter.roomId ?? '0',
            streamerId: '0',
            senderId: '0',
            states: [OrderState.ORDER_STATE_PAID, OrderState.ORDER_STATE_DONE],
            paidStartTime: filter.paidFrom,
            paidEndTime: filter.paidTo,
            page: { pageSize: PAGE_SIZE, pageToken },
          },
          new Metadata(),
          deadlineIn(10_000),
          (err, r) => (err ? reject(refusedBy(err)) : resolve(r)),
        ),
      );
      yield res.orders.filter((o) => o.paidTime !== undefined).map(giftOfOrder);
      pageToken = res.page?.nextPageToken ?? '';
    } while (pageToken !== '');
  }

  close(): void {
    this.client.close();
  }
}
