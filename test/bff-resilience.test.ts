/**
 * How the BFF behaves when things go wrong: switches followed by every replica, breakers that
 * flip sections off on their own, stale-if-error, a killed critical upstream, and rate limits.
 * Two BFF replicas share one Redis and NATS; Room runs in-process and Gift as a process that the
 * last test kills.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Upstream } from '../bff/upstreams.js';
import { isolate } from '../scripts/isolation.js';
import type { Server as ServiceProcess } from '../scripts/mesh.js';
import { json, killService, send, seedGiftCatalog, spawnOn, startBff, stopServer, until, type BffServer } from './support/bff.js';
import { as, roomApi, startRoom, type RoomServer } from './support/room.js';

const iso = isolate('bffres');
let room: RoomServer;
let gift: ServiceProcess;
let a: BffServer;
let b: BffServer;
let admin: Record<string, string>;
let seq = 0;

const TTL_MS = 300;

beforeAll(async () => {
  room = await startRoom(iso);
  gift = await spawnOn('gift', iso, { ROOM_ADDR: room.address, LEDGER_ADDR: '127.0.0.1:1' });
  (await seedGiftCatalog(gift.address)).client.close();
  const env = { ROOM_ADDR: room.address, GIFT_ADDR: gift.address, CACHE_TTL_MS: String(TTL_MS), BREAKER_MIN_CALLS: '5', BREAKER_OPEN_MS: '60000', RATE_LIMIT_IP_PER_S: '0', RATE_LIMIT_USER_PER_S: '5' };
  [a, b] = await Promise.all([startBff(iso, env), startBff(iso, env)]);
  admin = await a.auth('1', 'admin');
});

afterAll(async () => {
  await a?.close();
  await b?.close();
  if (gift && gift.child.exitCode === null && gift.child.signalCode === null) await stopServer(gift);
  await room?.close();
  await iso.cleanup();
});

/** Rooms are set up through Room directly: the BFF's per-user limit is under test here. */
async function newRoom(): Promise<string> {
  const created = await roomApi(room.client).createRoom({ title: `room ${++seq}`, requestId: `res-room-${seq}` }, as('5100', 'streamer'));
  return created.room!.roomId;
}

const rankingCalls = (bff: BffServer) => (bff.bff.ctx.upstreams.ranking as Upstream<object>).calls.get('getRoomRanking') ?? 0;

describe('degradation switches', () => {
  it('a switch set through one replica is followed by the other, which stops calling that upstream', async () => {
    const roomId = await newRoom();
    const set = await send(a.base, 'PUT', '/v1/admin/switches/room.ranking', { off: true, reason: 'big event' }, admin);
    expect(set.status).toBe(200);
    await until('replica b to see the switch', async () => json(await fetch(`${b.base}/v1/admin/switches`, { headers: admin })), (v) =>
      v.switches.some((s: { name: string; off: boolean }) => s.name === 'room.ranking' && s.off),
    );
    const before = rankingCalls(b);
    const res = await fetch(`${b.base}/v1/rooms/${roomId}`);
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.ranking).toBeNull();
    expect(body.degraded).toContain('ranking');
    expect(rankingCalls(b)).toBe(before);

    await send(a.base, 'PUT', '/v1/admin/switches/room.ranking', { off: false }, admin);
    await until('replica b to see it back on', async () => json(await fetch(`${b.base}/v1/admin/switches`, { headers: admin })), (v) =>
      v.switches.some((s: { name: string; off: boolean }) => s.name === 'room.ranking' && !s.off),
    );
  });

  it("an upstream's breaker opens after repeated failures and its sections degrade without a call", async () => {
    // Ranking is down (nothing listens at its address): each new room entry tries it and fails.
    for (let i = 0; i < 6 && !a.bff.ctx.upstreams.ranking.open; i++) {
      expect((await fetch(`${a.base}/v1/rooms/${await newRoom()}`)).status).toBe(200);
    }
    const view = await json(await fetch(`${a.base}/v1/admin/switches`, { headers: admin }));
    expect(view.breakers.find((x: { upstream: string }) => x.upstream === 'ranking')).toEqual({ upstream: 'ranking', open: true });
    const before = rankingCalls(a);
    const res = await json(await fetch(`${a.base}/v1/rooms/${await newRoom()}`));
    expect(res.degraded).toEqual(['ranking', 'messages', 'likes']);
    expect(rankingCalls(a)).toBe(before);
    // A critical route on the open breaker fails fast with 503, naming it.
    const ranking = await fetch(`${a.base}/v1/rooms/1/ranking`);
    expect(ranking.status).toBe(503);
    expect((await json(ranking)).error.upstream).toBe('ranking');
  });
});

describe('rate limits', () => {
  it('answers 429 with Retry-After once a user passes the per-user limit, on any replica', async () => {
    const heavy = await a.auth('8800', 'viewer');
    // Both replicas count against the same Redis budget of 5 per second. Sent at once, twenty
    // requests land in one or two fixed windows, so at most ten can pass however slow the machine.
    const responses = await Promise.all(Array.from({ length: 20 }, (_, i) => fetch(`${(i % 2 === 0 ? a : b).base}/v1/rooms?live=1`, { headers: heavy })));
    const limited = responses.filter((r) => r.status === 429);
    expect(responses.filter((r) => r.status === 200).length).toBeLessThanOrEqual(10);
    expect(limited.length).toBeGreaterThanOrEqual(10);
    expect(Number(limited[0]?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await json(limited[0]!)).error).toMatchObject({ code: 'RESOURCE_EXHAUSTED', reason: 'RATE_LIMITED', message: 'too many requests from this user; slow down' });
    await Promise.all(responses.map((r) => r.arrayBuffer().catch(() => undefined)));
  });
});

describe('a killed critical upstream', () => {
  it('serves the last good screen (STALE) past its TTL, and 503 with Retry-After for screens it never had', async () => {
    const cached = await newRoom();
    const uncached = await newRoom();
    const first = await fetch(`${a.base}/v1/rooms/${cached}`);
    expect(first.headers.get('x-cache-status')).toBe('MISS');
    const good = await first.text();

    await killService(gift);
    // Past the TTL and the stale-while-revalidate window: the next request must ask Gift again.
    await new Promise((r) => setTimeout(r, TTL_MS * 2 + 100));
    const stale = await fetch(`${a.base}/v1/rooms/${cached}`);
    expect(stale.status).toBe(200);
    expect(stale.headers.get('x-cache-status')).toBe('STALE');
    expect(await stale.text()).toBe(good);

    const down = await fetch(`${a.base}/v1/rooms/${uncached}`);
    expect(down.status).toBe(503);
    const retry = Number(down.headers.get('retry-after'));
    expect(retry).toBeGreaterThanOrEqual(2);
    expect(retry).toBeLessThanOrEqual(6);
    expect((await json(down)).error).toMatchObject({ code: 'UNAVAILABLE', upstream: 'gift' });
  });
});
