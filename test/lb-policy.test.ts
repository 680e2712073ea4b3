import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { experimental } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GiftServiceClient } from '../gen/ts/livemesh/gift/v1/gift.js';
import { LedgerServiceClient } from '../gen/ts/livemesh/ledger/v1/ledger.js';
import { RoomServiceClient } from '../gen/ts/livemesh/room/v1/room.js';
import { createLbClient, lbServiceConfig, registerLb } from '../lb/client.js';
import { lbDebugHandler, lbSnapshot, registerLbMetrics } from '../lb/observe.js';
import { P2cConfig } from '../lb/policy.js';
import { lbTarget, parseStaticTarget } from '../lb/static-resolver.js';
import { isolate } from '../scripts/isolation.js';
import { as, call, startRoom, type RoomServer } from './support/room.js';

/**
 * A resolver whose address list the test changes while calls run, standing in for DNS answers
 * changing (pods added and removed behind a headless service).
 */
const movable = new Map<string, { addresses: string[]; listeners: Set<experimental.ResolverListener>; resolutions: number }>();

class MovableResolver implements experimental.Resolver {
  constructor(
    private readonly target: experimental.GrpcUri,
    private readonly listener: experimental.ResolverListener,
  ) {
    movable.get(target.path)!.listeners.add(listener);
  }
  updateResolution(): void {
    const entry = movable.get(this.target.path)!;
    entry.resolutions++;
    setImmediate(() => this.listener(experimental.statusOrFromValue(toEndpoints(entry.addresses)), {}, null, ''));
  }
  destroy(): void {
    movable.get(this.target.path)?.listeners.delete(this.listener);
  }
  static getDefaultAuthority(target: experimental.GrpcUri): string {
    return target.path;
  }
}

function toEndpoints(addresses: string[]): experimental.Endpoint[] {
  return addresses.map((a) => {
    const [host, port] = a.split(':') as [string, string];
    return { addresses: [{ host, port: Number(port) }] };
  });
}

function move(path: string, addresses: string[]): void {
  const entry = movable.get(path)!;
  entry.addresses = addresses;
  for (const l of entry.listeners) l(experimental.statusOrFromValue(toEndpoints(addresses)), {}, null, '');
}

const iso = isolate('lbpolicy');
let servers: RoomServer[] = [];
let roomId = '';

beforeAll(async () => {
  registerLb();
  experimental.registerResolver('lmtest', MovableResolver);
  servers = [await startRoom(iso), await startRoom(iso), await startRoom(iso)];
  const first = servers[0]!;
  const { room } = await call(first.client.createRoom, first.client, { streamerId: '0', title: 'lb', category: '', coverKey: '', notice: '', requestId: 'lb' }, as('7', 'streamer'));
  roomId = room!.roomId;
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await iso.cleanup();
});

const view = (name: string) => lbSnapshot().balancers.find((b) => b.name === name);
const picksOf = (name: string, address: string) => view(name)?.endpoints.find((e) => e.address === address)?.picks ?? 0;

