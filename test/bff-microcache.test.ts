/**
 * The micro-cache's rules on a controlled clock (the HTTP-level behaviour is in bff-api and
 * bff-resilience): fresh, stale-while-revalidate, stale-if-error only for transient failures.
 */
import { status as Code } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { HttpError } from '../bff/errors.js';
import { MicroCache } from '../bff/microcache.js';
import { assemble } from '../bff/sections.js';

function grpcError(code: Code): Error {
  return Object.assign(new Error(Code[code]), { code, details: Code[code] });
}

/** A request's budget, starting now: one fixed at import would run out on a loaded machine before the test builds. */
const budget = () => ({ startedAt: Date.now(), budgetMs: 1500, optionalDeadlineMs: 300, switches: undefined });
const failing = { upstream: { name: 'ranking', open: false }, run: () => Promise.reject(grpcError(Code.DEADLINE_EXCEEDED)) };
const answering = { upstream: { name: 'ranking', open: false }, run: () => Promise.resolve({ entries: [] }) };

function setup() {
  let now = 1_000_000;
  const cache = new MicroCache({ ttlMs: 1000, swrMs: 1000, staleIfErrorMs: 10_000, max: 100, now: () => now });
  return { cache, advance: (ms: number) => (now += ms) };
}

describe('MicroCache', () => {
  it('serves fresh entries as HIT, then stale ones as UPDATING while one refresh runs', async () => {
    const { cache, advance } = setup();
    let version = 0;
    const load = () => Promise.resolve({ version: ++version });
    expect((await cache.get('k', load)).status).toBe('MISS');
    expect((await cache.get('k', load)).status).toBe('HIT');
    advance(1500);
    const [x, y] = await Promise.all([cache.get('k', load), cache.get('k', load)]);
    expect([x.status, y.status]).toEqual(['UPDATING', 'UPDATING']);
    expect(JSON.parse(x.body.raw.toString())).toEqual({ version: 1 });
    await new Promise((r) => setTimeout(r, 10));
    expect(version).toBe(2);
    const after = await cache.get('k', load);
    expect(after.status).toBe('HIT');
    expect(JSON.parse(after.body.raw.toString())).toEqual({ version: 2 });
  });

  it('falls back to the stale entry on UNAVAILABLE, DEADLINE_EXCEEDED or a 503, never on NOT_FOUND', async () => {
    const { cache, advance } = setup();
    await cache.get('k', () => Promise.resolve({ ok: true }));
    for (const err of [grpcError(Code.UNAVAILABLE), grpcError(Code.DEADLINE_EXCEEDED), new HttpError(503, { error: { code: 'UNAVAILABLE', message: 'down' } })]) {
      advance(2500);
      const got = await cache.get('k', () => Promise.reject(err));
      expect(got.status).toBe('STALE');
    }
    advance(2500);
    await expect(cache.get('k', () => Promise.reject(grpcError(Code.NOT_FOUND)))).rejects.toMatchObject({ code: Code.NOT_FOUND });
    // Too old even for stale-if-error.
    advance(20_000);
    await expect(cache.get('k', () => Promise.reject(grpcError(Code.UNAVAILABLE)))).rejects.toMatchObject({ code: Code.UNAVAILABLE });
  });

  it('shares one load among concurrent misses and forgets a failed one', async () => {
    const { cache } = setup();
    let loads = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const load = async () => {
      loads++;
      await gate;
      return { n: loads };
    };
    const all = Promise.all(Array.from({ length: 50 }, () => cache.get('k', load)));
    release();
    expect(new Set((await all).map((r) => r.status))).toEqual(new Set(['MISS']));
    expect(loads).toBe(1);
    await expect(cache.get('other', () => Promise.reject(grpcError(Code.UNAVAILABLE)))).rejects.toBeDefined();
    expect((await cache.get('other', () => Promise.resolve({ ok: 1 }))).status).toBe('MISS');
  });
});

