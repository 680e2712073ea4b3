import { GiftServiceClient, OrderState, type ListOrdersResponse, type Order } from '../../../gen/ts/livemesh/gift/v1/gift.js';
import { callerMetadata, deadlineIn, SERVICE_CALLER, serviceClient } from '../../kit/clients.js';
import type { PaidGift } from '../boards.js';
import type { OrderSource } from '../rebuild.js';

const PAGE_SIZE = 1000;

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

/** Paid orders through the Gift service's ListOrders (admin), 1,000 per page. */
export class GrpcOrderSource implements OrderSource {
  private readonly client: GiftServiceClient;

  constructor(address: string) {
    this.client = serviceClient(GiftServiceClient, address);
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
          callerMetadata(SERVICE_CALLER),
          deadlineIn(10_000),
          (err, r) => (err ? reject(err) : resolve(r)),
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