/** Runs GetRoom on `client` with `concurrency` workers until stop() is called; collects failures. */
function load(client: RoomServiceClient, concurrency: number) {
  const failures: string[] = [];
  let calls = 0;
  let running = true;
  const workers = Array.from({ length: concurrency }, async () => {
    while (running) {
      try {
        await call(client.getRoom, client, { roomId, readMask: undefined });
        calls++;
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  });
  return {
    failures,
    calls: () => calls,
    stop: async () => {
      running = false;
      await Promise.all(workers);
    },
  };
}

describe('livemesh_p2c in a real grpc-js channel', () => {
  it('spreads calls over every replica and reads their load reports', async () => {
    const client = createLbClient(RoomServiceClient, servers.map((s) => s.address).join(','), { name: 'spread' });
    const run = load(client, 4);
    let endpoints: NonNullable<ReturnType<typeof view>>['endpoints'] = [];
    try {
      // Until every replica has had its share, not for a fixed number of calls: P2C rightly sends
      // less to a replica the loaded machine happens to slow down, so how many of the first few
      // hundred calls each gets depends on scheduling. A picker that starved one (its forced pick
      // comes only every 3 s) would still not get there within the timeout.
      await expect.poll(() => run.calls(), { timeout: 20_000 }).toBeGreaterThan(300);
      await expect
        .poll(() => (view('spread')?.endpoints ?? []).filter((e) => e.picks > 20 && (e.loadReported ?? -1) >= 0).length, { timeout: 20_000 })
        .toBe(servers.length);
      endpoints = view('spread')!.endpoints;
    } finally {
      await run.stop();
      client.close();
    }
    expect(run.failures).toEqual([]);
    expect(view('spread')).toBeUndefined(); // closing the channel destroys its balancer
    expect(endpoints.map((e) => e.address).sort()).toEqual(servers.map((s) => s.address).sort());
    for (const e of endpoints) {
      expect(e.picks).toBeGreaterThan(20);
      expect(e.loadReported).toBeGreaterThanOrEqual(0); // the lm-load trailer was read
      expect(e.latencyMs).toBeGreaterThan(0);
    }
  });

  it('endpoints join and leave while calls run, without failing any', async () => {
    const path = 'join-leave';
    const [a, b, c] = servers as [RoomServer, RoomServer, RoomServer];
    movable.set(path, { addresses: [a.address, b.address], listeners: new Set(), resolutions: 0 });
    const client = createLbClient(RoomServiceClient, `lmtest:${path}`, { name: path });
    const run = load(client, 4);
    try {
      await expect.poll(() => run.calls(), { timeout: 20_000 }).toBeGreaterThan(100);
      expect(picksOf(path, c.address)).toBe(0);
      move(path, [a.address, b.address, c.address]);
      await expect.poll(() => picksOf(path, c.address), { timeout: 20_000 }).toBeGreaterThan(30);
      move(path, [b.address, c.address]);
      await expect.poll(() => view(path)?.endpoints.some((e) => e.address === a.address), { timeout: 10_000 }).toBe(false);
      const before = run.calls();
      await expect.poll(() => run.calls(), { timeout: 20_000 }).toBeGreaterThan(before + 100);
    } finally {
      await run.stop();
      client.close();
    }
    expect(run.failures).toEqual([]);
  });

  it('asks the resolver again periodically, so DNS targets pick up new pods', async () => {
    const path = 'reresolve';
    movable.set(path, { addresses: [servers[0]!.address], listeners: new Set(), resolutions: 0 });
    const client = createLbClient(RoomServiceClient, `lmtest:${path}`, { name: path, reresolveIntervalMs: 100 });
    try {
      await call(client.getRoom, client, { roomId, readMask: undefined });
      const after = movable.get(path)!.resolutions;
      await expect.poll(() => movable.get(path)!.resolutions, { timeout: 10_000 }).toBeGreaterThan(after + 2);
    } finally {
      client.close();
    }
  });

  it('exports every endpoint’s score inputs as metrics and on the debug route', async () => {
    const client = createLbClient(RoomServiceClient, servers.map((s) => s.address).join(','), { name: 'observed' });
    const http = createServer((req, res) => {
      if (!lbDebugHandler(req, res)) res.writeHead(404).end();
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    try {
      for (let i = 0; i < 30; i++) await call(client.getRoom, client, { roomId, readMask: undefined });
      const registry = new Registry();
      registerLbMetrics(registry);
      const text = await registry.metrics();
      for (const name of ['inflight', 'latency_ewma_seconds', 'success_ratio', 'load_ratio', 'score', 'avoided', 'ready']) {
        expect(text).toMatch(new RegExp(`livemesh_lb_endpoint_${name}\\{channel="observed",endpoint="127\\.0\\.0\\.1:\\d+"\\} `));
      }
      expect(text).toMatch(/livemesh_lb_endpoint_picks_total\{channel="observed",endpoint="127\.0\.0\.1:\d+"\} \d+/);
      const port = (http.address() as AddressInfo).port;
      const body = (await (await fetch(`http://127.0.0.1:${port}/debug/lb`)).json()) as ReturnType<typeof lbSnapshot>;
      const observed = body.balancers.find((b) => b.name === 'observed')!;
      expect(observed.state).toBe('READY');
      expect(observed.endpoints.reduce((n, e) => n + e.picks, 0)).toBe(30);
      expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    } finally {
      client.close();
      await new Promise<void>((r) => http.close(() => r()));
    }
  });
});

describe('configuration', () => {
  it('parses and validates the policy config', () => {
    const c = P2cConfig.createFromJson({ name: 'room', max_load: 0.8, force_pick_after_ms: 1000, reresolve_interval_ms: 0 });
    expect(c.options).toEqual({ maxLoad: 0.8, forcePickAfterMs: 1000 });
    expect(c.reresolveMs).toBe(0);
    expect(P2cConfig.createFromJson(c.toJsonObject()['livemesh_p2c' as keyof object])).toEqual(c);
    expect(() => P2cConfig.createFromJson({ max_load: 2 })).toThrow(/max_load/);
    expect(() => P2cConfig.createFromJson({ slow_start_ms: '3s' })).toThrow(/slow_start_ms/);
  });

  it('gives reads and keyed writes (and nothing else) a retry policy, and every method a deadline', () => {
    const config = lbServiceConfig(RoomServiceClient.service, { deadlineMs: 2500 });
    expect(config.loadBalancingConfig).toEqual([{ livemesh_p2c: { name: 'livemesh.room.v1.RoomService' } }]);
    const [all, reads] = config.methodConfig;
    expect(all?.timeout).toEqual({ seconds: 2, nanos: 500_000_000 });
    const retried = reads!.name.map((n) => n.method);
    expect(retried).toEqual(expect.arrayContaining(['GetRoom', 'BatchGetRooms', 'ListLiveRooms']));
    // CreateRoom must carry request_id, so a resend returns the room the first attempt made.
    expect(retried).toContain('CreateRoom');
    expect(retried).not.toContain('UpdateRoom');
    expect(retried).not.toContain('EnterRoom');
    const ledgerRetried = lbServiceConfig(LedgerServiceClient.service).methodConfig?.[1]?.name?.map((n) => n.method);
    expect(ledgerRetried).toEqual(expect.arrayContaining(['Transfer', 'TopUp', 'GetBalances']));
    expect(ledgerRetried).not.toContain('VoidTransfer');
    expect(lbServiceConfig(GiftServiceClient.service).methodConfig?.[1]?.name?.map((n) => n.method)).toContain('SendGift');
    expect(reads!.retryPolicy!.retryableStatusCodes).toEqual(['UNAVAILABLE']);
    expect(lbServiceConfig(RoomServiceClient.service, { idempotent: [] }).methodConfig).toHaveLength(1);
  });

  it('maps address specs to targets', () => {
    expect(lbTarget('localhost:50051,localhost:50151')).toBe('static:localhost:50051,localhost:50151');
    expect(lbTarget('room-headless.livemesh.svc:50051')).toBe('dns:room-headless.livemesh.svc:50051');
    expect(lbTarget('dns:///room:50051')).toBe('dns:///room:50051');
    expect(lbTarget('ipv4:127.0.0.1:1,127.0.0.1:2')).toBe('ipv4:127.0.0.1:1,127.0.0.1:2');
    expect(lbTarget('127.0.0.1:1,127.0.0.1:2')).toBe('static:127.0.0.1:1,127.0.0.1:2');
    expect(lbTarget('a:1,b:2')).toBe('static:a:1,b:2');
    expect(parseStaticTarget('a:1, [::1]:2')).toEqual([
      { host: 'a', port: 1 },
      { host: '::1', port: 2 },
    ]);
    expect(() => parseStaticTarget('a')).toThrow(/host:port/);
  });
});
