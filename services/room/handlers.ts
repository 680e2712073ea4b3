import type { RoomServiceServer } from '../../gen/ts/livemesh/room/v1/room.js';
import { unary } from '../kit/handler.js';
import type { Logger } from '../kit/logger.js';
import { applyMask, parseReadMask, toProtoRoom } from './mapping.js';
import type { Rooms } from './rooms.js';

/**
 * The gRPC face of the Room service: wire messages in, domain calls, wire messages out.
 * RPCs not listed here answer UNIMPLEMENTED (grpc-js's default) until their issue lands.
 */
export function roomHandlers(rooms: Rooms, log: Logger): Partial<RoomServiceServer> {
  return {
    createRoom: unary(log, async (req, ctx) => ({
      room: toProtoRoom(
        await rooms.create(ctx.caller, {
          streamerId: req.streamerId,
          title: req.title,
          category: req.category,
          coverKey: req.coverKey,
          notice: req.notice,
          requestId: req.requestId,
        }),
      ),
    })),
    getRoom: unary(log, async (req) => {
      const keep = parseReadMask(req.readMask);
      return { room: applyMask(toProtoRoom(await rooms.get(req.roomId)), keep) };
    }),
  };
}
