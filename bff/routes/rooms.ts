/**
 * Room screens (entering a room, its gift bar, its ranking, discovery) and what viewers do in a
 * room (gifts, chat, likes). The screens are public and go through the micro-cache; the actions
 * are per user and never cached.
 */
import { randomUUID } from 'node:crypto';
import { Router } from 'express';
import { z } from 'zod';
import { GetLikeCountRequest, ListRecentMessagesRequest, SendLikesRequest, SendMessageRequest, SendMessageOutcome } from '../../gen/ts/livemesh/chat/v1/chat.js';
import { ListRoomGiftsRequest, SendGiftRequest } from '../../gen/ts/livemesh/gift/v1/gift.js';
import { GetRoomRankingRequest, RankingPeriod } from '../../gen/ts/livemesh/ranking/v1/ranking.js';
import { GetOnlineCountRequest, GetRoomRequest, ListLiveRoomsRequest } from '../../gen/ts/livemesh/room/v1/room.js';
import { CHAT_CONTRACT, GIFT_CONTRACT, RANKING_CONTRACT, ROOM_CONTRACT } from '../../kit/contract-rules.js';
import { callerOf, mustCaller, requireRole, shortName } from '../auth.js';
import { callFor, sendCachedScreen, type BffContext } from '../context.js';
import { HttpError } from '../errors.js';
import { presentEvent, presentGifts, presentOrder, presentRank, presentRoom, ROOM_FIELDS } from '../present.js';
import type { Body, discoveryResponse, rankingResponse, roomGiftsResponse, sendGiftResponse } from '../responses.js';
import { ROOM_SCREENS } from '../screens.js';
import { assemble } from '../sections.js';
import { int64Id, minorAmount, parseInput } from '../validate.js';
import { noteRecentRoom } from './recent.js';

export const roomParams = z.object({ id: int64Id });

/** The longest sender names Gift and Chat keep. */
const GIFT_NAME_MAX = GIFT_CONTRACT.senderName;
const CHAT_NAME_MAX = CHAT_CONTRACT.senderName;
const TOP = RANKING_CONTRACT.top;
const MAX_COUNT = GIFT_CONTRACT.maxCount;
const TEXT_MAX = CHAT_CONTRACT.text;
const LIKES_MAX = CHAT_CONTRACT.likes;


const RANKING_PERIODS = { live: RankingPeriod.RANKING_PERIOD_LIVE, day: RankingPeriod.RANKING_PERIOD_DAY, week: RankingPeriod.RANKING_PERIOD_WEEK } as const;
export const rankingQuery = z.object({
  period: z.enum(['live', 'day', 'week'], { error: 'must be live, day or week' }).default('live'),
  limit: z.coerce.number({ error: `must be an integer between 1 and ${TOP}` }).int().min(1).max(TOP).default(20),
});

export const discoveryQuery = z.object({
  live: z.literal('1', { error: 'only live rooms can be listed: live=1' }).default('1'),
  cursor: z.string().max(512).default(''),
  category: z.string().max(ROOM_CONTRACT.category).default(''),
});

/** Idempotency keys: what clients put in the header, short enough to store and log. */
const idempotencyKey = z.string({ error: 'header is required (a unique key per gift, reused only to retry the same gift)' }).regex(new RegExp(`^[A-Za-z0-9_.:-]{8,${GIFT_CONTRACT.idempotencyKey}}$`), { error: `must be 8-${GIFT_CONTRACT.idempotencyKey} letters, digits or _ . : -` });

export const sendGiftBody = z.strictObject({
  giftId: int64Id,
  count: z.number({ error: `must be an integer between 1 and ${MAX_COUNT}` }).int({ error: `must be an integer between 1 and ${MAX_COUNT}` }).min(1).max(MAX_COUNT).default(1),
  /** The price the client showed; the order fails with PRICE_CHANGED rather than charge another. */
  expectedUnitPriceMinor: minorAmount.optional(),
});

