/**
 * The room stream with real WebSocket clients, real NATS and a real Room (for the room check).
 * Events are published on the room's subject exactly as Chat publishes them.
 */
import { request } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLOSE_SLOW_CONSUMER } from '../bff/stream/gateway.js';
import { isolate } from '../scripts/isolation.js';
import { startBff, until, type BffServer } from './support/bff.js';
import { openStream, refusal, roomPublisher, type StreamClient, undocumentedMessages } from './support/bff-stream.js';
import { as, roomApi, startRoom, type RoomServer } from './support/room.js';

const iso = isolate('bffws');
let room: RoomServer;
/** No practical cap: ordering and lifecycle. */
let fast: BffServer;
/** 1000 events/s in 20 ms ticks with a 512 KB buffer limit: frames stay far below the limit, a stalled socket does not. */
let paced: BffServer;
/** 100 events/s: sampling and priorities. */
let capped: BffServer;
let pub: Awaited<ReturnType<typeof roomPublisher>>;
let seq = 0;

beforeAll(async () => {
  room = await startRoom(iso);
  [fast, paced, capped, pub] = await Promise.all([
    startBff(iso, { ROOM_ADDR: room.address, RATE_LIMIT_IP_PER_S: '0', STREAM_EVENTS_PER_S: '1000000', STREAM_TICK_MS: '20', STREAM_HEARTBEAT_MS: '1000' }),
    startBff(iso, { ROOM_ADDR: room.address, RATE_LIMIT_IP_PER_S: '0', STREAM_EVENTS_PER_S: '1000', STREAM_TICK_MS: '20', STREAM_MAX_BUFFER_BYTES: '524288' }),
    startBff(iso, { ROOM_ADDR: room.address, RATE_LIMIT_IP_PER_S: '5', STREAM_EVENTS_PER_S: '100', STREAM_TICK_MS: '100', STREAM_SAMPLE_ABOVE: '0' }),
    roomPublisher(iso),
  ]);
});

// Every JSON message a stream sent matches its documented schema (the OpenAPI Stream* components).
afterEach(() => {
  expect(undocumentedMessages()).toEqual([]);
});

afterAll(async () => {
  await pub?.close();
  await fast?.close();
  await paced?.close();
  await capped?.close();
  await room?.close();
  await iso.cleanup();
});

async function newRoom(): Promise<string> {
  return (await roomApi(room.client).createRoom({ title: `stream ${++seq}`, requestId: `ws-room-${seq}` }, as('5100', 'streamer'))).room!.roomId;
}

