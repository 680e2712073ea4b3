import { LedgerServiceClient } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { RoomServiceClient } from '../../gen/ts/livemesh/room/v1/room.js';
import { serviceClient } from '../../kit/clients.js';
import type { MeshCredentials } from '../../kit/credentials.js';

/**
 * The clients Gift calls, through the kit's one client function (lb/'s P2C balancing over every
 * replica a target names, a default deadline, retries for reads only: Ledger's Transfer is not
 * retried by the channel; the saga's own idempotency covers it).
 */
export function giftClients(roomTarget: string, ledgerTarget: string, credentials: MeshCredentials): { room: RoomServiceClient; ledger: LedgerServiceClient } {
  return { room: serviceClient(RoomServiceClient, roomTarget, credentials), ledger: serviceClient(LedgerServiceClient, ledgerTarget, credentials) };
}
