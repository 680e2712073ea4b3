/**
 * Operators' routes: the degradation switches (with each upstream's breaker beside them, since an
 * open breaker degrades sections too) and the gift orders stuck for a person to look at.
 */
import { Router } from 'express';
import { z } from 'zod';
import { ListStuckOrdersRequest } from '../../gen/ts/livemesh/gift/v1/gift.js';
import { msToDuration } from '../../kit/contract-rules.js';
import { mustCaller, requireRole } from '../auth.js';
import { callFor, type BffContext } from '../context.js';
import { HttpError } from '../errors.js';
import { presentOrder } from '../present.js';
import type { Body, stuckOrdersResponse, switchesResponse, switchResponse } from '../responses.js';
import { isSwitchName, SWITCHES, type SwitchName } from '../switches.js';
import type { Upstream } from '../upstreams.js';
import { parseInput } from '../validate.js';

export const switchBody = z.strictObject({ off: z.boolean({ error: 'must be true or false' }), reason: z.string().max(200).default('') });
export const stuckQuery = z.object({
  olderThanS: z.coerce.number({ error: 'must be an integer number of seconds, 60 or more' }).int().min(60).default(600),
  cursor: z.string().max(512).default(''),
  limit: z.coerce.number({ error: 'must be an integer between 1 and 200' }).int().min(1).max(200).default(50),
});

export function adminRoutes(ctx: BffContext): Router {
  const r = Router();
  const admin = requireRole('admin');

  const noSwitches = () => new HttpError(503, { error: { code: 'UNAVAILABLE', message: 'switches are unavailable: this replica has not reached their NATS KV bucket', upstream: 'nats' } }, 5);

  r.get('/v1/admin/switches', admin, (_req, res) => {
    if (!ctx.switches) throw noSwitches();
    const switches = ctx.switches;
    res.setHeader('Cache-Control', 'no-store');
    res.json({
      switches: (Object.keys(SWITCHES) as SwitchName[]).map((name) => ({ name, description: SWITCHES[name], off: switches.isOff(name), ...(switches.state(name) ?? {}) })),
      breakers: (Object.values(ctx.upstreams) as Array<Upstream<object>>).map((u) => ({ upstream: u.name, open: u.open })),
    } satisfies Body<typeof switchesResponse>);
  });

  r.put('/v1/admin/switches/:name', admin, async (req, res) => {
    const caller = mustCaller(res);
    const name = String(req.params.name);
    if (!isSwitchName(name)) throw new HttpError(404, { error: { code: 'NOT_FOUND', message: `no switch ${name}; switches: ${Object.keys(SWITCHES).join(', ')}`, field: 'name' } });
    if (!ctx.switches?.available) throw noSwitches();
    const body = parseInput(switchBody, req.body, 'body');
    const state = await ctx.switches.set(name, body.off, caller.userId, body.reason);
    res.json({ name, ...state } satisfies Body<typeof switchResponse>);
  });

  r.get('/v1/admin/gift-orders/stuck', admin, async (req, res) => {
    const caller = mustCaller(res);
    const q = parseInput(stuckQuery, req.query, 'query');
    const out = await ctx.upstreams.gift.call(
      'listStuckOrders',
      ListStuckOrdersRequest.fromPartial({ olderThan: msToDuration(q.olderThanS * 1000), page: { pageSize: q.limit, pageToken: q.cursor } }),
      callFor(ctx, caller),
    );
    res.setHeader('Cache-Control', 'no-store');
    res.json({ orders: out.orders.map(presentOrder), total: out.totalCount, nextCursor: out.page?.nextPageToken || null } satisfies Body<typeof stuckOrdersResponse>);
  });

  return r;
}