/** An upgrade request with exactly these headers, which a WebSocket client would never send. */
function rawUpgrade(base: string, method: string, path: string, headers: Record<string, string>): Promise<{ status: number; contentType: string; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({
      host: url.hostname,
      port: url.port,
      method,
      path,
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers },
    });
    req.on('upgrade', (_res, socket) => {
      socket.destroy();
      reject(new Error(`${method} ${path} was accepted`));
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

const closeAll = (clients: StreamClient[]) => Promise.all(clients.map((c) => (c.ws.close(), c.closed)));

describe('room stream', () => {
  it('refuses bad upgrades with the JSON error shape', async () => {
    expect(await refusal(fast.base, '/v1/rooms/abc/stream')).toMatchObject({ status: 400, body: { error: { code: 'INVALID_ARGUMENT', field: 'id' } } });
    expect(await refusal(fast.base, '/v1/rooms/999999999/stream')).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } });
    const roomId = await newRoom();
    expect(await refusal(fast.base, `/v1/rooms/${roomId}/stream?format=xml`)).toMatchObject({ status: 400, body: { error: { field: 'format' } } });
    expect(await refusal(fast.base, `/v1/rooms/${roomId}/stream?after=-3`)).toMatchObject({ status: 400, body: { error: { code: 'INVALID_ARGUMENT', field: 'after' } } });
    expect(await refusal(fast.base, `/v1/rooms/${roomId}/stream?after=3&epoch=no%20way`)).toMatchObject({ status: 400, body: { error: { code: 'INVALID_ARGUMENT', field: 'epoch' } } });
    expect(await refusal(fast.base, `/v1/rooms/${roomId}/stream?access_token=nope`)).toMatchObject({ status: 401, body: { error: { code: 'UNAUTHENTICATED' } } });
    expect(await refusal(fast.base, '/v1/elsewhere')).toMatchObject({ status: 404 });
  });

  // Found by `npm run fuzz`: a bad escape in the room id was a 500, and ws's own handshake refusals were HTML.
  it.each([
    ['a malformed escape in the room id', 'GET', '/v1/rooms/%/stream', {}, 400],
    ['another method than GET', 'POST', '/v1/rooms/1/stream', {}, 405],
    ['a bad Sec-WebSocket-Key', 'GET', '/v1/rooms/{room}/stream', { 'sec-websocket-key': 'short' }, 400],
    ['an unknown Sec-WebSocket-Version', 'GET', '/v1/rooms/{room}/stream', { 'sec-websocket-version': '99' }, 400],
  ])('refuses %s with the JSON error shape', async (_label, method, path, headers, status) => {
    const roomId = await newRoom();
    const res = await rawUpgrade(fast.base, method, path.replace('{room}', roomId), headers);
    expect(res.status).toBe(status);
    expect(res.contentType).toMatch(/^application\/json/);
    expect(JSON.parse(res.body)).toMatchObject({ error: { code: expect.any(String), message: expect.any(String) } });
  });

  it('answers a HEAD upgrade 405 without a body (a body after HEAD breaks the client parser)', async () => {
    const res = await rawUpgrade(fast.base, 'HEAD', `/v1/rooms/${await newRoom()}/stream`, {});
    expect(res.status).toBe(405);
    expect(res.body).toBe('');
  });

  it('counts a connection against the per-address limit: 429 with Retry-After beyond it', async () => {
    const roomId = await newRoom();
    // Twenty at once against 5 per second: they land in one or two windows, so at most ten pass.
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, () =>
        openStream(capped.base, roomId).then(
          (c) => ({ ok: c }),
          () => ({ ok: undefined }),
        ),
      ),
    );
    const opened = outcomes.flatMap((o) => (o.ok ? [o.ok] : []));
    expect(opened.length).toBeLessThanOrEqual(10);
    expect(opened.length).toBeGreaterThan(0);
    await closeAll(opened);
    await new Promise((r) => setTimeout(r, 1100));
    const refused = await Promise.all(Array.from({ length: 8 }, () => refusal(capped.base, `/v1/rooms/${roomId}/stream`).catch(() => undefined)));
    const limited = refused.find((r) => r?.status === 429);
    expect(limited?.body).toMatchObject({ error: { code: 'RESOURCE_EXHAUSTED', reason: 'RATE_LIMITED' } });
    await new Promise((r) => setTimeout(r, 1100));
  });

  it('subscribes to a room only while it has viewers here', async () => {
    const roomId = await newRoom();
    const before = fast.bff.stream.stats.subscriptions;
    const a = await openStream(fast.base, roomId);
    const b = await openStream(fast.base, roomId);
    expect(fast.bff.stream.stats.subscriptions).toBe(before + 1);
    await closeAll([a]);
    expect(fast.bff.stream.stats.subscriptions).toBe(before + 1);
    await closeAll([b]);
    await until('the subscription to end', () => fast.bff.stream.stats.subscriptions, (n) => n === before);
  });

  it('delivers every event, in order, to 500 connections in one room (JSON and protobuf clients)', async () => {
    const roomId = await newRoom();
    const clients: StreamClient[] = [];
    for (let i = 0; i < 500; i += 50) {
      clients.push(...(await Promise.all(Array.from({ length: 50 }, (_, j) => openStream(fast.base, roomId, (i + j) % 2 === 0 ? 'format=json' : 'format=protobuf')))));
    }
    const sent: string[] = [];
    // 200 chat messages in small bursts; the cap is far above them, so nothing may be sampled away.
    for (let i = 0; i < 200; i++) {
      sent.push(pub.chat(roomId, `message ${i}`));
      if (i % 10 === 9) {
        await pub.flush();
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    await pub.flush();
    await until('every client to have every event', () => clients.filter((c) => c.events.length >= sent.length).length, (n) => n === clients.length, 20_000);
    for (const c of clients) {
      expect(c.events.map((e) => e.seq)).toEqual(sent);
      expect(c.dropped).toBe(0);
    }
    await closeAll(clients);
  });

  it('disconnects a client that stops reading (4008) while the others keep receiving', async () => {
    const roomId = await newRoom();
    const readers = await Promise.all([1, 2, 3].map(() => openStream(paced.base, roomId)));
    const stalled = await openStream(paced.base, roomId);
    stalled.ws.pause();
    const slowBefore = paced.bff.stream.stats.slowDisconnects;
    // Gifts are never sampled away, so every reader must get every one. 8 KB each: 12 MB in all,
    // well past what the kernel buffers for the stalled socket plus the 512 KB limit.
    const big = 'x'.repeat(8192);
    const sent: string[] = [];
    for (let batch = 0; batch < 60; batch++) {
      for (let i = 0; i < 25; i++) sent.push(pub.gift(roomId, big));
      await pub.flush();
      // The readers share this process (and its CPU) with the BFF: pacing the publisher keeps each
      // within two batches (400 KB) of it, under the limit however slow the machine, while the
      // stalled client falls behind by everything.
      await until('the readers to keep up', () => Math.min(...readers.map((r) => r.events.length)), (n) => n >= sent.length - 25, 20_000);
    }
    await until('the stalled client to be dropped', () => paced.bff.stream.stats.slowDisconnects, (n) => n === slowBefore + 1, 20_000);
    await until('the readers to get every gift', () => Math.min(...readers.map((r) => r.events.length)), (n) => n === sent.length, 20_000);
    for (const r of readers) expect(r.events.map((e) => e.seq)).toEqual(sent);
    stalled.ws.resume();
    expect((await stalled.closed).code).toBeOneOf([CLOSE_SLOW_CONSUMER, 1006]);
    await closeAll(readers);
  });

  it('caps events per connection: gifts first and all delivered, chat sampled beyond the cap', async () => {
    const roomId = await newRoom();
    const client = await openStream(capped.base, roomId);
    const gifts: string[] = [];
    for (let i = 0; i < 30; i++) gifts.push(pub.gift(roomId));
    for (let i = 0; i < 1000; i++) pub.chat(roomId);
    await pub.flush();
    await until('every gift', () => client.events.filter((e) => e.type === 'gift').length, (n) => n === 30, 10_000);
    await until('every chat to be delivered or counted as dropped', () => client.events.filter((e) => e.type === 'chat').length + client.dropped, (n) => n === 1000, 10_000);
    expect(client.events.filter((e) => e.type === 'gift').map((e) => e.seq)).toEqual(gifts);
    const chats = client.events.filter((e) => e.type === 'chat').length;
    // 100 events/s in 100 ms ticks: at most 20 events per tick (one tick of carry-over); the first
    // ticks go to gifts, so only a small sample of the chat burst can get through.
    expect(chats).toBeLessThan(100);
    expect(client.dropped).toBeGreaterThan(900);
    const firstChat = client.events.findIndex((e) => e.type === 'chat');
    if (firstChat >= 0) expect(firstChat).toBeGreaterThanOrEqual(Math.min(30, client.events.length));
    await closeAll([client]);
  });

  it('sheds chat while the stream.chat switch is off; gifts still flow', async () => {
    const roomId = await newRoom();
    const client = await openStream(capped.base, roomId);
    const switches = capped.bff.ctx.switches!;
    await switches.set('stream.chat', true, '1', 'test');
    try {
      pub.chat(roomId);
      const gift = pub.gift(roomId);
      await pub.flush();
      await until('the gift', () => client.events, (e) => e.some((x) => x.seq === gift));
      expect(client.events.map((e) => e.type)).toEqual(['gift']);
    } finally {
      await switches.set('stream.chat', false, '1', 'test');
    }
    const chat = pub.chat(roomId);
    await pub.flush();
    await until('chat again', () => client.events, (e) => e.some((x) => x.seq === chat));
    await closeAll([client]);
  });

  it("counts signed-in viewers in Room's presence while their stream is open", async () => {
    const roomId = await newRoom();
    const online = async () => (await roomApi(room.client).getOnlineCount({ roomId }, as('1', 'admin'))).onlineCount;
    const token = (await fast.auth('7401', 'viewer')).authorization!.slice('Bearer '.length);
    const signedIn = await openStream(fast.base, roomId, `access_token=${token}`);
    const anonymous = await openStream(fast.base, roomId);
    await until('the viewer to count', online, (n) => n === '1');
    await closeAll([signedIn]);
    await until('the viewer to leave', online, (n) => n === '0');
    await closeAll([anonymous]);
  });

  it('drops a client that stops answering pings', async () => {
    const roomId = await newRoom();
    const before = fast.bff.stream.stats.heartbeatDisconnects;
    const mute = await openStream(fast.base, roomId, '', { autoPong: false });
    const { code } = await mute.closed;
    expect(code).toBe(1006);
    expect(fast.bff.stream.stats.heartbeatDisconnects).toBe(before + 1);
  });

  it('says so when recent messages cannot be replayed (Chat down) and goes on with live events', async () => {
    const roomId = await newRoom();
    const client = await openStream(fast.base, roomId, 'resume=1');
    await until('the replay outcome', () => client.control, (c) => c.some((m) => m.type === 'replay_failed'));
    const s = pub.chat(roomId);
    await pub.flush();
    await until('the live event', () => client.events, (e) => e.some((x) => x.seq === s));
    await closeAll([client]);
  });
});
