import { credentials, Metadata, type ChannelOptions } from '@grpc/grpc-js';
import { LedgerServiceClient } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { RoomServiceClient } from '../../gen/ts/livemesh/room/v1/room.js';

/** The clients Gift calls, made in one place so every channel gets the same settings. */
export function giftClients(roomTarget: string, ledgerTarget: string): { room: RoomServiceClient; ledger: LedgerServiceClient } {
  const options: ChannelOptions = { 'grpc.keepalive_time_ms': 30_000 };
  return {
    room: new RoomServiceClient(roomTarget, credentials.createInsecure(), options),
    ledger: new LedgerServiceClient(ledgerTarget, credentials.createInsecure(), options),
  };
}

/** Internal calls carry the Gift service's own identity, an admin, as the Ledger's contract asks. */
export function serviceIdentity(userId: string): Metadata {
  const md = new Metadata();
  md.set('lm-user-id', userId);
  md.set('lm-role', 'admin');
  return md;
}
