/**
 * Real data for the fuzzer to aim at: a gift catalog, streamers with rooms (most of them live),
 * viewers with COIN, and a few paid gifts, so that well-formed cases reach the success paths and
 * the side effects (ledger transfers, combos, rankings, barrages) run under fuzzing too.
 *
 * Everything goes through the same descriptor-driven client as the fuzz cases, from JSON.
 */
import { status as Code } from '@grpc/grpc-js';
import { fromBinary, fromJson, toBinary, toJson, type FileRegistry, type JsonValue } from '@bufbuild/protobuf';
import { AUTH_METADATA_KEY } from '../../kit/auth.js';
import type { Role } from '../../kit/identity.js';
import { userToken } from '../tokens.js';
import { codeName } from './classify.js';
import { fieldNamesOf, rpcTargets, type RpcClients, type RpcTarget } from './grpc-target.js';
import type { Known } from './values.js';

export interface SeedOptions {
  viewers?: number;
  streamers?: number;
  /** Prefix for idempotency keys, so a second seeding in the same namespace creates new records. */
  tag?: string;
}

export async function seedData(registry: FileRegistry, clients: RpcClients, opts: SeedOptions = {}, say: (line: string) => void = () => undefined): Promise<Known> {
  const targets = new Map(rpcTargets(registry).map((t) => [t.name, t]));
  const tag = opts.tag ?? 'seed';
  const call = async (name: string, json: JsonValue, as: [string, Role]): Promise<Record<string, unknown>> => {
    const target = targets.get(name) as RpcTarget;
    const bytes = toBinary(target.method.input, fromJson(target.method.input, json, { registry }));
    for (let attempt = 1; ; attempt++) {
      // A user's token as the BFF mints it; admins get an operator's token (TopUp takes no user's token).
      const out = await clients.call(target, { bytes, metadata: [[AUTH_METADATA_KEY, `Bearer ${userToken(as[0], as[1])}`]], deadlineMs: 15_000 });
      if (out.code === Code.OK) return toJson(target.method.output, fromBinary(target.method.output, out.response ?? new Uint8Array()), { registry }) as Record<string, unknown>;
      // A replica still warming up its view of the others (Gift asking Room) may refuse for a moment.
      if ((out.code === Code.UNAVAILABLE || out.code === Code.FAILED_PRECONDITION) && attempt < 20) {
        await new Promise((r) => setTimeout(r, 250));
        continue;
      }
      throw new Error(`seeding: ${name} ${JSON.stringify(json)} failed: ${codeName(out.code)} ${out.reason ?? ''} ${out.details}`);
    }
  };
  const admin: [string, Role] = ['1', 'admin'];
  const viewers = Array.from({ length: opts.viewers ?? 120 }, (_, i) => String(1001 + i));
  const streamers = Array.from({ length: opts.streamers ?? 10 }, (_, i) => String(2001 + i));

  // Id 0 creates: the catalog assigns ids.
  const giftIds: string[] = [];
  for (let i = 0; i < 6; i++) {
    const out = await call('livemesh.gift.v1.GiftService/UpsertGift', { gift: { giftId: '0', name: `fuzz gift ${i}`, priceMinor: String(10 * (i + 1)), iconKey: `icons/${i}`, status: 'GIFT_STATUS_ACTIVE' } }, admin);
    giftIds.push((out.gift as { giftId: string }).giftId);
  }
  const giftGroupIds: string[] = [];
  for (const [name, ids, isDefault] of [['fuzz default', giftIds, true], ['fuzz small', giftIds.slice(0, 2), false]] as const) {
    const out = await call('livemesh.gift.v1.GiftService/UpsertGiftGroup', { giftGroup: { giftGroupId: '0', name, giftIds: [...ids], isDefault } }, admin);
    giftGroupIds.push((out.giftGroup as { giftGroupId: string }).giftGroupId);
  }
  say(`seeded ${giftIds.length} gifts in ${giftGroupIds.length} groups`);

  const transferIds: string[] = [];
  await inBatches(viewers, 16, async (owner) => {
    const out = await call('livemesh.ledger.v1.LedgerService/TopUp', { ownerId: owner, amountMinor: '100000000', paymentReference: `${tag}-${owner}`, provider: 'fuzz' }, admin);
    const id = (out.transfer as { transferId?: string } | undefined)?.transferId;
    if (id) transferIds.push(id);
  });
  say(`seeded ${viewers.length} viewers with 1,000,000 COIN each`);

  const liveRoomIds: string[] = [];
  const idleRoomIds: string[] = [];
  for (const streamer of streamers) {
    for (let r = 0; r < 2; r++) {
      const out = await call('livemesh.room.v1.RoomService/CreateRoom', { title: `fuzz room ${streamer}-${r}`, category: r === 0 ? 'music' : 'talk', requestId: `${tag}-${streamer}-${r}` }, [streamer, 'streamer']);
      const roomId = (out.room as { roomId: string }).roomId;
      if (r === 0) {
        await call('livemesh.room.v1.RoomService/StartLive', { roomId }, [streamer, 'streamer']);
        liveRoomIds.push(roomId);
      } else idleRoomIds.push(roomId);
    }
  }
  say(`seeded ${liveRoomIds.length + idleRoomIds.length} rooms (${liveRoomIds.length} live)`);

  const orderIds: string[] = [];
  await inBatches(viewers.slice(0, 20), 8, async (viewer, i) => {
    const out = await call(
      'livemesh.gift.v1.GiftService/SendGift',
      { idempotencyKey: `${tag}-gift-${viewer}`, roomId: liveRoomIds[i % liveRoomIds.length] as string, giftId: giftIds[i % giftIds.length] as string, count: 1 + (i % 3), senderName: `fan${viewer}` },
      [viewer, 'viewer'],
    );
    const id = (out.order as { orderId?: string } | undefined)?.orderId;
    if (id) {
      orderIds.push(id);
      transferIds.push(`gift:${id}`);
    }
  });
  say(`seeded ${orderIds.length} paid gifts`);

  return { liveRoomIds, idleRoomIds, giftIds, giftGroupIds, viewers, streamers, admins: ['1', '3001', '3002'], orderIds, transferIds, fieldNames: fieldNamesOf(registry) };
}

async function inBatches<T>(items: T[], size: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) {
    await Promise.all(items.slice(i, i + size).map((item, j) => fn(item, i + j)));
  }
}
