import { UpsertGiftGroupRequest, UpsertGiftRequest } from '../../gen/ts/livemesh/gift/v1/gift.js';
import { TopUpRequest } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { CreateRoomRequest, StartLiveRequest } from '../../gen/ts/livemesh/room/v1/room.js';
import { as, isRetryable, unary, type CallResult } from './calls.js';
import type { MeshClients } from './clients.js';

/** The rooms, viewers and gifts a load runs against, created through the services' own APIs. */
export interface World {
  rooms: Array<{ roomId: string; streamerId: string }>;
  viewers: string[];
  gifts: Array<{ giftId: string; priceMinor: bigint }>;
  /** COIN each viewer was topped up with, once, before the load. */
  topUpMinor: bigint;
}

export interface WorldOptions {
  rooms: number;
  viewers: number;
  /** COIN per viewer; enough that sends rarely fail for funds, which would make the run less interesting */
  topUpMinor?: bigint;
  /** first user id; streamers are `base + i`, viewers `base + 10_000 + i` */
  userBase?: number;
  log?: (line: string) => void;
}

/** An operator's admin token, for the catalog and top-ups (TopUp takes operators' admin tokens, never users'). */
const admin = () => as('1', 'admin');
const GIFT_PRICES = [1n, 10n, 52n, 100n];

/**
 * Set-up calls are retried on transient errors: a replica may still be warming its caches. Rooms
 * and top-ups are idempotent (CreateRoom's request_id, TopUp's payment reference), so a retry after
 * a lost answer changes nothing.
 */
async function settle<Res>(what: string, attempt: () => Promise<CallResult<Res>>): Promise<Res> {
  let last = '';
  for (let i = 0; i < 20; i++) {
    const r = await attempt();
    if (r.code === 'OK' && r.value !== undefined) return r.value;
    last = `${r.code}: ${r.error?.details ?? ''}`;
    if (!isRetryable(r.code) && r.code !== 'NOT_FOUND' && r.code !== 'FAILED_PRECONDITION') break;
    await new Promise((res) => setTimeout(res, 250 * (i + 1)));
  }
  throw new Error(`load set-up: ${what} failed (${last})`);
}

export async function createWorld(c: MeshClients, opts: WorldOptions): Promise<World> {
  const log = opts.log ?? (() => {});
  const base = opts.userBase ?? 100_000;
  const topUpMinor = opts.topUpMinor ?? 1_000_000_000n;
  // Id 0 creates (the service picks ids); a retried create after a lost answer leaves one unused gift, which is harmless.
  const gifts: World['gifts'] = [];
  for (const [i, priceMinor] of GIFT_PRICES.entries()) {
    const req = UpsertGiftRequest.fromPartial({ gift: { giftId: '0', name: `load gift ${i + 1}`, priceMinor: String(priceMinor), status: 1 }, expectedVersion: '0' });
    const res = await settle(`UpsertGift ${i + 1}`, () => unary(c.gift, 'upsertGift', req, admin(), 5000));
    gifts.push({ giftId: res.gift?.giftId ?? '', priceMinor });
  }
  const group = UpsertGiftGroupRequest.fromPartial({ giftGroup: { giftGroupId: '0', name: 'load', giftIds: gifts.map((g) => g.giftId), isDefault: true }, expectedVersion: '0' });
  await settle('UpsertGiftGroup', () => unary(c.gift, 'upsertGiftGroup', group, admin(), 5000));
  log(`load: catalog of ${gifts.length} gifts`);

  const rooms: World['rooms'] = [];
  for (let i = 0; i < opts.rooms; i++) {
    const streamerId = String(base + i);
    const md = as(streamerId, 'streamer');
    const created = await settle(`CreateRoom ${i}`, () =>
      unary(c.room, 'createRoom', CreateRoomRequest.fromPartial({ title: `load room ${i}`, category: 'music', requestId: `load-room-${i}` }), md, 5000),
    );
    const roomId = created.room?.roomId ?? '';
    await settle(`StartLive ${roomId}`, () => unary(c.room, 'startLive', StartLiveRequest.fromPartial({ roomId }), md, 5000));
    rooms.push({ roomId, streamerId });
  }
  log(`load: ${rooms.length} live rooms`);

  const viewers = Array.from({ length: opts.viewers }, (_, i) => String(base + 10_000 + i));
  for (let i = 0; i < viewers.length; i += 20) {
    await Promise.all(
      viewers.slice(i, i + 20).map((ownerId) =>
        settle(`TopUp ${ownerId}`, () =>
          unary(c.ledger, 'topUp', TopUpRequest.fromPartial({ ownerId, amountMinor: String(topUpMinor), paymentReference: `load-topup-${ownerId}`, provider: 'load' }), admin(), 5000),
        ),
      ),
    );
  }
  log(`load: ${viewers.length} viewers topped up with ${topUpMinor} COIN minor units each`);
  return { rooms, viewers, gifts, topUpMinor };
}
