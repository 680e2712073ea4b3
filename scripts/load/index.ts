/**
 * A mixed, open-loop load on a running mesh — gift sends, chat, room reads through gRPC and the
 * BFF — shared by `npm run chaos` and `npm run soak`. Open loop: calls start at the configured
 * rates whatever the mesh answers, as real viewers do; a kind with too many calls already waiting
 * sheds new ones (counted) instead of piling up without bound.
 */
import { SendMessageRequest } from '../../gen/ts/livemesh/chat/v1/chat.js';
import { BatchGetRoomsRequest, GetRoomRequest, ListLiveRoomsRequest } from '../../gen/ts/livemesh/room/v1/room.js';
import { as, isRetryable, unary, type CallResult } from './calls.js';
import { meshClients, type LoadTarget, type MeshClients } from './clients.js';
import { sendGiftWithRetries, type GiftRetryPolicy, type GiftSendRecord } from './gift-sends.js';
import { Outcomes, type CallKind, type CallRecord, type KindStats } from './outcomes.js';
import { Rng } from '../random.js';
import { createWorld, type World, type WorldOptions } from './world.js';

export type { CallKind, CallRecord, KindStats } from './outcomes.js';
export { CALL_KINDS, formatKind } from './outcomes.js';
export type { GiftSendRecord } from './gift-sends.js';
export type { LoadTarget, MeshClients } from './clients.js';
export { meshClients } from './clients.js';
export type { World } from './world.js';
export { isFailure } from './calls.js';

/** Calls started per second, per kind. Room reads rotate GetRoom / BatchGetRooms / ListLiveRooms; BFF reads the room screen and discovery. */
export interface LoadRates {
  gifts: number;
  chat: number;
  roomReads: number;
  bffReads: number;
}

export interface LoadOptions {
  rates: LoadRates;
  /** an existing world, or how to make one (default 6 rooms, 60 viewers) */
  world?: World | WorldOptions;
  seed?: number;
  /** calls of one kind waiting at once before new ones are shed (default 64) */
  maxInFlight?: number;
  giftRetry?: GiftRetryPolicy;
  /** every finished call, e.g. to match calls against fault windows */
  onCall?: (record: CallRecord) => void;
  log?: (line: string) => void;
}

export interface LoadStats {
  elapsedMs: number;
  kinds: Record<CallKind, KindStats>;
  /** calls not started because their kind already had maxInFlight waiting */
  shed: Record<CallKind, number>;
  gifts: { attempted: number; ok: number; refused: number; unresolved: number; inFlight: number };
}

export interface LoadReport extends LoadStats {
  world: World;
  /** every gift send attempted, one per idempotency key */
  giftSends: GiftSendRecord[];
}

export interface Load {
  world: World;
  clients: MeshClients;
  snapshot(): LoadStats;
  /**
   * Stops starting calls and waits for those in flight (gift retries included) for up to
   * `drainMs` (default 30 s); sends still unresolved then keep the last code they saw.
   */
  stop(opts?: { drainMs?: number }): Promise<LoadReport>;
}

const TICK_MS = 20;
type Task = (kind: CallKind) => Promise<void>;

