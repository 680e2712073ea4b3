/**
 * The BFF routes a mobile app was missing (issue 17, item 4), through the real Room, Gift, Ledger
 * and Chat (in-process): an order's state, consumption and top-up history, the streamer's INCOME
 * on /v1/me, the admin catalog routes, and CORS for the web client. Each route gets good input,
 * bad input (a 400 naming the field) and, for admin routes, a viewer's 403.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBffConfig } from '../bff/config.js';
import { ConfigError } from '../kit/config.js';
import { isolate } from '../scripts/isolation.js';
import { json, providerTopup, send, type BffServer, until } from './support/bff.js';
import { startBffMesh, type BffMesh } from './support/bff-mesh.js';
import { as, roomApi, type RoomServer } from './support/room.js';

const iso = isolate('bffroutes');
let mesh: BffMesh;
let room: RoomServer;
let bff: BffServer;
let roseId = '';
let liveRoom = '';
const STREAMER = '5500';
const FAN = '7800';
const OTHER = '7801';
const APP_ORIGIN = 'https://app.livemesh.example';

beforeAll(async () => {
  mesh = await startBffMesh(iso, { ranking: false, bffEnv: { RATE_LIMIT_IP_PER_S: '0', RATE_LIMIT_USER_PER_S: '0', CACHE_TTL_MS: '200', CORS_ORIGINS: APP_ORIGIN } });
  ({ room, bff, roseId } = mesh);
  const rooms = roomApi(room.client);
  const streamer = as(STREAMER, 'streamer');
  liveRoom = (await rooms.createRoom({ title: 'history lessons', requestId: 'r1' }, streamer)).room!.roomId;
  await rooms.startLive({ roomId: liveRoom }, streamer);
});

afterAll(async () => {
  await mesh?.close();
});

const topup = (body: object) => providerTopup(bff.base, bff.config.TOPUP_SECRET, body);

async function get(path: string, headers: Record<string, string> = {}) {
  return fetch(`${bff.base}${path}`, { headers });
}

/** Asserts a 400 whose error names `field`. */
async function expectBadField(res: Response, field: string) {
  const body = await json(res);
  expect(res.status, JSON.stringify(body)).toBe(400);
  expect(body.error).toMatchObject({ code: 'INVALID_ARGUMENT', field });
}

let orderId = '';

