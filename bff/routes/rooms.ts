/**
 * Room screens (entering a room, its gift bar, its ranking, discovery) and what viewers do in a
 * room (gifts, chat, likes). The screens are public and go through the micro-cache; the actions
 * are per user and never cached.
 */
import { randomUUID } from 'node:crypto';
import { Router } from 'express';
import { z } from 'zod';
import { ListRecentMessagesRequest, SendLikesRequest, SendMessageRequest, SendMessageOutcome } from '../../gen/ts/livemesh/chat/v1/chat.js';
import { ListRoomGiftsRequest, SendGiftRequest } from '../../gen/ts/livemesh/gift/v1/gift.js';
import { GetRoomRankingRequest, RankingPeriod } from '../../gen/ts/livemesh/ranking/v1/ranking.js';
import { GetOnlineCountRequest, GetRoomRequest, ListLiveRoomsRequest } from '../../gen/ts/livemesh/room/v1/room.js';
import { callerOf, mustCaller, requireRole, shortName } from '../auth.js';
import { callFor, sendCachedScreen, type BffContext } from '../context.js';
import { HttpError } from '../errors.js';
import { presentEvent, presentGifts, presentOrder, presentRank, presentRoom, ROOM_FIELDS } from '../present.js';
import { assemble } from '../sections.js';
import { int64Id, minorAmount, parseInput } from '../validate.js';
import { noteRecentRoom } from './recent.js';

export const roomParams = z.object({ id: int64Id });

/** The longest sender names Gift and Chat keep (their LIMITS.senderName). */
const GIFT_NAME_MAX = 32;
const CHAT_NAME_MAX = 20;

/** Cache keys of a room's public screens, dropped when this replica changes the room. */
export const roomCacheKeys = (roomId: string) => [`room:${roomId}`, `gifts:${roomId}`];

const RANKING_PERIODS = { live: RankingPeriod.RANKING_PERIOD_LIVE, day: RankingPeriod.RANKING_PERIOD_DAY, week: RankingPeriod.RANKING_PERIOD_WEEK } as const;
export const rankingQuery = z.object({
  period: z.enum(['live', 'day', 'week'], { error: 'must be live, day or week' }).default('live'),
  limit: z.coerce.number({ error: 'must be an integer between 1 and 100' }).int().min(1).max(100).default(20),
});

export const discoveryQuery = z.object({
  live: z.literal('1', { error: 'only live rooms can be listed: live=1' }).default('1'),
  cursor: z.string().max(512).default(''),
  category: z.string().max(32).default(''),
});

/** Idempotency keys: what clients put in the header, short enough to store and log. */
const idempotencyKey = z.string({ error: 'header is required (a unique key per gift, reused only to retry the same gift)' }).regex(/^[A-Za-z0-9_.:-]{8,64}$/, { error: 'must be 8-64 letters, digits or _ . : -' });

export const sendGiftBody = z.strictObject({
  giftId: int64Id,
  count: z.number({ error: 'must be an integer between 1 and 9999' }).int({ error: 'must be an integer between 1 and 9999' }).min(1).max(9999).default(1),
  /** The price the client showed; the order fails with PRICE_CHANGED rather than charge another. */
  expectedUnitPriceMinor: minorAmount.optional(),
});

export const chatBody = z.strictObject({
  text: z.string({ error: 'must be a string' }).trim().min(1, { error: 'must not be empty' }).max(200, { error: 'must be at most 200 characters' }),
  clientMessageId: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, { error: 'must be 1-64 letters, digits or _ . : -' }).optional(),
});

export const likesBody = z.strictObject({
  count: z.number({ error: 'must be an integer between 1 and 1000' }).int({ error: 'must be an integer between 1 and 1000' }).min(1).max(1000),
});

const OUTCOMES: Record<number, string> = {
  [SendMessageOutcome.SEND_MESSAGE_OUTCOME_PUBLISHED]: 'published',
  [SendMessageOutcome.SEND_MESSAGE_OUTCOME_MERGED]: 'merged',
  [SendMessageOutcome.SEND_MESSAGE_OUTCOME_DUPLICATE]: 'duplicate',
};

