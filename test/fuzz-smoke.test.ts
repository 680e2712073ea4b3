import { status as Code } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GetRoomRankingResponse, RankingServiceService, type GetRoomRankingRequest } from '../gen/ts/livemesh/ranking/v1/ranking.js';
import { httpFailure, rpcFailure } from '../scripts/fuzz/classify.js';
import { loadRegistry, rpcTargets, RpcClients } from '../scripts/fuzz/grpc-target.js';
import { routeTargets } from '../scripts/fuzz/http-target.js';
import { runTargets } from '../scripts/fuzz/runner.js';
import { runFuzzSession } from '../scripts/fuzz/session.js';
import { rpcFuzzTarget } from '../scripts/fuzz/targets.js';
import type { Known } from '../scripts/fuzz/values.js';
import { unary } from '../kit/handler.js';
import { createLogger } from '../kit/logger.js';
import { loadConfigOrExit, ServiceHost } from '../kit/server.js';

/**
 * `npm run fuzz` in small: every RPC and every BFF route gets a few dozen random and malformed
 * inputs against the mesh running as processes. The full run (10,000 cases per target) is a
 * script; this keeps the fuzzer itself, and the fixes it led to, from rotting.
 */
describe('fuzz smoke', () => {
  it('every RPC and route: no INTERNAL, UNKNOWN, DATA_LOSS or 5xx, no crashed or unhealthy process', async () => {
    const cases = 20;
    const session = await runFuzzSession({
      seed: `smoke-${Date.now()}`,
      cases,
      concurrency: 6,
      parallel: 6,
      replicas: 1,
      // A slow shared machine may answer 503/504 (an upstream out of budget); the full run counts those.
      tolerateOverload: true,
      seedSize: { viewers: 24, streamers: 4 },
      say: () => undefined,
    });
    const registry = loadRegistry();
    // Every target ran, each with every case.
    expect(session.result.reports.map((r) => r.name).sort()).toEqual([...rpcTargets(registry).map((t) => t.name), ...routeTargets().map((r) => r.name)].sort());
    for (const r of session.result.reports) expect([...r.counts.values()].reduce((a, b) => a + b, 0), r.name).toBe(cases);
    // Some cases reached the success paths, not only the validators.
    const ok = session.result.reports.reduce((n, r) => n + (r.counts.get('OK') ?? 0) + (r.counts.get('200') ?? 0) + (r.counts.get('201') ?? 0), 0);
    expect(ok).toBeGreaterThan(100);
    expect(session.result.crashes).toEqual([]);
    expect(session.unhealthy).toEqual([]);
    expect(session.result.failures, session.text).toEqual([]);
    expect(session.ok).toBe(true);
  }, 180_000);
});

describe('fuzz failure detection', () => {
  let host: ServiceHost;
  let clients: RpcClients;

  beforeAll(async () => {
    const config = loadConfigOrExit({}, { HOST: '127.0.0.1', PORT: '0', METRICS_PORT: '-1', LOG_LEVEL: 'silent' });
    const log = createLogger({ service: 'fuzz-victim', replica: 'r1', level: 'silent' });
    host = new ServiceHost('fuzz-victim', config, log);
    // A handler with a bug: a thrown non-domain error for some inputs, which the kit turns into INTERNAL.
    host.addService(RankingServiceService, {
      getRoomRanking: unary(log, (req: GetRoomRankingRequest) =>
        req.limit > 50 ? Promise.reject(new TypeError('cannot read properties of undefined')) : Promise.resolve(GetRoomRankingResponse.fromPartial({ totalEntries: '1' })),
      ),
    });
    const port = await host.listen();
    clients = new RpcClients(() => [`127.0.0.1:${port}`]);
  });

  afterAll(async () => {
    clients?.close();
    await host?.drain();
  });

  it('reports a handler that answers INTERNAL as failures, each with a reproducer naming the method and the bytes', async () => {
    const registry = loadRegistry();
    const target = rpcTargets(registry).find((t) => t.name === 'livemesh.ranking.v1.RankingService/GetRoomRanking');
    if (!target) throw new Error('GetRoomRanking is not in the descriptor set');
    const known: Known = { liveRoomIds: ['11'], idleRoomIds: ['12'], giftIds: ['21'], giftGroupIds: ['31'], viewers: ['1001'], streamers: ['2001'], admins: ['1'], orderIds: ['41'], transferIds: ['t1'], fieldNames: ['room_id'] };
    const result = await runTargets([rpcFuzzTarget(target, clients, registry, known)], { seed: 'victim', cases: 200, concurrency: 4 });
    const [report] = result.reports;
    expect(report?.counts.get('INTERNAL')).toBeGreaterThan(0);
    expect(report?.failures).toBe(report?.counts.get('INTERNAL'));
    expect(result.failures[0]?.why).toMatch(/^INTERNAL: internal error/);
    expect(result.failures[0]?.reproducer).toMatch(/^\/livemesh\.ranking\.v1\.RankingService\/GetRoomRanking \(/);
    expect(result.failures[0]?.reproducer).toMatch(/base64: [A-Za-z0-9+/=]*/);
  });

  it('classifies outcomes: INTERNAL, UNKNOWN, DATA_LOSS, undecodable responses and 5xx fail; refusals do not', () => {
    const rpc = (code: Code, extra = {}) => rpcFailure({ code, details: 'x', reason: undefined, messages: 0, ...extra });
    expect(rpc(Code.INTERNAL)).toBeDefined();
    expect(rpc(Code.UNKNOWN)).toBeDefined();
    expect(rpc(Code.DATA_LOSS)).toBeDefined();
    expect(rpc(Code.OK, { badResponse: 'response does not decode' })).toBeDefined();
    for (const fine of [Code.OK, Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.PERMISSION_DENIED, Code.UNAVAILABLE, Code.RESOURCE_EXHAUSTED, Code.DEADLINE_EXCEEDED]) expect(rpc(fine)).toBeUndefined();

    const json = (status: number) => ({ status, contentType: 'application/json; charset=utf-8', body: JSON.stringify({ error: { code: 'X', message: 'y' } }) });
    expect(httpFailure(json(500))).toBeDefined();
    expect(httpFailure(json(502))).toBeDefined();
    expect(httpFailure(json(503))).toBeDefined();
    expect(httpFailure(json(503), { tolerateOverload: true })).toBeUndefined();
    expect(httpFailure({ status: 500, contentType: 'text/html', body: '<h1>oops</h1>' }, { tolerateOverload: true })).toBeDefined();
    expect(httpFailure(json(400))).toBeUndefined();
    expect(httpFailure({ status: 400, contentType: 'text/html', body: 'Bad Request' })).toBeDefined();
    expect(httpFailure({ status: 0, contentType: '', body: '', error: 'ECONNRESET' })).toBeDefined();
    expect(httpFailure({ status: 0, contentType: '', body: '', error: 'ECONNRESET' }, { mayReset: true })).toBeUndefined();
  });
});
