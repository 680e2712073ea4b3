import { Metadata, status as Code, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HealthClient, HealthCheckResponse_ServingStatus } from '../gen/ts/grpc/health/v1/health.js';
import type { RoomServiceClient } from '../gen/ts/livemesh/room/v1/room.js';
import { OrcaLoadReport } from '../gen/ts/xds/data/orca/v3/orca_load_report.js';
import { errorInfoOf } from '../kit/grpc-errors.js';
import { faultInterceptor } from '../kit/interceptors.js';
import { LOAD_METADATA_KEY, parseLoad } from '../kit/load.js';
import { credentials } from '@grpc/grpc-js';
import { isolate } from '../scripts/isolation.js';
import { as, startRoom } from './support/room.js';

const iso = isolate('loadfault');
afterAll(() => iso.cleanup());

interface Outcome {
  err: ServiceError | null;
  headers: Metadata | undefined;
  trailers: Metadata | undefined;
  ms: number;
}

/** Calls GetRoom and captures the response headers and trailers, success or failure. */
function getRoomWithMetadata(client: RoomServiceClient, roomId: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    let headers: Metadata | undefined;
    let trailers: Metadata | undefined;
    let err: ServiceError | null = null;
    let pending = 2;
    const done = () => --pending === 0 && resolve({ err, headers, trailers, ms: performance.now() - started });
    const c = client.getRoom({ roomId, readMask: undefined }, as('1', 'viewer'), (e) => {
      err = e;
      done();
    });
    c.on('metadata', (md) => (headers = md));
    c.on('status', (s) => {
      trailers = s.metadata;
      done();
    });
  });
}

function orcaOf(md: Metadata | undefined): OrcaLoadReport | undefined {
  const raw = md?.get('endpoint-load-metrics-bin')[0];
  return raw instanceof Buffer ? OrcaLoadReport.decode(raw) : undefined;
}

describe('load reporting', () => {
  let room: Awaited<ReturnType<typeof startRoom>>;
  beforeAll(async () => {
    room = await startRoom(iso, { LOAD_WINDOW_MS: '100', FAULT_CPU_MS: '15', FAULT_METHODS: 'GetRoom' });
  });
  afterAll(() => room?.close());

  it('every response, OK or error, carries lm-load in headers and trailers and the ORCA trailer', async () => {
    const created = await new Promise<string>((resolve, reject) =>
      room.client.createRoom({ streamerId: '0', title: 't', category: '', coverKey: '', notice: '', requestId: 'load' }, as('3', 'streamer'), (e, r) => (e ? reject(e) : resolve(r.room!.roomId))),
    );
    for (const roomId of [created, '424242', '0']) {
      const out = await getRoomWithMetadata(room.client, roomId);
      expect(parseLoad(out.trailers?.get(LOAD_METADATA_KEY)[0] as string)).toBeDefined();
      const orca = orcaOf(out.trailers);
      expect(orca).toBeDefined();
      expect(orca!.applicationUtilization).toBeGreaterThanOrEqual(0);
      expect(orca!.applicationUtilization).toBeLessThanOrEqual(1);
      if (!out.err) expect(parseLoad(out.headers?.get(LOAD_METADATA_KEY)[0] as string)).toBeDefined();
    }
  });

  it('reported load rises when calls burn CPU', async () => {
    // Each GetRoom burns 15 ms of CPU (fault injection), so a steady stream saturates the loop.
    let last: Outcome | undefined;
    const until = performance.now() + 1500;
    while (performance.now() < until) last = await getRoomWithMetadata(room.client, '424242');
    const load = parseLoad(last!.trailers?.get(LOAD_METADATA_KEY)[0] as string)!;
    expect(load.elu).toBeGreaterThan(0.3);
    expect(orcaOf(last!.trailers)!.applicationUtilization).toBeGreaterThan(0.3);
  });
});

describe('fault injection', () => {
  it('is off by default: no interceptor is installed', () => {
    expect(faultInterceptor({ latencyMs: 0, cpuMs: 0, errorRate: 0, methods: [] })).toBeUndefined();
  });

  it('injects errors at the configured rate, only on the configured methods, never on health', async () => {
    const room = await startRoom(iso, { FAULT_ERROR_RATE: '1', FAULT_METHODS: 'GetRoom' });
    try {
      const out = await getRoomWithMetadata(room.client, '987654321');
      expect(out.err?.code).toBe(Code.UNAVAILABLE);
      expect(errorInfoOf(out.err?.metadata)?.reason).toBe('FAULT_INJECTED');
      expect(parseLoad(out.trailers?.get(LOAD_METADATA_KEY)[0] as string)).toBeDefined();
      // CreateRoom is not in FAULT_METHODS, so it works.
      await new Promise<void>((resolve, reject) =>
        room.client.createRoom({ streamerId: '0', title: 't', category: '', coverKey: '', notice: '', requestId: 'f' }, as('3', 'streamer'), (e) => (e ? reject(e) : resolve())),
      );
      const health = new HealthClient(room.address, credentials.createInsecure());
      const status = await new Promise((resolve, reject) => health.check({ service: '' }, (e, r) => (e ? reject(e) : resolve(r.status))));
      expect(status).toBe(HealthCheckResponse_ServingStatus.SERVING);
      health.close();
    } finally {
      await room.close();
    }
  });

  it('adds the configured latency', async () => {
    const room = await startRoom(iso, { FAULT_LATENCY_MS: '250' });
    try {
      const out = await getRoomWithMetadata(room.client, '987654321');
      expect(out.err?.code).toBe(Code.NOT_FOUND);
      expect(out.ms).toBeGreaterThanOrEqual(240);
    } finally {
      await room.close();
    }
  });

  it('with no faults configured calls are neither delayed nor failed by injection', async () => {
    const room = await startRoom(iso);
    try {
      const results = await Promise.all(Array.from({ length: 50 }, () => getRoomWithMetadata(room.client, '987654321')));
      expect(results.every((r) => r.err?.code === Code.NOT_FOUND)).toBe(true);
    } finally {
      await room.close();
    }
  });
});

describe('metrics endpoint', () => {
  it('exposes calls per method and code, and the load gauges', async () => {
    const room = await startRoom(iso);
    try {
      await getRoomWithMetadata(room.client, '987654321');
      const body = await (await fetch(`http://127.0.0.1:${room.host.metricsPort}/metrics`)).text();
      expect(body).toMatch(/grpc_server_handled_total\{[^}]*grpc_method="GetRoom"[^}]*grpc_code="NOT_FOUND"[^}]*\} 1/);
      expect(body).toMatch(/grpc_server_handling_seconds_bucket\{[^}]*grpc_method="GetRoom"/);
      expect(body).toMatch(/livemesh_load_event_loop_ratio/);
    } finally {
      await room.close();
    }
  });
});
