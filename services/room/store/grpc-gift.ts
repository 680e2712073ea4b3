import { Metadata, status as Code, type ServiceError } from '@grpc/grpc-js';
import { GiftServiceClient } from '../../../gen/ts/livemesh/gift/v1/gift.js';
import { deadlineIn, serviceClient } from '../../../kit/clients.js';
import type { MeshCredentials } from '../../../kit/credentials.js';
import { giftServiceUnavailable } from '../errors.js';
import type { GiftGroups } from '../rooms.js';

/** An admin assigning a group waits at most this for Gift; a slow answer is UNAVAILABLE, and the write is simply retried. */
const CALL_TIMEOUT_MS = 2000;

/**
 * Gift groups from the Gift service's GetGiftGroup. Not cached: assignments are rare admin writes,
 * and a group created a moment ago must be assignable at once.
 */
export class GrpcGiftGroups implements GiftGroups {
  private readonly client: GiftServiceClient;

  constructor(address: string, credentials: MeshCredentials) {
    this.client = serviceClient(GiftServiceClient, address, credentials);
  }

  exists(giftGroupId: string): Promise<boolean> {
    return new Promise((resolve, reject) =>
      this.client.getGiftGroup({ giftGroupId }, new Metadata(), deadlineIn(CALL_TIMEOUT_MS), (err: ServiceError | null, res) => {
        if (err?.code === Code.NOT_FOUND) return resolve(false);
        // Gift's own failure is not Room's to pass on as is (an INVALID_ARGUMENT about Gift's request would name no field of this one).
        if (err) return reject(giftServiceUnavailable(giftGroupId, `${Code[err.code] ?? err.code}: ${err.details}`));
        resolve(res.giftGroup !== undefined);
      }),
    );
  }

  close(): void {
    this.client.close();
  }
}
