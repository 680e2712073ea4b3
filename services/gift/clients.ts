import { Metadata } from '@grpc/grpc-js';
import { LedgerServiceClient } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { RoomServiceClient } from '../../gen/ts/livemesh/room/v1/room.js';
import { createLbClient } from '../../lb/client.js';

/**
 * The clients Gift calls, made in one place so every channel gets the same settings: lb/'s P2C
 * balancing over every replica the target names (a comma-separated list, or a DNS name), a
 * default deadline, and retries for reads only (Ledger's Transfer is not retried by the channel).
 */
export function giftClients(roomTarget: string, ledgerTarget: string): { room: RoomServiceClient; ledger: LedgerServiceClient } {
  const channelOptions = { 'grpc.keepalive_time_ms': 30_000 };
  return {
    room: createLbClient(RoomServiceClient, roomTarget, { channelOptions }),
    ledger: createLbClient(LedgerServiceClient, ledgerTarget, { channelOptions }),
  };
}

/** Internal calls carry the Gift service's own identity, an admin, as the Ledger's contract asks. */
export function serviceIdentity(userId: string): Metadata {
  const md = new Metadata();
  md.set('lm-user-id', userId);
  md.set('lm-role', 'admin');
  return md;
}
