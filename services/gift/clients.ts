import type { Metadata } from '@grpc/grpc-js';
import { LedgerServiceClient } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { RoomServiceClient } from '../../gen/ts/livemesh/room/v1/room.js';
import { callerMetadata, serviceClient } from '../kit/clients.js';

/**
 * The clients Gift calls, through the kit's one client function (lb/'s P2C balancing over every
 * replica a target names, a default deadline, retries for reads only: Ledger's Transfer is not
 * retried by the channel; the saga's own idempotency covers it).
 */
export function giftClients(roomTarget: string, ledgerTarget: string): { room: RoomServiceClient; ledger: LedgerServiceClient } {
  return { room: serviceClient(RoomServiceClient, roomTarget), ledger: serviceClient(LedgerServiceClient, ledgerTarget) };
}

/** Internal calls carry the Gift service's own identity, an admin, as the Ledger's contract asks. */
export const serviceIdentity = (userId: string): Metadata => callerMetadata({ userId, role: 'admin' });
