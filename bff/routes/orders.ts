/**
 * A gift order's state, for its sender (or the streamer who received it): what the app polls after
 * a send answered PAYMENT_PENDING, until the order is paid or failed.
 */
import { Router } from 'express';
import { z } from 'zod';
import { GetOrderRequest } from '../../gen/ts/livemesh/gift/v1/gift.js';
import { mustCaller, requireRole } from '../auth.js';
import { callFor, type BffContext } from '../context.js';
import { HttpError } from '../errors.js';
import { presentOrder } from '../present.js';
import type { Body, orderResponse } from '../responses.js';
import { int64Id, parseInput } from '../validate.js';

export const orderParams = z.object({ id: int64Id });

export function orderRoutes(ctx: BffContext): Router {
  const r = Router();

  /** Someone else's order is a 404, as Gift reports it: order ids are not secrets, but existence need not leak. */
  r.get('/v1/orders/:id', requireRole(), async (req, res) => {
    const caller = mustCaller(res);
    const { id } = parseInput(orderParams, req.params, 'path');
    const out = await ctx.upstreams.gift.call('getOrder', GetOrderRequest.fromPartial({ orderId: id }), callFor(ctx, caller));
    if (!out.order) throw new HttpError(404, { error: { code: 'NOT_FOUND', message: `order ${id} not found`, reason: 'ORDER_NOT_FOUND' } });
    res.setHeader('Cache-Control', 'private, no-cache');
    res.json({ order: presentOrder(out.order) } satisfies Body<typeof orderResponse>);
  });

  return r;
}
