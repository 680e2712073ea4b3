/**
 * A user's money history, a page at a time: the gifts they sent (or, for a streamer, received),
 * from Gift's consumption records, and their top-ups, from Ledger's transfers of kind TOP_UP.
 * `cursor` is the opaque token of the previous page, passed back as it came.
 */
import { Router } from 'express';
import { z } from 'zod';
import { Asset } from '../../gen/ts/livemesh/common/v1/common.js';
import { ConsumptionSide, ListConsumptionRequest, type ConsumptionRecord } from '../../gen/ts/livemesh/gift/v1/gift.js';
import { EntrySide, ListTransfersRequest, TransferKind, TransferStatus, type Transfer } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { mustCaller, requireRole } from '../auth.js';
import { callFor, type BffContext } from '../context.js';
import type { Body, consumptionRecordJson, consumptionResponse, topupJson, topupsResponse } from '../responses.js';
import { parseInput } from '../validate.js';

const cursor = z.string().max(512, { error: 'must be the nextCursor of a previous page' }).default('');
const time = z.iso.datetime({ offset: true, error: 'must be an ISO 8601 time, e.g. 2026-01-31T00:00:00Z' }).optional();
const limit = (max: number, fallback: number) => z.coerce.number({ error: `must be an integer between 1 and ${max}` }).int({ error: `must be an integer between 1 and ${max}` }).min(1).max(max).default(fallback);
const timeRange = <T extends { from?: string | undefined; to?: string | undefined }>(q: T) => q.from === undefined || q.to === undefined || Date.parse(q.from) < Date.parse(q.to);

export const consumptionQuery = z
  .object({
    side: z.enum(['sent', 'received'], { error: 'must be sent or received' }).default('sent'),
    from: time,
    to: time,
    cursor,
    limit: limit(100, 20),
  })
  .refine(timeRange, { error: 'must be before to', path: ['from'] });

export const topupsQuery = z.object({ from: time, to: time, cursor, limit: limit(200, 50) }).refine(timeRange, { error: 'must be before to', path: ['from'] });

const SIDES = { sent: ConsumptionSide.CONSUMPTION_SIDE_SENT, received: ConsumptionSide.CONSUMPTION_SIDE_RECEIVED } as const;
const iso = (d: Date | undefined) => d?.toISOString() ?? null;
const at = (s: string | undefined) => (s === undefined ? undefined : new Date(s));

function presentConsumption(c: ConsumptionRecord): Body<typeof consumptionRecordJson> {
  return {
    comboId: c.comboId,
    senderId: c.senderId,
    senderName: c.senderName,
    streamerId: c.streamerId,
    roomId: c.roomId,
    giftId: c.giftId,
    count: c.comboCount,
    sends: c.sendCount,
    amountMinor: c.amountMinor,
    firstSentAt: iso(c.firstSendTime),
    lastSentAt: iso(c.lastSendTime),
  };
}

function presentTopup(t: Transfer): Body<typeof topupJson> {
  const credit = t.entries.find((e) => e.side === EntrySide.ENTRY_SIDE_CREDIT);
  return {
    id: t.transferId,
    paymentReference: t.reference,
    amountMinor: credit?.amountMinor ?? '0',
    settled: t.status === TransferStatus.TRANSFER_STATUS_SETTLED,
    createdAt: iso(t.createTime),
    settledAt: iso(t.settleTime),
  };
}

export function historyRoutes(ctx: BffContext): Router {
  const r = Router();
  const { gift, ledger } = ctx.upstreams;

  /** Gifts I sent (side=sent, anyone) or received (side=received, my income as a streamer), most recent first. */
  r.get('/v1/me/consumption', requireRole(), async (req, res) => {
    const caller = mustCaller(res);
    const q = parseInput(consumptionQuery, req.query, 'query');
    const out = await gift.call(
      'listConsumption',
      ListConsumptionRequest.fromPartial({ side: SIDES[q.side], startTime: at(q.from), endTime: at(q.to), page: { pageSize: q.limit, pageToken: q.cursor } }),
      callFor(ctx, caller),
    );
    res.setHeader('Cache-Control', 'private, no-cache');
    res.json({ side: q.side, records: out.records.map(presentConsumption), nextCursor: out.page?.nextPageToken || null } satisfies Body<typeof consumptionResponse>);
  });

  /** My top-ups (COIN bought with money), newest first. */
  r.get('/v1/me/topups', requireRole(), async (req, res) => {
    const caller = mustCaller(res);
    const q = parseInput(topupsQuery, req.query, 'query');
    const out = await ledger.call(
      'listTransfers',
      ListTransfersRequest.fromPartial({
        account: { ownerId: caller.userId, asset: Asset.ASSET_COIN },
        kinds: [TransferKind.TRANSFER_KIND_TOP_UP],
        startTime: at(q.from),
        endTime: at(q.to),
        page: { pageSize: q.limit, pageToken: q.cursor },
      }),
      callFor(ctx, caller),
    );
    res.setHeader('Cache-Control', 'private, no-cache');
    res.json({ topups: out.transfers.map(presentTopup), nextCursor: out.page?.nextPageToken || null } satisfies Body<typeof topupsResponse>);
  });

  return r;
}