export async function startLoad(target: LoadTarget, opts: LoadOptions): Promise<Load> {
  const random = new Rng(opts.seed ?? 1);
  const clients = meshClients(target);
  const world = opts.world && 'gifts' in opts.world ? opts.world : await createWorld(clients, { rooms: 6, viewers: 60, log: opts.log, ...opts.world });
  const outcomes = new Outcomes(random.next, opts.onCall);
  const maxInFlight = opts.maxInFlight ?? 64;
  const retry = opts.giftRetry ?? { attempts: 12, backoffMs: 100 };
  const giftSends: GiftSendRecord[] = [];
  const inFlight = new Map<CallKind, number>();
  const shed = new Map<CallKind, number>();
  const running = new Set<Promise<void>>();
  let seq = 0;
  let stopping = false;
  let drainDeadline = Infinity;
  const startedAt = Date.now();

  const pickRoom = () => random.pick(world.rooms);
  const pickViewer = () => random.pick(world.viewers);

  const sendGift: Task = async () => {
    const room = pickRoom();
    const gift = random.pick(world.gifts);
    const count = 1 + random.below(3);
    const now = Date.now();
    const record: GiftSendRecord = {
      idempotencyKey: `load-g-${seq++}`,
      senderId: pickViewer(),
      roomId: room.roomId,
      streamerId: room.streamerId,
      giftId: gift.giftId,
      count,
      amountMinor: String(gift.priceMinor * BigInt(count)),
      attempts: [],
      outcome: 'NOT_SENT',
      firstAt: now,
      lastAt: now,
    };
    giftSends.push(record);
    await sendGiftWithRetries(clients, outcomes, record, retry, random.next, () => Date.now() < drainDeadline);
  };

  const timed = async <T>(kind: CallKind, call: () => Promise<CallResult<T>>) => {
    const t0 = Date.now();
    const res = await call();
    outcomes.record(kind, res.code, t0, res.message);
  };

  const sendChat: Task = async (kind) => {
    const n = seq++;
    const req = SendMessageRequest.fromPartial({ roomId: pickRoom().roomId, text: `load message ${n}`, clientMessageId: `load-c-${n}` });
    await timed(kind, () => unary(clients.chat, 'sendMessage', req, as(pickViewer(), 'viewer'), 5000));
  };

  const roomRead = (): { kind: CallKind; run: Task } => {
    const viewer = as(pickViewer(), 'viewer');
    switch (random.below(3)) {
      case 0:
        return { kind: 'room.get', run: (k) => timed(k, () => unary(clients.room, 'getRoom', GetRoomRequest.fromPartial({ roomId: pickRoom().roomId }), viewer, 5000)) };
      case 1: {
        const ids = world.rooms.filter(() => random.next() < 0.5).map((r) => r.roomId);
        const req = BatchGetRoomsRequest.fromPartial({ roomIds: ids.length > 0 ? ids : [pickRoom().roomId] });
        return { kind: 'room.batchGet', run: (k) => timed(k, () => unary(clients.room, 'batchGetRooms', req, viewer, 5000)) };
      }
      default:
        return { kind: 'room.listLive', run: (k) => timed(k, () => unary(clients.room, 'listLiveRooms', ListLiveRoomsRequest.fromPartial({ page: { pageSize: 20 } }), viewer, 5000)) };
    }
  };

  const bffRead = (): { kind: CallKind; run: Task } => {
    const path = random.below(2) === 0 ? `/v1/rooms/${pickRoom().roomId}` : '/v1/rooms';
    const kind: CallKind = path === '/v1/rooms' ? 'bff.rooms' : 'bff.room';
    return { kind, run: (k) => timed(k, () => httpGet(`${target.bffUrl}${path}`)) };
  };

  const launch = (kind: CallKind, run: Task) => {
    if ((inFlight.get(kind) ?? 0) >= maxInFlight) {
      shed.set(kind, (shed.get(kind) ?? 0) + 1);
      return;
    }
    inFlight.set(kind, (inFlight.get(kind) ?? 0) + 1);
    const p: Promise<void> = run(kind)
      .catch((err: unknown) => opts.log?.(`load: ${kind} task failed: ${String(err)}`))
      .finally(() => {
        inFlight.set(kind, (inFlight.get(kind) ?? 1) - 1);
        running.delete(p);
      });
    running.add(p);
  };

  // Fractional rates: each kind owes `rate × elapsed` calls; a tick starts what is owed.
  const owed = { gifts: 0, chat: 0, roomReads: 0, bffReads: 0 };
  let lastTick = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    const dt = (now - lastTick) / 1000;
    lastTick = now;
    for (const key of Object.keys(owed) as Array<keyof LoadRates>) owed[key] += opts.rates[key] * dt;
    for (; owed.gifts >= 1; owed.gifts--) launch('gift.send', sendGift);
    for (; owed.chat >= 1; owed.chat--) launch('chat.send', sendChat);
    for (; owed.roomReads >= 1; owed.roomReads--) {
      const r = roomRead();
      launch(r.kind, r.run);
    }
    for (; owed.bffReads >= 1; owed.bffReads--) {
      const r = bffRead();
      launch(r.kind, r.run);
    }
  }, TICK_MS);

  const snapshot = (): LoadStats => {
    let ok = 0;
    let refused = 0;
    let unresolved = 0;
    for (const g of giftSends) {
      if (g.outcome === 'OK') ok++;
      else if (g.outcome === 'NOT_SENT' || g.attempts.length === 0) continue;
      else if (isRetryable(g.outcome)) unresolved++;
      else refused++;
    }
    const kinds = outcomes.stats();
    return {
      elapsedMs: Date.now() - startedAt,
      kinds,
      shed: Object.fromEntries(Object.keys(kinds).map((k) => [k, shed.get(k as CallKind) ?? 0])) as Record<CallKind, number>,
      gifts: { attempted: giftSends.length, ok, refused, unresolved, inFlight: inFlight.get('gift.send') ?? 0 },
    };
  };

  return {
    world,
    clients,
    snapshot,
    async stop({ drainMs = 30_000 } = {}) {
      if (!stopping) {
        stopping = true;
        clearInterval(timer);
        drainDeadline = Date.now() + drainMs;
      }
      const waitUntil = drainDeadline + 6000; // the last attempt's own deadline
      while (running.size > 0 && Date.now() < waitUntil) await Promise.race([...running, new Promise((r) => setTimeout(r, 200))]);
      const report = { ...snapshot(), world, giftSends };
      clients.close();
      return report;
    },
  };
}

/** A BFF read as a mobile client makes it; the outcome is "HTTP <status>" or "HTTP NETWORK". */
async function httpGet(url: string): Promise<CallResult<unknown>> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000), headers: { accept: 'application/json' } });
    const body = await res.text();
    return { code: `HTTP ${res.status}`, message: res.status >= 500 ? body : undefined };
  } catch (err) {
    return { code: 'HTTP NETWORK', message: err instanceof Error ? err.message : String(err) };
  }
}
