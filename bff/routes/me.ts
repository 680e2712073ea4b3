/**
 * The "me" page in one call (seed 000: it used to take four), and a streamer's income.
 */
import { Router } from 'express';
import { z } from 'zod';
import { Asset } from '../../gen/ts/livemesh/common/v1/common.js';
import { GetBalancesRequest, GetDailyIncomeRequest } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { BatchGetRoomsRequest, ListHotRoomsRequest, ListRoomsByStreamerRequest, type Room } from '../../gen/ts/livemesh/room/v1/room.js';
import { mustCaller, requireRole } from '../auth.js';
import { callFor, type BffContext } from '../context.js';
import { presentRoom, presentWallet, ROOM_FIELDS } from '../present.js';
import type { Body, incomeResponse, meResponse } from '../responses.js';
import { assemble } from '../sections.js';
import { parseInput } from '../validate.js';
import { recentRoomIds } from './recent.js';

const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, { error: 'must be a day as YYYY-MM-DD' });
export const incomeQuery = z.object({ from: day, to: day }).refine((q) => q.from <= q.to, { error: 'must not be after to', path: ['from'] });

export function meRoutes(ctx: BffContext): Router {
  const r = Router();
  const { room, ledger } = ctx.upstreams;

  r.get('/v1/me', requireRole(), async (_req, res) => {
    const caller = mustCaller(res);
    const startedAt = Date.now();
    const noRooms = Promise.resolve({ rooms: [] as Room[] });
    const { values, degraded } = await assemble(
      {
        wallet: {
          upstream: ledger,
          // A streamer's INCOME (gifts received) comes in the same call; viewers earn none.
          run: (deadline) =>
            ledger.call('getBalances', GetBalancesRequest.fromPartial({ ownerId: caller.userId, assets: caller.role === 'viewer' ? [Asset.ASSET_COIN] : [Asset.ASSET_COIN, Asset.ASSET_INCOME] }), { caller, deadline }),
        },
        // Viewers host nothing: one call fewer for most users.
        hosted: {
          upstream: room,
          run: (deadline) =>
            caller.role === 'viewer' ? noRooms : room.call('listRoomsByStreamer', ListRoomsByStreamerRequest.fromPartial({ streamerId: caller.userId, page: { pageSize: 10 } }), { caller, deadline }),
        },
      },
      {
        recent: {
          upstream: room,
          switch: 'me.recent',
          run: async (deadline) => {
            const ids = await recentRoomIds(ctx, caller.userId);
            if (ids.length === 0) return [];
            const got = await room.call('batchGetRooms', BatchGetRoomsRequest.fromPartial({ roomIds: ids, readMask: ROOM_FIELDS }), { caller, deadline });
            const byId = new Map(got.rooms.map((x) => [x.roomId, x]));
            return ids.flatMap((id) => (byId.has(id) ? [byId.get(id) as Room] : []));
          },
        },
        recommended: {
          upstream: room,
          switch: 'me.recommended',
          run: (deadline) => room.call('listHotRooms', ListHotRoomsRequest.fromPartial({ limit: 10 }), { caller, deadline }),
        },
      },
      { startedAt, budgetMs: ctx.settings.REQUEST_BUDGET_MS, optionalDeadlineMs: ctx.settings.OPTIONAL_DEADLINE_MS, switches: ctx.switches },
    );
    res.setHeader('Cache-Control', 'private, no-cache');
    const body = {
      user: { id: caller.userId, name: caller.name, role: caller.role },
      wallet: {
        ...presentWallet(values.wallet.balances, values.wallet.level),
        incomeMinor: caller.role === 'viewer' ? null : (values.wallet.balances.find((b) => b.asset === Asset.ASSET_INCOME)?.amountMinor ?? '0'),
      },
      hostedRooms: values.hosted.rooms.map(presentRoom),
      recent: values.recent ? values.recent.map(presentRoom) : null,
      // A hot-list entry without its room (never expected) is left out rather than sent as a bare count.
      recommended: values.recommended ? values.recommended.rooms.flatMap((h) => (h.room ? [{ ...presentRoom(h.room), onlineCount: h.onlineCount }] : [])) : null,
      degraded,
    } satisfies Body<typeof meResponse>;
    res.json(body);
  });

  r.get('/v1/me/income', requireRole('streamer', 'admin'), async (req, res) => {
    const caller = mustCaller(res);
    const { from, to } = parseInput(incomeQuery, req.query, 'query');
    const out = await ledger.call('getDailyIncome', GetDailyIncomeRequest.fromPartial({ streamerId: caller.userId, startDay: from, endDay: to }), callFor(ctx, caller));
    res.setHeader('Cache-Control', 'private, no-cache');
    res.json({
      from,
      to,
      timeZone: out.timeZone,
      totalMinor: out.totalIncomeMinor,
      days: out.days.map((d) => ({ day: d.day, incomeMinor: d.incomeMinor, transfers: d.transferCount, reconciled: d.reconciled })),
      asOf: out.asOfTime?.toISOString() ?? null,
    } satisfies Body<typeof incomeResponse>);
  });

  return r;
}
