import type { RoomServiceServer } from '../../gen/ts/livemesh/room/v1/room.js';
import { unary } from '../../kit/handler.js';
import type { Logger } from '../../kit/logger.js';
import { applyMask, parseReadMask, recordFields, toProtoRoom } from './mapping.js';
import type { HotRooms, Presence } from './presence.js';
import type { RoomReader } from './reads.js';
import type { RoomWriter } from './writes.js';

export interface RoomUseCases {
  writer: RoomWriter;
  reader: RoomReader;
  presence: Presence;
  hot: HotRooms;
}

/** The gRPC face of the Room service: wire messages in, domain calls, wire messages out. */
export function roomHandlers({ writer, reader, presence, hot }: RoomUseCases, log: Logger): RoomServiceServer {
  return {
    createRoom: unary(log, async (req, ctx) => ({
      room: toProtoRoom(
        await writer.create(ctx.caller, {
          streamerId: req.streamerId,
          title: req.title,
          category: req.category,
          coverKey: req.coverKey,
          notice: req.notice,
          requestId: req.requestId,
        }),
      ),
    })),
    updateRoom: unary(log, async (req, ctx) => ({
      room: toProtoRoom(
        await writer.update(ctx.caller, {
          roomId: req.roomId,
          text: { title: req.room?.title ?? '', category: req.room?.category ?? '', coverKey: req.room?.coverKey ?? '', notice: req.room?.notice ?? '' },
          paths: req.updateMask ?? [],
          expectedVersion: req.expectedVersion,
        }),
      ),
    })),
    startLive: unary(log, async (req, ctx) => ({ room: toProtoRoom(await writer.startLive(ctx.caller, req.roomId)) })),
    stopLive: unary(log, async (req, ctx) => ({ room: toProtoRoom(await writer.stopLive(ctx.caller, req.roomId)) })),
    assignGiftGroup: unary(log, async (req, ctx) => ({ room: toProtoRoom(await writer.assignGiftGroup(ctx.caller, req.roomId, req.giftGroupId)) })),

    getRoom: unary(log, async (req) => {
      const keep = parseReadMask(req.readMask);
      return { room: applyMask(toProtoRoom(await reader.get(req.roomId)), keep) };
    }),
    batchGetRooms: unary(log, async (req) => {
      const keep = parseReadMask(req.readMask);
      const { rooms, missing } = await reader.batchGet(req.roomIds, keep ? recordFields(keep) : undefined);
      return { rooms: rooms.map((r) => applyMask(toProtoRoom(r), keep)), missingRoomIds: missing };
    }),
    listLiveRooms: unary(log, async (req) => {
      const page = await reader.listLive(req.category, req.page?.pageSize, req.page?.pageToken ?? '');
      return { rooms: page.rooms.map(toProtoRoom), page: { nextPageToken: page.nextPageToken } };
    }),
    listHotRooms: unary(log, async (req) => {
      const { rooms, at } = await hot.list(req.limit);
      return { rooms: rooms.map((h) => ({ room: toProtoRoom(h.room), onlineCount: String(h.online) })), computeTime: at };
    }),
    listRoomsByStreamer: unary(log, async (req) => {
      const page = await reader.listByStreamer(req.streamerId, req.page?.pageSize, req.page?.pageToken ?? '');
      return { rooms: page.rooms.map(toProtoRoom), page: { nextPageToken: page.nextPageToken } };
    }),

    enterRoom: unary(log, async (req, ctx) => {
      const { room, online } = await presence.enter(ctx.caller, req.roomId, req.sessionId);
      return { room: toProtoRoom(room), onlineCount: String(online) };
    }),
    leaveRoom: unary(log, async (req, ctx) => ({ onlineCount: String(await presence.leave(ctx.caller, req.roomId, req.sessionId)) })),
    getOnlineCount: unary(log, async (req) => ({ onlineCount: String(await presence.count(req.roomId)) })),
  };
}