describe('MicroCache with degraded screens', () => {
  function degradedSetup() {
    let now = 1_000_000;
    const cache = new MicroCache({ ttlMs: 2000, degradedTtlMs: 250, swrMs: 2000, staleIfErrorMs: 10_000, max: 100, now: () => now });
    return { cache, advance: (ms: number) => (now += ms) };
  }
  const body = (got: { body: { raw: Buffer } }) => JSON.parse(got.body.raw.toString()) as { degraded: string[] };
  const settle = () => new Promise((r) => setTimeout(r, 10));

  it('keeps a build with a section that ran out of time only for the short TTL, then rebuilds it in the background', async () => {
    const { cache, advance } = degradedSetup();
    let builds = 0;
    const built: Promise<unknown>[] = [];
    const load = () => {
      const screen = assemble({}, { ranking: ++builds === 1 ? failing : answering }, budget());
      built.push(screen);
      return screen;
    };
    const first = await cache.get('k', load);
    expect([first.status, first.degraded, body(first).degraded]).toEqual(['MISS', true, ['ranking']]);
    expect(cache.degradedLoads).toBe(1);
    advance(200);
    expect((await cache.get('k', load)).status).toBe('HIT');
    // The fast path never serves a degraded screen: the router sends it with max-age 0.
    expect(cache.peekFresh('k')).toBeUndefined();
    advance(100); // 300 ms: past the short TTL, far inside the full one
    const during = await cache.get('k', load);
    expect([during.status, during.degraded]).toEqual(['UPDATING', true]);
    expect(builds).toBe(2);
    await built[1];
    await settle();
    const after = await cache.get('k', load);
    expect([after.status, after.degraded, body(after).degraded]).toEqual(['HIT', false, []]);
    // The complete screen is kept the full TTL.
    advance(1900);
    expect((await cache.get('k', load)).status).toBe('HIT');
    expect(builds).toBe(2);
  });

  it('keeps the full TTL for a screen whose sections were switched off, behind an open breaker or refused by a down upstream', async () => {
    const { cache, advance } = degradedSetup();
    const off = { isOff: (name: string) => name === 'room.ranking' };
    const down = { upstream: { name: 'likes', open: false }, run: () => Promise.reject(grpcError(Code.UNAVAILABLE)) };
    const load = () => assemble({}, { ranking: { ...answering, switch: 'room.ranking' as const }, messages: { upstream: { name: 'chat', open: true }, run: () => Promise.resolve(1) }, likes: down }, { ...budget(), switches: off });
    const first = await cache.get('k', load);
    expect([first.degraded, body(first).degraded]).toEqual([false, ['ranking', 'messages', 'likes']]);
    advance(1500);
    expect((await cache.get('k', load)).status).toBe('HIT');
    expect(cache.loads).toBe(1);
  });

  it('gives an optional section its upstream\'s first call the whole budget, later calls the short deadline', async () => {
    const upstream = { name: 'ranking', open: false };
    const deadlines: number[] = [];
    const section = { upstream, run: (deadline: number) => (deadlines.push(deadline - Date.now()), Promise.resolve(1)) };
    await assemble({}, { ranking: section }, budget());
    await assemble({}, { ranking: section }, budget());
    expect(deadlines[0]).toBeGreaterThan(1400);
    expect(deadlines[1]).toBeLessThanOrEqual(300);
  });
});

describe('pickEncoding', () => {
  it('prefers br, honours q-values and refusals, and falls back to identity', async () => {
    const { pickEncoding } = await import('../bff/respond.js');
    expect(pickEncoding('gzip, deflate, br')).toBe('br');
    expect(pickEncoding('gzip;q=1.0, br;q=0.5')).toBe('gzip');
    expect(pickEncoding('br;q=0, gzip')).toBe('gzip');
    expect(pickEncoding('*')).toBe('br');
    expect(pickEncoding('*;q=0.5, br;q=0')).toBe('gzip');
    expect(pickEncoding('identity')).toBe('identity');
    expect(pickEncoding(undefined)).toBe('identity');
  });
});
