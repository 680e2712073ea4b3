/**
 * The BFF's money routes through the real Ledger, Gift, Room, Chat and Ranking (in-process): the
 * provider's top-up callback, the "me" screen, sending paid gifts (and seeing them arrive on the
 * room stream and in the ranking), and a streamer's income.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isolate } from '../scripts/isolation.js';
import { json, providerTopup, rawGet, send, type BffServer, until } from './support/bff.js';
import { startBffMesh, type BffMesh } from './support/bff-mesh.js';
import { openStream } from './support/bff-stream.js';
import { as, roomApi, type RoomServer } from './support/room.js';

const iso = isolate('bffwallet');
let mesh: BffMesh;
let room: RoomServer;
let bff: BffServer;
let roseId = '';
let liveRoom = '';
let offlineRoom = '';
const STREAMER = '5400';

beforeAll(async () => {
  mesh = await startBffMesh(iso, { bffEnv: { RATE_LIMIT_IP_PER_S: '0', RATE_LIMIT_USER_PER_S: '0', CACHE_TTL_MS: '200' } });
  ({ room, bff, roseId } = mesh);
  const rooms = roomApi(room.client);
  const streamer = as(STREAMER, 'streamer');
  liveRoom = (await rooms.createRoom({ title: 'money talks', requestId: 'w1' }, streamer)).room!.roomId;
  offlineRoom = (await rooms.createRoom({ title: 'closed', requestId: 'w2' }, streamer)).room!.roomId;
  await rooms.startLive({ roomId: liveRoom }, streamer);
});

afterAll(async () => {
  await mesh?.close();
});

const topup = (body: object) => providerTopup(bff.base, bff.config.TOPUP_SECRET, body);

describe('POST /v1/wallet/topups', () => {
  it('credits once per payment reference, however often the provider retries', async () => {
    const first = await topup({ paymentReference: 'pay-w-1', userId: '7700', amountMinor: '5000', provider: 'test' });
    expect(first.status).toBe(201);
    expect(await json(first)).toMatchObject({ balanceMinor: '5000', replayed: false });
    const again = await topup({ paymentReference: 'pay-w-1', userId: '7700', amountMinor: '5000', provider: 'test' });
    expect(again.status).toBe(200);
    expect(await json(again)).toMatchObject({ balanceMinor: '5000', replayed: true });
    const changed = await topup({ paymentReference: 'pay-w-1', userId: '7700', amountMinor: '9000', provider: 'test' });
    expect(changed.status).toBe(409);
    expect((await json(changed)).error).toMatchObject({ reason: 'IDEMPOTENCY_KEY_REUSED', field: 'paymentReference' });
  });
});

describe('GET /v1/me', () => {
  it('shows wallet and level, rooms watched recently and recommended rooms in one call', async () => {
    await topup({ paymentReference: 'pay-w-2', userId: '7701', amountMinor: '1200', provider: 'test' });
    const me = await bff.auth('7701', 'viewer', 'Watcher');
    expect((await fetch(`${bff.base}/v1/rooms/${liveRoom}`, { headers: me })).status).toBe(200);
    const body = await until('the visit to show as recent', async () => json(await fetch(`${bff.base}/v1/me`, { headers: me })), (b) => b.recent?.length === 1);
    expect(body).toMatchObject({
      user: { id: '7701', name: 'Watcher', role: 'viewer' },
      wallet: { coinMinor: '1200', level: { level: expect.any(Number) } },
      hostedRooms: [],
      degraded: [],
    });
    expect(body.recent[0]).toMatchObject({ id: liveRoom, title: 'money talks', live: true });
    expect(Array.isArray(body.recommended)).toBe(true);
  });

  it('lists a streamer’s own rooms, answers 304 to a matching ETag, and degrades a switched-off section', async () => {
    const me = await bff.auth(STREAMER, 'streamer');
    const res = await fetch(`${bff.base}/v1/me`, { headers: me });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.hostedRooms.map((r: { id: string }) => r.id).sort()).toEqual([liveRoom, offlineRoom].sort());
    const etag = res.headers.get('etag') ?? '';
    expect((await rawGet(`${bff.base}/v1/me`, { ...me, 'if-none-match': etag })).status).toBe(304);

    await bff.bff.ctx.switches!.set('me.recommended', true, '1', 'test');
    try {
      const degraded = await json(await fetch(`${bff.base}/v1/me`, { headers: me }));
      expect(degraded.recommended).toBeNull();
      expect(degraded.degraded).toEqual(['recommended']);
    } finally {
      await bff.bff.ctx.switches!.set('me.recommended', false, '1', 'test');
    }
  });
});

describe('POST /v1/rooms/:id/gifts', () => {
  it('charges once per Idempotency-Key and returns the new balance', async () => {
    await topup({ paymentReference: 'pay-w-3', userId: '7702', amountMinor: '1000', provider: 'test' });
    const fan = { ...(await bff.auth('7702', 'viewer', 'Generous')), 'idempotency-key': 'gift-w-0001' };
    const first = await send(bff.base, 'POST', `/v1/rooms/${liveRoom}/gifts`, { giftId: roseId, count: 3, expectedUnitPriceMinor: '100' }, fan);
    const order = await json(first);
    expect(first.status, JSON.stringify(order)).toBe(201);
    expect(order).toMatchObject({ order: { roomId: liveRoom, giftId: roseId, count: 3, amountMinor: '300' }, balanceMinor: '700', replayed: false });
    expect(['paid', 'done']).toContain(order.order.state);
    const retry = await send(bff.base, 'POST', `/v1/rooms/${liveRoom}/gifts`, { giftId: roseId, count: 3, expectedUnitPriceMinor: '100' }, fan);
    expect(retry.status).toBe(200);
    expect(await json(retry)).toMatchObject({ order: { id: order.order.id }, replayed: true });
  });

  it('a sent gift reaches the room stream as a barrage and the room screen’s ranking', async () => {
    await topup({ paymentReference: 'pay-w-4', userId: '7704', amountMinor: '10000', provider: 'test' });
    const stream = await openStream(bff.base, liveRoom);
    const fan = { ...(await bff.auth('7704', 'viewer', 'Top Fan')), 'idempotency-key': 'gift-w-0005' };
    const sent = await send(bff.base, 'POST', `/v1/rooms/${liveRoom}/gifts`, { giftId: roseId, count: 50 }, fan);
    expect(sent.status).toBe(201);
    await until('the barrage', () => stream.events, (e) => e.some((x) => x.type === 'gift'));
    const screen = await until('the ranking on the room screen', async () => json(await fetch(`${bff.base}/v1/rooms/${liveRoom}`)), (s) =>
      (s.ranking ?? []).some((r: { userId: string }) => r.userId === '7704'),
    );
    expect(screen.ranking[0]).toMatchObject({ rank: 1, userId: '7704', name: 'Top Fan', scoreMinor: '5000' });
    expect(screen.degraded).toEqual([]);
    stream.ws.close();
    await stream.closed;
  });

  it("maps Gift's refusals to 409s with their reasons", async () => {
    const poor = { ...(await bff.auth('7703', 'viewer')), 'idempotency-key': 'gift-w-0002' };
    const broke = await send(bff.base, 'POST', `/v1/rooms/${liveRoom}/gifts`, { giftId: roseId }, poor);
    expect(broke.status).toBe(409);
    expect((await json(broke)).error).toMatchObject({ reason: 'INSUFFICIENT_FUNDS' });
    const offline = await send(bff.base, 'POST', `/v1/rooms/${offlineRoom}/gifts`, { giftId: roseId }, { ...poor, 'idempotency-key': 'gift-w-0003' });
    expect(offline.status).toBe(409);
    expect((await json(offline)).error).toMatchObject({ reason: 'ROOM_NOT_LIVE' });
    const price = await send(bff.base, 'POST', `/v1/rooms/${liveRoom}/gifts`, { giftId: roseId, expectedUnitPriceMinor: '1' }, { ...poor, 'idempotency-key': 'gift-w-0004' });
    expect(price.status).toBe(409);
    expect((await json(price)).error).toMatchObject({ reason: 'PRICE_CHANGED' });
  });
});

describe('GET /v1/me/income', () => {
  it("shows a streamer's income per day; viewers get 403 and bad days a 400 naming the field", async () => {
    const day = new Date().toISOString().slice(0, 10);
    const streamer = await bff.auth(STREAMER, 'streamer');
    const res = await fetch(`${bff.base}/v1/me/income?from=${day}&to=${day}`, { headers: streamer });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toMatchObject({ from: day, to: day });
    expect(body.totalMinor).toMatch(/^[0-9]+$/);
    expect((await fetch(`${bff.base}/v1/me/income?from=${day}&to=${day}`, { headers: await bff.auth('7702', 'viewer') })).status).toBe(403);
    const bad = await fetch(`${bff.base}/v1/me/income?from=2026-13&to=${day}`, { headers: streamer });
    expect(bad.status).toBe(400);
    expect((await json(bad)).error.field).toBe('from');
  });
});
