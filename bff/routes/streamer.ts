/**
 * What streamers do to their rooms. Room checks ownership (a streamer may change only their own
 * rooms); the BFF checks the role first so a viewer gets a 403 without a round trip, and drops its
 * own cached screens of the room so the streamer sees the change on their next read.
 */
import { Router } from 'express';
import { z } from 'zod';
import { CreateRoomRequest, StartLiveRequest, StopLiveRequest, UpdateRoomRequest } from '../../gen/ts/livemesh/room/v1/room.js';
import { ROOM_CONTRACT } from '../../kit/contract-rules.js';
import { mustCaller, requireRole } from '../auth.js';
import { callFor, type BffContext } from '../context.js';
import { HttpError } from '../errors.js';
import { presentRoom } from '../present.js';
import { int64Id, parseInput } from '../validate.js';
import { roomCacheKeys } from '../screens.js';
import { roomParams } from './rooms.js';

const text = (max: number) => z.string({ error: 'must be a string' }).max(max, { error: `must be at most ${max} characters` });
const editable = {
  title: text(ROOM_CONTRACT.title).trim().min(1, { error: 'must not be empty' }),
  category: text(ROOM_CONTRACT.category),
  coverKey: text(ROOM_CONTRACT.coverKey),
  notice: text(ROOM_CONTRACT.notice),
};
export const createBody = z.strictObject({ ...editable, category: editable.category.optional(), coverKey: editable.coverKey.optional(), notice: editable.notice.optional() });
export const patchBody = z.strictObject({
  title: editable.title.optional(),
  category: editable.category.optional(),
  coverKey: editable.coverKey.optional(),
  notice: editable.notice.optional(),
  /** Optimistic lock: the version the client edited; a stale one is a 409. */
  expectedVersion: int64Id.optional(),
});

/** JSON field → the Room field path in an update mask. */
const MASK_PATHS: Record<string, string> = { title: 'title', category: 'category', coverKey: 'cover_key', notice: 'notice' };

const requestId = z
  .string({ error: 'header is required (a unique key per new room, reused only to retry the same create)' })
  .regex(new RegExp(`^[A-Za-z0-9_.:-]{8,${ROOM_CONTRACT.requestId}}$`), { error: `must be 8-${ROOM_CONTRACT.requestId} letters, digits or _ . : -` });

export function streamerRoutes(ctx: BffContext): Router {
  const r = Router();
  const { room } = ctx.upstreams;
  const streamer = requireRole('streamer', 'admin');
  const forget = (roomId: string) => roomCacheKeys(roomId).forEach((k) => ctx.cache.delete(k));

  /** Idempotency-Key is required, as for every call that creates something: a retried create returns the same room. */
  r.post('/v1/rooms', streamer, async (req, res) => {
    const caller = mustCaller(res);
    const key = parseInput(z.object({ 'Idempotency-Key': requestId }), { 'Idempotency-Key': req.get('idempotency-key') }, 'header')['Idempotency-Key'];
    const body = parseInput(createBody, req.body, 'body');
    const out = await room.call('createRoom', CreateRoomRequest.fromPartial({ streamerId: caller.userId, ...body, requestId: key }), callFor(ctx, caller));
    res.status(201).json({ room: out.room ? presentRoom(out.room) : null });
  });

  r.patch('/v1/rooms/:id', streamer, async (req, res) => {
    const caller = mustCaller(res);
    const { id } = parseInput(roomParams, req.params, 'path');
    const { expectedVersion, ...fields } = parseInput(patchBody, req.body, 'body');
    const paths = Object.keys(fields).map((f) => MASK_PATHS[f] as string);
    if (paths.length === 0) throw HttpError.badRequest('body', `name at least one field to change: ${Object.keys(MASK_PATHS).join(', ')}`);
    const out = await room.call('updateRoom', UpdateRoomRequest.fromPartial({ roomId: id, room: { roomId: id, ...fields }, updateMask: paths, expectedVersion: expectedVersion ?? '0' }), callFor(ctx, caller));
    forget(id);
    res.json({ room: out.room ? presentRoom(out.room) : null });
  });

  r.post('/v1/rooms/:id/live', streamer, async (req, res) => {
    const caller = mustCaller(res);
    const { id } = parseInput(roomParams, req.params, 'path');
    const out = await room.call('startLive', StartLiveRequest.fromPartial({ roomId: id }), callFor(ctx, caller));
    forget(id);
    res.json({ room: out.room ? presentRoom(out.room) : null });
  });

  r.delete('/v1/rooms/:id/live', streamer, async (req, res) => {
    const caller = mustCaller(res);
    const { id } = parseInput(roomParams, req.params, 'path');
    const out = await room.call('stopLive', StopLiveRequest.fromPartial({ roomId: id }), callFor(ctx, caller));
    forget(id);
    res.json({ room: out.room ? presentRoom(out.room) : null });
  });

  return r;
}
