/**
 * Operators' routes for the gift catalog: gifts, gift groups, and which group a room shows.
 * Admins only; Gift and Room check the role again on their side.
 */
import { Router } from 'express';
import { z } from 'zod';
import { GiftStatus, UpsertGiftGroupRequest, UpsertGiftRequest, type Gift, type GiftGroup } from '../../gen/ts/livemesh/gift/v1/gift.js';
import { AssignGiftGroupRequest } from '../../gen/ts/livemesh/room/v1/room.js';
import { mustCaller, requireRole } from '../auth.js';
import { callFor, type BffContext } from '../context.js';
import { presentRoom } from '../present.js';
import type { assignedRoomResponse, Body, catalogGiftJson, giftGroupJson } from '../responses.js';
import { int64Id, parseInput } from '../validate.js';

/** The bounds Gift documents for a catalog entry (gift.proto). */
const PRICE_MAX = 100_000_000;
const version = z.string().regex(/^[1-9][0-9]{0,18}$/, { error: 'must be the version you read, a positive integer as a string' }).optional();

export const giftBody = z.strictObject({
  name: z.string({ error: 'must be a string' }).trim().min(1, { error: 'must not be empty' }).max(32, { error: 'must be at most 32 characters' }),
  priceMinor: z
    .string({ error: `must be an integer from 1 to ${PRICE_MAX} in minor units, as a string` })
    .regex(/^[1-9][0-9]{0,8}$/, { error: `must be an integer from 1 to ${PRICE_MAX} in minor units, as a string` })
    .refine((v) => !/^[0-9]+$/.test(v) || Number(v) <= PRICE_MAX, { error: `must be at most ${PRICE_MAX}` }),
  iconKey: z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }).max(200, { error: 'must be at most 200 characters' }),
  effectKey: z.string({ error: 'must be a string' }).max(64, { error: 'must be at most 64 characters' }).default(''),
  status: z.enum(['active', 'disabled'], { error: 'must be active or disabled' }).default('active'),
  /** Optimistic lock: the write succeeds only while the gift is at this version. */
  expectedVersion: version,
});

export const giftGroupBody = z.strictObject({
  name: z.string({ error: 'must be a string' }).trim().min(1, { error: 'must not be empty' }).max(64, { error: 'must be at most 64 characters' }),
  giftIds: z
    .array(int64Id, { error: 'must be an array of gift ids' })
    .min(1, { error: 'must list 1 to 200 gift ids' })
    .max(200, { error: 'must list 1 to 200 gift ids' })
    .refine((ids) => new Set(ids).size === ids.length, { error: 'must not repeat a gift id' }),
  isDefault: z.boolean({ error: 'must be true or false' }).default(false),
  expectedVersion: version,
});

/** `giftGroupId: null` puts the room back on the default group. */
export const assignGroupBody = z.strictObject({ giftGroupId: int64Id.nullable() });

export const catalogParams = z.object({ id: int64Id });

const STATUS = { active: GiftStatus.GIFT_STATUS_ACTIVE, disabled: GiftStatus.GIFT_STATUS_DISABLED } as const;
const iso = (d: Date | undefined) => d?.toISOString() ?? null;

function presentCatalogGift(g: Gift): Body<typeof catalogGiftJson> {
  return {
    id: g.giftId,
    name: g.name,
    priceMinor: g.priceMinor,
    iconKey: g.iconKey,
    effectKey: g.effectKey,
    status: g.status === GiftStatus.GIFT_STATUS_DISABLED ? 'disabled' : 'active',
    version: g.version,
    updatedAt: iso(g.updateTime),
  };
}

function presentGroup(g: GiftGroup): Body<typeof giftGroupJson> {
  return { id: g.giftGroupId, name: g.name, giftIds: g.giftIds, isDefault: g.isDefault, version: g.version, updatedAt: iso(g.updateTime) };
}

export function adminCatalogRoutes(ctx: BffContext): Router {
  const r = Router();
  const admin = requireRole('admin');
  const { gift, room } = ctx.upstreams;

  /** Creates (POST, no id) or replaces (PUT /:id) a gift; 201 when created. */
  const upsertGift = (giftId: string, body: z.infer<typeof giftBody>, caller: ReturnType<typeof mustCaller>) =>
    gift.call(
      'upsertGift',
      UpsertGiftRequest.fromPartial({
        gift: { giftId, name: body.name, priceMinor: body.priceMinor, iconKey: body.iconKey, effectKey: body.effectKey, status: STATUS[body.status] },
        expectedVersion: body.expectedVersion ?? '0',
      }),
      callFor(ctx, caller),
    );

  r.post('/v1/admin/gifts', admin, async (req, res) => {
    const caller = mustCaller(res);
    const body = parseInput(giftBody, req.body, 'body');
    const out = await upsertGift('0', body, caller);
    res.status(201).json({ gift: out.gift ? presentCatalogGift(out.gift) : null, created: out.created });
  });

  r.put('/v1/admin/gifts/:id', admin, async (req, res) => {
    const caller = mustCaller(res);
    const { id } = parseInput(catalogParams, req.params, 'path');
    const body = parseInput(giftBody, req.body, 'body');
    const out = await upsertGift(id, body, caller);
    res.status(out.created ? 201 : 200).json({ gift: out.gift ? presentCatalogGift(out.gift) : null, created: out.created });
  });

  const upsertGroup = (giftGroupId: string, body: z.infer<typeof giftGroupBody>, caller: ReturnType<typeof mustCaller>) =>
    gift.call(
      'upsertGiftGroup',
      UpsertGiftGroupRequest.fromPartial({ giftGroup: { giftGroupId, name: body.name, giftIds: body.giftIds, isDefault: body.isDefault }, expectedVersion: body.expectedVersion ?? '0' }),
      callFor(ctx, caller),
    );

  r.post('/v1/admin/gift-groups', admin, async (req, res) => {
    const caller = mustCaller(res);
    const body = parseInput(giftGroupBody, req.body, 'body');
    const out = await upsertGroup('0', body, caller);
    res.status(201).json({ giftGroup: out.giftGroup ? presentGroup(out.giftGroup) : null, created: out.created });
  });

  r.put('/v1/admin/gift-groups/:id', admin, async (req, res) => {
    const caller = mustCaller(res);
    const { id } = parseInput(catalogParams, req.params, 'path');
    const body = parseInput(giftGroupBody, req.body, 'body');
    const out = await upsertGroup(id, body, caller);
    res.status(out.created ? 201 : 200).json({ giftGroup: out.giftGroup ? presentGroup(out.giftGroup) : null, created: out.created });
  });

  /** Which gift group a room shows; the room's gift bar follows once Gift's cache of the room refreshes. */
  r.put('/v1/admin/rooms/:id/gift-group', admin, async (req, res) => {
    const caller = mustCaller(res);
    const { id } = parseInput(catalogParams, req.params, 'path');
    const body = parseInput(assignGroupBody, req.body, 'body');
    const out = await room.call('assignGiftGroup', AssignGiftGroupRequest.fromPartial({ roomId: id, giftGroupId: body.giftGroupId ?? '0' }), callFor(ctx, caller));
    res.json({ room: out.room ? { ...presentRoom(out.room), giftGroupId: out.room.giftGroupId === '0' ? null : out.room.giftGroupId } : null } satisfies Body<typeof assignedRoomResponse>);
  });

  return r;
}
