import { ChatServiceClient } from '../../gen/ts/livemesh/chat/v1/chat.js';
import { GiftServiceClient } from '../../gen/ts/livemesh/gift/v1/gift.js';
import { LedgerServiceClient } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { RankingServiceClient } from '../../gen/ts/livemesh/ranking/v1/ranking.js';
import { RoomServiceClient } from '../../gen/ts/livemesh/room/v1/room.js';
import { createLbClient } from '../../lb/client.js';

export type ServiceName = 'room' | 'gift' | 'ledger' | 'chat' | 'ranking';

/** What the load needs to know about a running mesh: `scripts/mesh.ts`'s Mesh has both. */
export interface LoadTarget {
  addresses(service: ServiceName): string[];
  bffUrl: string;
}

/**
 * One P2C client per service over every replica, exactly as an internal team's client is made
 * (lb/ createLbClient): a replica that dies is routed around by the balancer, not by the load.
 */
export interface MeshClients {
  room: RoomServiceClient;
  gift: GiftServiceClient;
  ledger: LedgerServiceClient;
  chat: ChatServiceClient;
  ranking: RankingServiceClient;
  close(): void;
}

export function meshClients(target: Pick<LoadTarget, 'addresses'>): MeshClients {
  const spec = (s: ServiceName) => target.addresses(s).join(',');
  const room = createLbClient(RoomServiceClient, spec('room'));
  const gift = createLbClient(GiftServiceClient, spec('gift'));
  const ledger = createLbClient(LedgerServiceClient, spec('ledger'));
  const chat = createLbClient(ChatServiceClient, spec('chat'));
  const ranking = createLbClient(RankingServiceClient, spec('ranking'));
  return {
    room,
    gift,
    ledger,
    chat,
    ranking,
    close() {
      for (const c of [room, gift, ledger, chat, ranking]) c.close();
    },
  };
}
