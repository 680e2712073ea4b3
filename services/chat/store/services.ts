import { Asset } from '../../../gen/ts/livemesh/common/v1/common.js';
import { onBehalfOf, type MeshCredentials } from '../../../kit/credentials.js';
import type { Caller } from '../../../kit/identity.js';
import { ledgerClient, type LedgerClient } from '../../ledger/client.js';
import type { RoomClient, RoomFacts } from '../../room/client.js';
import { dependencyUnavailable } from '../errors.js';
import type { LevelSource } from '../levels.js';
import type { RoomInfo } from '../model.js';
import type { OnlineSource } from '../notices.js';

const CALL_TIMEOUT_MS = 2000;

/** The four room facts Chat keeps (Room's directory and change events carry more). */
export const roomInfoOf = (room: RoomFacts): RoomInfo => ({ roomId: room.roomId, streamerId: room.streamerId, live: room.live, version: room.version });

/** Online counts from the Room service's hot list. */
export class RoomOnlineSource implements OnlineSource {
  constructor(private readonly room: RoomClient) {}

  async hottest(limit: number): Promise<Array<{ roomId: string; online: number }>> {
    const res = await this.room.listHotRooms({ limit }, { deadlineMs: CALL_TIMEOUT_MS });
    return res.rooms.flatMap((h) => (h.room ? [{ roomId: h.room.roomId, online: Number(h.onlineCount) }] : []));
  }
}

/**
 * Levels from the Ledger's GetBalances, asked on the viewer's behalf (their own identity, so no
 * admin rights are needed), which always carries the level derived from EXP.
 */
export class GrpcLevelSource implements LevelSource {
  private readonly client: LedgerClient | undefined;

  constructor(address: string, credentials: MeshCredentials) {
    this.client = address ? ledgerClient(address, credentials) : undefined;
  }

  async levelOf(caller: Pick<Caller, 'userId' | 'role' | 'token'>): Promise<number> {
    const client = this.client;
    if (!client) throw dependencyUnavailable('this room has a minimum level and LEDGER_ADDR is not configured, so levels cannot be checked');
    const res = await client.getBalances({ ownerId: caller.userId, assets: [Asset.ASSET_EXP] }, { metadata: onBehalfOf(caller), deadlineMs: CALL_TIMEOUT_MS });
    return res.level?.level ?? 0;
  }

  close(): void {
    this.client?.close();
  }
}