describe('a paid gift, seen from the order, the history and /v1/me', () => {
  beforeAll(async () => {
    expect((await topup({ paymentReference: 'pay-r-1', userId: FAN, amountMinor: '1000', provider: 'test' })).status).toBe(201);
    expect((await topup({ paymentReference: 'pay-r-2', userId: FAN, amountMinor: '500', provider: 'test' })).status).toBe(201);
    const fan = { ...(await bff.auth(FAN, 'viewer', 'Fan')), 'idempotency-key': 'gift-r-0001' };
    const sent = await send(bff.base, 'POST', `/v1/rooms/${liveRoom}/gifts`, { giftId: roseId, count: 2 }, fan);
    const body = await json(sent);
    expect(sent.status, JSON.stringify(body)).toBe(201);
    orderId = body.order.id;
  });

  it('GET /v1/orders/:id: its sender and streamer see the state; anyone else a 404; a bad id a 400', async () => {
    const fan = await bff.auth(FAN, 'viewer');
    const res = await get(`/v1/orders/${orderId}`, fan);
    const body = await json(res);
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.order).toMatchObject({ id: orderId, roomId: liveRoom, senderId: FAN, giftId: roseId, count: 2, amountMinor: '200' });
    expect(['paid', 'done']).toContain(body.order.state);
    expect(res.headers.get('cache-control')).toBe('private, no-cache');
    expect((await get(`/v1/orders/${orderId}`, await bff.auth(STREAMER, 'streamer'))).status).toBe(200);
    const other = await get(`/v1/orders/${orderId}`, await bff.auth(OTHER, 'viewer'));
    expect(other.status).toBe(404);
    expect((await json(other)).error).toMatchObject({ reason: 'ORDER_NOT_FOUND' });
    await expectBadField(await get('/v1/orders/abc', fan), 'id');
    await expectBadField(await get('/v1/orders/0', fan), 'id');
    expect((await get(`/v1/orders/${orderId}`)).status).toBe(401);
  });

  it('GET /v1/me/consumption: the sender sees the gifts sent, the streamer the gifts received; bad input names the field', async () => {
    const fan = await bff.auth(FAN, 'viewer');
    const sent = await until('the consumption record', async () => json(await get('/v1/me/consumption', fan)), (b) => b.records?.length === 1);
    expect(sent).toMatchObject({ side: 'sent', nextCursor: null });
    expect(sent.records[0]).toMatchObject({ senderId: FAN, streamerId: STREAMER, roomId: liveRoom, giftId: roseId, count: '2', amountMinor: '200' });
    const received = await json(await get('/v1/me/consumption?side=received&limit=5', await bff.auth(STREAMER, 'streamer')));
    expect(received.records.map((r: { senderId: string }) => r.senderId)).toEqual([FAN]);
    const future = new Date(Date.now() + 3_600_000).toISOString();
    expect((await json(await get(`/v1/me/consumption?from=${future}`, fan))).records).toEqual([]);

    await expectBadField(await get('/v1/me/consumption?side=both', fan), 'side');
    await expectBadField(await get('/v1/me/consumption?limit=0', fan), 'limit');
    await expectBadField(await get('/v1/me/consumption?limit=101', fan), 'limit');
    await expectBadField(await get('/v1/me/consumption?from=yesterday', fan), 'from');
    await expectBadField(await get(`/v1/me/consumption?from=${future}&to=2020-01-01T00:00:00Z`, fan), 'from');
    expect((await get('/v1/me/consumption')).status).toBe(401);
  });

  it('GET /v1/me/topups: newest first, a page at a time with an opaque cursor; bad input names the field', async () => {
    const fan = await bff.auth(FAN, 'viewer');
    const all = await json(await get('/v1/me/topups', fan));
    expect(all.topups.map((t: { paymentReference: string }) => t.paymentReference)).toEqual(['pay-r-2', 'pay-r-1']);
    expect(all.topups[0]).toMatchObject({ amountMinor: '500', settled: true });
    const first = await json(await get('/v1/me/topups?limit=1', fan));
    expect(first.topups).toHaveLength(1);
    expect(typeof first.nextCursor).toBe('string');
    const second = await json(await get(`/v1/me/topups?limit=1&cursor=${encodeURIComponent(first.nextCursor)}`, fan));
    expect(second.topups.map((t: { paymentReference: string }) => t.paymentReference)).toEqual(['pay-r-1']);
    // Another user's history is theirs alone: the gift is not a top-up, and nobody else's shows.
    expect((await json(await get('/v1/me/topups', await bff.auth(OTHER, 'viewer')))).topups).toEqual([]);

    await expectBadField(await get('/v1/me/topups?limit=201', fan), 'limit');
    await expectBadField(await get('/v1/me/topups?limit=x', fan), 'limit');
    await expectBadField(await get('/v1/me/topups?to=2026-99-01', fan), 'to');
    await expectBadField(await get(`/v1/me/topups?cursor=${'x'.repeat(513)}`, fan), 'cursor');
    expect((await get('/v1/me/topups')).status).toBe(401);
  });

  it("GET /v1/me: a streamer's INCOME balance is on the wallet; a viewer's is null", async () => {
    const streamer = await until('the income credit', async () => json(await get('/v1/me', await bff.auth(STREAMER, 'streamer'))), (b) => b.wallet?.incomeMinor !== '0');
    expect(streamer.wallet.incomeMinor).toMatch(/^[1-9][0-9]*$/);
    const fan = await json(await get('/v1/me', await bff.auth(FAN, 'viewer')));
    expect(fan.wallet).toMatchObject({ coinMinor: '1300', incomeMinor: null });
  });
});