export const chatBody = z.strictObject({
  text: z.string({ error: 'must be a string' }).trim().min(1, { error: 'must not be empty' }).max(TEXT_MAX, { error: `must be at most ${TEXT_MAX} characters` }),
  clientMessageId: z.string().regex(new RegExp(`^[A-Za-z0-9_.:-]{1,${CHAT_CONTRACT.clientMessageId}}$`), { error: `must be 1-${CHAT_CONTRACT.clientMessageId} letters, digits or _ . : -` }).optional(),
});

export const likesBody = z.strictObject({
  count: z.number({ error: `must be an integer between 1 and ${LIKES_MAX}` }).int({ error: `must be an integer between 1 and ${LIKES_MAX}` }).min(1).max(LIKES_MAX),
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
  r.get(ROOM_SCREENS.entry.route, async (req, res) => {
    const { id } = parseInput(roomParams, req.params, 'path');
    const caller = callerOf(res);
    if (caller && ROOM_SCREENS.entry.notesVisit) noteRecentRoom(ctx, caller.userId, id);
    await sendCachedScreen(ctx, req, res, ROOM_SCREENS.entry.cacheKey(id), async () => {
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
          likes: { upstream: chat, run: (deadline) => chat.call('getLikeCount', GetLikeCountRequest.fromPartial({ roomId: id }), { deadline }) },
        },
        screenBudget(ctx),
      );
      return {
        room: presentRoom(values.room.room ?? notFound(id)),
        onlineCount: values.online.onlineCount,
        gifts: presentGifts(values.gifts.gifts),
        ranking: values.ranking ? values.ranking.entries.map(presentRank) : null,
        messages: values.messages ? values.messages.events.map(presentEvent) : null,
        likes: values.likes ? { total: values.likes.likeCount } : null,
        // Where the room stream continues from these messages: connect with ?after=<offset>&epoch=<epoch>.
        stream: values.messages?.position ? { offset: values.messages.position.offset, epoch: values.messages.position.epoch } : null,
        degraded,
      };
    });
  });

  r.get(ROOM_SCREENS.gifts.route, async (req, res) => {
    const { id } = parseInput(roomParams, req.params, 'path');
    await sendCachedScreen(ctx, req, res, ROOM_SCREENS.gifts.cacheKey(id), async () => {
      const { values } = await assemble({ gifts: { upstream: gift, run: (deadline) => gift.call('listRoomGifts', ListRoomGiftsRequest.fromPartial({ roomId: id }), { deadline }) } }, {}, screenBudget(ctx));
      return { roomId: id, giftGroupId: values.gifts.giftGroupId, gifts: presentGifts(values.gifts.gifts) } satisfies Body<typeof roomGiftsResponse>;
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
      return { roomId: id, period, entries: values.board.entries.map(presentRank), total: values.board.totalEntries, asOf: values.board.snapshotTime?.toISOString() ?? null } satisfies Body<typeof rankingResponse>;
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
      // Online counts are a nicety of the list: each within the optional deadline, null when it fails.
      const deadline = Date.now() + Math.min(ctx.settings.OPTIONAL_DEADLINE_MS, ctx.settings.REQUEST_BUDGET_MS);
      const counts = await Promise.allSettled(values.list.rooms.map((x) => room.call('getOnlineCount', GetOnlineCountRequest.fromPartial({ roomId: x.roomId }), { deadline })));
      return {
        rooms: values.list.rooms.map((x, i) => {
          const c = counts[i];
          return { ...presentRoom(x), onlineCount: c?.status === 'fulfilled' ? c.value.onlineCount : null };
        }),
        nextCursor: values.list.page?.nextPageToken || null,
      } satisfies Body<typeof discoveryResponse>;
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
    res.status(out.replayed ? 200 : 201).json({ order: out.order ? presentOrder(out.order) : null, comboCount: out.comboCount, balanceMinor: out.senderBalance?.amountMinor ?? null, replayed: out.replayed } satisfies Body<typeof sendGiftResponse>);
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
    res.status(201).json({ messageId: out.messageId, outcome: OUTCOMES[out.outcome] ?? 'published', seq: out.seq === '0' ? null : out.seq, sentAt: out.sendTime?.toISOString() ?? null });
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