export function roomRoutes(ctx: BffContext): Router {
  const r = Router();
  const { room, gift, chat, ranking } = ctx.upstreams;

  /**
   * Entering a room: everything the first screen shows, in one response. Room, online count and
   * gift bar are the screen; the ranking and recent messages can go missing under load.
   */
  r.get('/v1/rooms/:id', async (req, res) => {
    const { id } = parseInput(roomParams, req.params, 'path');
    const caller = callerOf(res);
    if (caller) noteRecentRoom(ctx, caller.userId, id);
    await sendCachedScreen(ctx, req, res, `room:${id}`, async () => {
      const { values, degraded } = await assemble(
        {
          room: { upstream: room, run: (deadline) => room.call('getRoom', GetRoomRequest.fromPartial({ roomId: id, readMask: ROOM_FIELDS }), { deadline }) },
          online: { upstream: room, run: (deadline) => room.call('getOnlineCount', GetOnlineCountRequest.fromPartial({ roomId: id }), { deadline }) },
          gifts: { upstream: gift, run: (deadline) => gift.call('listRoomGifts', ListRoomGiftsRequest.fromPartial({ roomId: id }), { deadline }) },
        },
        {
          ranking: {
            upstream: ranking,
            switch: 'room.ranking',
            run: (deadline) => ranking.call('getRoomRanking', GetRoomRankingRequest.fromPartial({ roomId: id, period: RankingPeriod.RANKING_PERIOD_LIVE, limit: 3 }), { deadline }),
          },
          messages: {
            upstream: chat,
            switch: 'room.messages',
            run: (deadline) => chat.call('listRecentMessages', ListRecentMessagesRequest.fromPartial({ roomId: id, limit: 20 }), { deadline }),
          },
        },
        screenBudget(ctx),
      );
      return {
        room: presentRoom(values.room.room ?? notFound(id)),
        onlineCount: values.online.onlineCount,
        gifts: presentGifts(values.gifts.gifts),
        ranking: values.ranking ? values.ranking.entries.map(presentRank) : null,
        messages: values.messages ? values.messages.events.map(presentEvent) : null,
        degraded,
      };
    });
  });

  r.get('/v1/rooms/:id/gifts', async (req, res) => {
    const { id } = parseInput(roomParams, req.params, 'path');
    await sendCachedScreen(ctx, req, res, `gifts:${id}`, async () => {
      const { values } = await assemble({ gifts: { upstream: gift, run: (deadline) => gift.call('listRoomGifts', ListRoomGiftsRequest.fromPartial({ roomId: id }), { deadline }) } }, {}, screenBudget(ctx));
      return { roomId: id, giftGroupId: values.gifts.giftGroupId, gifts: presentGifts(values.gifts.gifts) };
    });
  });

  r.get('/v1/rooms/:id/ranking', async (req, res) => {
    const { id } = parseInput(roomParams, req.params, 'path');
    const { period, limit } = parseInput(rankingQuery, req.query, 'query');
    await sendCachedScreen(ctx, req, res, `ranking:${id}:${period}:${limit}`, async () => {
      const { values } = await assemble(
        { board: { upstream: ranking, run: (deadline) => ranking.call('getRoomRanking', GetRoomRankingRequest.fromPartial({ roomId: id, period: RANKING_PERIODS[period], limit }), { deadline }) } },
        {},
        screenBudget(ctx),
      );
      return { roomId: id, period, entries: values.board.entries.map(presentRank), total: values.board.totalEntries, asOf: values.board.snapshotTime?.toISOString() ?? null };
    });
  });

  /** Discovery: live rooms, newest first, a page at a time; `cursor` is the opaque token of the previous page. */
  r.get('/v1/rooms', async (req, res) => {
    const { cursor, category } = parseInput(discoveryQuery, req.query, 'query');
    await sendCachedScreen(ctx, req, res, `live:${category}:${cursor}`, async () => {
      const { values } = await assemble(
        { list: { upstream: room, run: (deadline) => room.call('listLiveRooms', ListLiveRoomsRequest.fromPartial({ category, page: { pageSize: 20, pageToken: cursor } }), { deadline }) } },
        {},
        screenBudget(ctx),
      );
      return { rooms: values.list.rooms.map(presentRoom), nextCursor: values.list.page?.nextPageToken || null };
    });
  });

  /** Sends a paid gift. The Idempotency-Key makes a retried request (a flaky mobile network) charge once. */
  r.post('/v1/rooms/:id/gifts', requireRole(), async (req, res) => {
    const caller = mustCaller(res);
    const { id } = parseInput(roomParams, req.params, 'path');
    const key = parseInput(z.object({ 'Idempotency-Key': idempotencyKey }), { 'Idempotency-Key': req.get('idempotency-key') }, 'header')['Idempotency-Key'];
    const body = parseInput(sendGiftBody, req.body, 'body');
    const out = await gift.call(
      'sendGift',
      SendGiftRequest.fromPartial({ idempotencyKey: key, roomId: id, giftId: body.giftId, count: body.count, expectedUnitPriceMinor: body.expectedUnitPriceMinor ?? '0', senderName: shortName(caller.name, GIFT_NAME_MAX) }),
      callFor(ctx, caller),
    );
    res.status(out.replayed ? 200 : 201).json({ order: out.order ? presentOrder(out.order) : null, comboCount: out.comboCount, balanceMinor: out.senderBalance?.amountMinor ?? null, replayed: out.replayed });
  });

  /** `clientMessageId` makes a retried send count once; without one the BFF picks a fresh id (no retry safety). */
  r.post('/v1/rooms/:id/chat', requireRole(), async (req, res) => {
    const caller = mustCaller(res);
    const { id } = parseInput(roomParams, req.params, 'path');
    const body = parseInput(chatBody, req.body, 'body');
    const out = await chat.call(
      'sendMessage',
      SendMessageRequest.fromPartial({ roomId: id, text: body.text, clientMessageId: body.clientMessageId ?? randomUUID(), senderName: shortName(caller.name, CHAT_NAME_MAX) }),
      callFor(ctx, caller),
    );
    res.status(201).json({ messageId: out.messageId, outcome: OUTCOMES[out.outcome] ?? 'published' });
  });

  r.post('/v1/rooms/:id/likes', requireRole(), async (req, res) => {
    const caller = mustCaller(res);
    const { id } = parseInput(roomParams, req.params, 'path');
    const body = parseInput(likesBody, req.body, 'body');
    const out = await chat.call('sendLikes', SendLikesRequest.fromPartial({ roomId: id, count: body.count }), callFor(ctx, caller));
    res.json({ accepted: out.acceptedCount });
  });

  return r;
}

function screenBudget(ctx: BffContext) {
  return { startedAt: Date.now(), budgetMs: ctx.settings.REQUEST_BUDGET_MS, optionalDeadlineMs: ctx.settings.OPTIONAL_DEADLINE_MS, switches: ctx.switches };
}

function notFound(id: string): never {
  throw new HttpError(404, { error: { code: 'NOT_FOUND', message: `room ${id} not found`, reason: 'ROOM_NOT_FOUND' } });
}