describe('admin catalog routes', () => {
  it('viewers and streamers get 403 on every admin catalog route', async () => {
    for (const who of [await bff.auth(OTHER, 'viewer'), await bff.auth(STREAMER, 'streamer')]) {
      const gift = { name: 'x', priceMinor: '1', iconKey: 'i' };
      expect((await send(bff.base, 'POST', '/v1/admin/gifts', gift, who)).status).toBe(403);
      expect((await send(bff.base, 'PUT', `/v1/admin/gifts/${roseId}`, gift, who)).status).toBe(403);
      expect((await send(bff.base, 'POST', '/v1/admin/gift-groups', { name: 'g', giftIds: [roseId] }, who)).status).toBe(403);
      expect((await send(bff.base, 'PUT', '/v1/admin/gift-groups/1', { name: 'g', giftIds: [roseId] }, who)).status).toBe(403);
      expect((await send(bff.base, 'PUT', `/v1/admin/rooms/${liveRoom}/gift-group`, { giftGroupId: null }, who)).status).toBe(403);
    }
    expect((await send(bff.base, 'POST', '/v1/admin/gifts', {})).status).toBe(401);
  });

  it('creates and replaces a gift, creates a group, assigns it to a room and back to the default', async () => {
    const admin = await bff.auth('1', 'admin');
    const created = await send(bff.base, 'POST', '/v1/admin/gifts', { name: 'lollipop', priceMinor: '300', iconKey: 'icons/lollipop.png' }, admin);
    const gift = await json(created);
    expect(created.status, JSON.stringify(gift)).toBe(201);
    expect(gift).toMatchObject({ created: true, gift: { name: 'lollipop', priceMinor: '300', status: 'active', effectKey: '' } });
    const id = gift.gift.id as string;

    const replaced = await send(bff.base, 'PUT', `/v1/admin/gifts/${id}`, { name: 'lollipop', priceMinor: '350', iconKey: 'icons/lollipop.png', expectedVersion: gift.gift.version }, admin);
    expect(replaced.status).toBe(200);
    expect((await json(replaced)).gift).toMatchObject({ id, priceMinor: '350' });
    const stale = await send(bff.base, 'PUT', `/v1/admin/gifts/${id}`, { name: 'lollipop', priceMinor: '400', iconKey: 'i', expectedVersion: gift.gift.version }, admin);
    expect(stale.status).toBe(409);
    expect((await send(bff.base, 'PUT', '/v1/admin/gifts/999999999', { name: 'ghost', priceMinor: '1', iconKey: 'i' }, admin)).status).toBe(404);

    const group = await send(bff.base, 'POST', '/v1/admin/gift-groups', { name: 'sweets', giftIds: [id, roseId] }, admin);
    const g = await json(group);
    expect(group.status, JSON.stringify(g)).toBe(201);
    expect(g.giftGroup).toMatchObject({ name: 'sweets', giftIds: [id, roseId], isDefault: false });
    const renamed = await send(bff.base, 'PUT', `/v1/admin/gift-groups/${g.giftGroup.id}`, { name: 'candy', giftIds: [id] }, admin);
    expect(renamed.status).toBe(200);
    expect((await json(renamed)).giftGroup).toMatchObject({ id: g.giftGroup.id, name: 'candy', giftIds: [id] });

    const assigned = await send(bff.base, 'PUT', `/v1/admin/rooms/${liveRoom}/gift-group`, { giftGroupId: g.giftGroup.id }, admin);
    const a = await json(assigned);
    expect(assigned.status, JSON.stringify(a)).toBe(200);
    expect(a.room).toMatchObject({ id: liveRoom, giftGroupId: g.giftGroup.id });
    const reset = await json(await send(bff.base, 'PUT', `/v1/admin/rooms/${liveRoom}/gift-group`, { giftGroupId: null }, admin));
    expect(reset.room).toMatchObject({ id: liveRoom, giftGroupId: null });
    expect((await send(bff.base, 'PUT', '/v1/admin/rooms/999999999/gift-group', { giftGroupId: g.giftGroup.id }, admin)).status).toBe(404);
  });

  it('bad catalog input is a 400 naming the field', async () => {
    const admin = await bff.auth('1', 'admin');
    const good = { name: 'star', priceMinor: '10', iconKey: 'icons/star.png' };
    await expectBadField(await send(bff.base, 'POST', '/v1/admin/gifts', { ...good, name: '' }, admin), 'name');
    await expectBadField(await send(bff.base, 'POST', '/v1/admin/gifts', { ...good, name: 'x'.repeat(33) }, admin), 'name');
    await expectBadField(await send(bff.base, 'POST', '/v1/admin/gifts', { ...good, priceMinor: 10 }, admin), 'priceMinor');
    await expectBadField(await send(bff.base, 'POST', '/v1/admin/gifts', { ...good, priceMinor: '0' }, admin), 'priceMinor');
    await expectBadField(await send(bff.base, 'POST', '/v1/admin/gifts', { ...good, priceMinor: '100000001' }, admin), 'priceMinor');
    await expectBadField(await send(bff.base, 'POST', '/v1/admin/gifts', { ...good, iconKey: undefined }, admin), 'iconKey');
    await expectBadField(await send(bff.base, 'POST', '/v1/admin/gifts', { ...good, status: 'hidden' }, admin), 'status');
    await expectBadField(await send(bff.base, 'POST', '/v1/admin/gifts', { ...good, colour: 'red' }, admin), 'body');
    await expectBadField(await send(bff.base, 'PUT', '/v1/admin/gifts/x', good, admin), 'id');
    await expectBadField(await send(bff.base, 'PUT', '/v1/admin/gifts/1', { ...good, expectedVersion: 'v1' }, admin), 'expectedVersion');
    await expectBadField(await send(bff.base, 'POST', '/v1/admin/gift-groups', { name: 'g', giftIds: [] }, admin), 'giftIds');
    await expectBadField(await send(bff.base, 'POST', '/v1/admin/gift-groups', { name: 'g', giftIds: [roseId, roseId] }, admin), 'giftIds');
    await expectBadField(await send(bff.base, 'POST', '/v1/admin/gift-groups', { name: 'g', giftIds: ['-1'] }, admin), 'giftIds.0');
    await expectBadField(await send(bff.base, 'POST', '/v1/admin/gift-groups', { name: 'g', giftIds: [roseId], isDefault: 'yes' }, admin), 'isDefault');
    await expectBadField(await send(bff.base, 'PUT', `/v1/admin/rooms/${liveRoom}/gift-group`, {}, admin), 'giftGroupId');
    await expectBadField(await send(bff.base, 'PUT', `/v1/admin/rooms/${liveRoom}/gift-group`, { giftGroupId: 'abc' }, admin), 'giftGroupId');
    await expectBadField(await send(bff.base, 'PUT', '/v1/admin/rooms/0/gift-group', { giftGroupId: null }, admin), 'id');
  });
});

