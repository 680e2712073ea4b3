import { Metadata, status as Code, type ServiceError } from '@grpc/grpc-js';
import { Asset } from '../../../gen/ts/livemesh/common/v1/common.js';
import { LedgerServiceClient } from '../../../gen/ts/livemesh/ledger/v1/ledger.js';
import { RoomChangedEvent, RoomServiceClient, RoomStatus, type Room } from '../../../gen/ts/livemesh/room/v1/room.js';
import { deadlineIn, serviceClient } from '../../../kit/clients.js';
import { onBehalfOf, type MeshCredentials } from '../../../kit/credentials.js';
import type { Caller } from '../../../kit/identity.js';
import type { Logger } from '../../../kit/logger.js';
import { subject, type NatsConnection } from '../../../kit/nats.js';
import { dependencyUnavailable } from '../errors.js';
import type { LevelSource } from '../levels.js';
import type { RoomInfo } from '../model.js';
import type { OnlineSource } from '../notices.js';
import type { RoomSource } from '../rooms.js';

const CALL_TIMEOUT_MS = 2000;

const infoOf = (room: Room): RoomInfo => ({ roomId: room.roomId, streamerId: room.streamerId, live: room.status === RoomStatus.ROOM_STATUS_LIVE, version: room.version });

/** Room facts from the Room service's GetRoom (only the four fields Chat uses), and its hot list. */
export class GrpcRoomSource implements RoomSource, OnlineSource {
  private readonly client: RoomServiceClient;

  constructor(address: string, credentials: MeshCredentials) {
    this.client = serviceClient(RoomServiceClient, address, credentials);
  }

  fetch(roomId: string): Promise<RoomInfo | undefined> {
    return new Promise((resolve, reject) =>
      this.client.getRoom({ roomId, readMask: ['room_id', 'streamer_id', 'status', 'version'] }, new Metadata(), deadlineIn(CALL_TIMEOUT_MS), (err: ServiceError | null, res) => {
        if (err?.code === Code.NOT_FOUND) return resolve(undefined);
        if (err) return reject(err);
        resolve(res.room ? infoOf(res.room) : undefined);
      }),
    );
  }

  hottest(limit: number): Promise<Array<{ roomId: string; online: number }>> {
    return new Promise((resolve, reject) =>
      this.client.listHotRooms({ limit }, new Metadata(), deadlineIn(CALL_TIMEOUT_MS), (err, res) =>
        err ? reject(err) : resolve(res.rooms.flatMap((h) => (h.room ? [{ roomId: h.room.roomId, online: Number(h.onlineCount) }] : []))),
      ),
    );
  }

  close(): void {
    this.client.close();
  }
}

/**
 * Levels from the Ledger's GetBalances, asked on the viewer's behalf (their own identity, so no
 * admin rights are needed), which always carries the level derived from EXP.
 */
export class GrpcLevelSource implements LevelSource {
  private readonly client: LedgerServiceClient | undefined;

  constructor(address: string, credentials: MeshCredentials) {
    this.client = address ? serviceClient(LedgerServiceClient, address, credentials) : undefined;
  }

  levelOf(caller: Pick<Caller, 'userId' | 'role' | 'token'>): Promise<number> {
    const client = this.client;
    if (!client) return Promise.reject(dependencyUnavailable('this room has a minimum level and LEDGER_ADDR is not configured, so levels cannot be checked'));
    return new Promise((resolve, reject) =>
      client.getBalances({ ownerId: caller.userId, assets: [Asset.ASSET_EXP] }, onBehalfOf(caller), deadlineIn(CALL_TIMEOUT_MS), (err, res) =>
        err ? reject(err) : resolve(res.level?.level ?? 0),
      ),
    );
  }

  close(): void {
    this.client?.close();
  }
}

/**
 * Every Chat replica hears every room change (`room.changed.>` on core NATS, which the Room
 * service publishes through JetStream): its room cache is updated at once, and live notices are
 * derived from status changes.
 */
export function watchRoomChanges(nc: NatsConnection, prefix: string, onRoom: (room: RoomInfo) => void, log: Logger): { stop(): void } {
  const sub = nc.subscribe(subject(prefix, 'room.changed.>'), {
    callback: (err, msg) => {
      if (err) return log.warn({ err: err.message }, 'room change subscription error');
      try {
        const room = RoomChangedEvent.decode(msg.data).room;
        if (room) onRoom(infoOf(room));
      } catch (e) {
        log.warn({ err: (e as Error).message, subject: msg.subject }, 'undecodable room change event ignored');
      }
    },
  });
  return { stop: () => sub.unsubscribe() };
}
