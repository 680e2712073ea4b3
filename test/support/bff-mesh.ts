import type { Isolation } from '../../scripts/isolation.js';
import { seedGiftCatalog, startBff, type BffServer } from './bff.js';
import { startChat, startRanking, type ChatServer, type RankingServer } from './chat.js';
import { giftEnv, startGift, type GiftServer } from './gift.js';
import { startLedger, type LedgerServer } from './ledger.js';
import { startRoom, type RoomServer } from './room.js';

export interface BffMesh {
  room: RoomServer;
  ledger: LedgerServer;
  gift: GiftServer;
  chat: ChatServer;
  /** Undefined when started without Ranking. */
  ranking: RankingServer | undefined;
  bff: BffServer;
  /** The seeded catalog's rose (100 minor units). */
  roseId: string;
  /** Stops everything, the BFF first, and drops the isolation's data. */
  close(): Promise<void>;
}

/**
 * Room, Ledger, Gift (with the test catalog), Chat and, unless `ranking: false`, Ranking, each
 * in-process on the isolation, and a BFF in front of them with `bffEnv` on top of their addresses:
 * the world the BFF's API tests run against.
 */
export async function startBffMesh(iso: Isolation, opts: { ranking?: boolean; rankingSnapshotMs?: number; bffEnv?: Record<string, string> } = {}): Promise<BffMesh> {
  const room = await startRoom(iso);
  const ledger = await startLedger(iso, { MYSQL_DATABASE: `${iso.database}_ledger` });
  const gift = await startGift(iso, giftEnv(iso, room.address, ledger.address));
  const effects = { ROOM_ADDR: room.address, GIFT_ADDR: gift.address, LEDGER_ADDR: ledger.address };
  const [chat, ranking] = await Promise.all([
    startChat(iso, effects),
    opts.ranking === false ? undefined : startRanking(iso, { ...effects, RANKING_SNAPSHOT_MS: String(opts.rankingSnapshotMs ?? 100) }),
  ]);
  const catalog = await seedGiftCatalog(gift.address);
  catalog.client.close();
  const bff = await startBff(iso, { ...effects, CHAT_ADDR: chat.address, ...(ranking ? { RANKING_ADDR: ranking.address } : {}), ...opts.bffEnv });
  return {
    room,
    ledger,
    gift,
    chat,
    ranking,
    bff,
    roseId: catalog.rose.giftId,
    async close() {
      await bff.close();
      await ranking?.close();
      await chat.close();
      await gift.close();
      await ledger.close();
      await room.close();
      await iso.cleanup();
    },
  };
}