describe('GET /v1/rooms (discovery)', () => {
  it("carries each live room's online count", async () => {
    const list = await json(await get('/v1/rooms?live=1'));
    expect(list.rooms.find((r: { id: string }) => r.id === liveRoom)).toMatchObject({ id: liveRoom, live: true, onlineCount: '0' });
    await expectBadField(await get('/v1/rooms?live=0'), 'live');
  });
});

describe('CORS', () => {
  const preflight = (origin: string) =>
    fetch(`${bff.base}/v1/me`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' } });

  it('a preflight from the configured origin gets the CORS headers; one from another origin gets none', async () => {
    const allowed = await preflight(APP_ORIGIN);
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);
    expect(allowed.headers.get('access-control-allow-methods')).toContain('GET');
    expect(allowed.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
    expect(allowed.headers.get('access-control-allow-credentials')).toBeNull();

    const other = await preflight('https://evil.example');
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    expect(other.headers.get('access-control-allow-methods')).toBeNull();
  });

  it('actual requests from the allowed origin carry Access-Control-Allow-Origin, cached room screens included', async () => {
    const screen = `${bff.base}/v1/rooms/${liveRoom}/gifts`;
    expect((await fetch(screen)).status).toBe(200);
    // A second read would be a fast-path cache hit; with an Origin it still gets the CORS headers.
    const res = await fetch(screen, { headers: { origin: APP_ORIGIN } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);
    expect(res.headers.get('access-control-expose-headers')).toContain('Retry-After');
    const denied = await fetch(screen, { headers: { origin: 'https://evil.example' } });
    expect(denied.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('CORS_ORIGINS: the demo origin by default, none in production, and a bad origin refused at start', () => {
    expect(parseBffConfig({ PORT: '8080' }).CORS_ORIGINS).toEqual(['http://localhost:8080', 'http://127.0.0.1:8080']);
    expect(parseBffConfig({ PORT: '8080', NODE_ENV: 'production', JWT_SECRET: 'p'.repeat(32), TOPUP_SECRET: 'q'.repeat(32) }).CORS_ORIGINS).toEqual([]);
    expect(parseBffConfig({ CORS_ORIGINS: 'https://a.example, http://localhost:5173' }).CORS_ORIGINS).toEqual(['https://a.example', 'http://localhost:5173']);
    expect(() => parseBffConfig({ CORS_ORIGINS: 'https://a.example/path' })).toThrow(ConfigError);
    expect(() => parseBffConfig({ CORS_ORIGINS: '*' })).toThrow(/CORS_ORIGINS/);
  });
});
