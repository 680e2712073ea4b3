import { status as Code } from '@grpc/grpc-js';
import type { MeshCredentials } from '../../../kit/credentials.js';
import { GrpcCallError } from '../../../kit/grpc-errors.js';
import { giftClient, type GiftClient } from '../../gift/client.js';
import { giftServiceUnavailable } from '../errors.js';
import type { GiftGroups } from '../rooms.js';

/** An admin assigning a group waits at most this for Gift; a slow answer is UNAVAILABLE, and the write is simply retried. */
const CALL_TIMEOUT_MS = 2000;

/**
 * Gift groups from the Gift service's GetGiftGroup. Not cached: assignments are rare admin writes,
 * and a group created a moment ago must be assignable at once.
 */
export class GrpcGiftGroups implements GiftGroups {
  private readonly client: GiftClient;

  constructor(address: string, credentials: MeshCredentials) {
    this.client = giftClient(address, credentials);
  }

  async exists(giftGroupId: string): Promise<boolean> {
    try {
      const res = await this.client.getGiftGroup({ giftGroupId }, { deadlineMs: CALL_TIMEOUT_MS });
      return res.giftGroup !== undefined;
    } catch (e) {
      const err = GrpcCallError.from(e);
      if (err.code === Code.NOT_FOUND) return false;
      // Gift's own failure is not Room's to pass on as is (an INVALID_ARGUMENT about Gift's request would name no field of this one).
      throw giftServiceUnavailable(giftGroupId, `${Code[err.code] ?? err.code}: ${err.details}`);
    }
  }

  close(): void {
    this.client.close();
  }
}
