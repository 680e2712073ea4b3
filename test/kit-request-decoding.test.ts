import { Client, credentials, Metadata, status as Code, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GetRoomRankingRequest, GetRoomRankingResponse, RankingServiceService } from '../gen/ts/livemesh/ranking/v1/ranking.js';
import { errorInfoOf, toStatus } from '../kit/grpc-errors.js';
import { unary } from '../kit/handler.js';
import { createLogger } from '../kit/logger.js';
import { loadConfigOrExit, ServiceHost } from '../kit/server.js';

/**
 * Found by `npm run fuzz`: request bytes that do not decode as the method's message made grpc-js
 * answer INTERNAL ("Error deserializing request") on every service. They are the caller's
 * mistake: INVALID_ARGUMENT naming `request`, with ErrorInfo, and the handler never runs.
 */
let host: ServiceHost;
let client: Client;
let handled = 0;

beforeAll(async () => {
  const config = loadConfigOrExit({}, { HOST: '127.0.0.1', PORT: '0', METRICS_PORT: '-1', LOG_LEVEL: 'silent' });
  const log = createLogger({ service: 'decode-test', replica: 'r1', level: 'silent' });
  host = new ServiceHost('decode-test', config, log);
  host.addService(RankingServiceService, {
    getRoomRanking: unary(log, (req: GetRoomRankingRequest) => {
      handled++;
      return Promise.resolve(GetRoomRankingResponse.fromPartial({ totalEntries: req.roomId }));
    }),
  });
  const port = await host.listen();
  client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await host?.drain();
});

const raw = (path: string, bytes: Buffer) =>
  new Promise<{ err: ServiceError | null; res: Buffer | undefined }>((resolve) => {
    client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, bytes, new Metadata(), { deadline: Date.now() + 5000 }, (err, res) => resolve({ err, res }));
  });

describe('request bytes that do not decode', () => {
  // A length prefix claiming more bytes than follow, and a bare wire type 7 (no such type).
  it.each([
    ['truncated length', Buffer.from([0x0a, 0xff, 0xff, 0x03, 0x01])],
    ['invalid wire type', Buffer.from([0x0f, 0x01])],
  ])('%s: INVALID_ARGUMENT naming request, and the handler does not run', async (_label, bytes) => {
    const before = handled;
    const { err } = await raw('/livemesh.ranking.v1.RankingService/GetRoomRanking', bytes);
    expect(err?.code).toBe(Code.INVALID_ARGUMENT);
    expect(err?.details).toMatch(/^request: /);
    expect(errorInfoOf(err?.metadata)).toEqual({ reason: 'FIELD_INVALID', domain: 'livemesh', metadata: { field: 'request' } });
    expect(handled).toBe(before);
  });

  it('health and reflection, registered by the kit, refuse them the same way', async () => {
    const { err } = await raw('/grpc.health.v1.Health/Check', Buffer.from([0x0a, 0xff, 0xff, 0x03]));
    expect(err?.code).toBe(Code.INVALID_ARGUMENT);
  });

  it('well-formed requests still reach the handler', async () => {
    const { err, res } = await raw('/livemesh.ranking.v1.RankingService/GetRoomRanking', Buffer.from(GetRoomRankingRequest.encode(GetRoomRankingRequest.fromPartial({ roomId: '42' })).finish()));
    expect(err).toBeNull();
    expect(GetRoomRankingResponse.decode(res as Buffer).totalEntries).toBe('42');
  });
});

/**
 * Found by `npm run fuzz` (concurrent UpsertGiftGroup calls moving the default flag): a
 * transaction InnoDB chose as a deadlock victim was INTERNAL. Nothing was written, so it is
 * UNAVAILABLE / DEPENDENCY_UNAVAILABLE like a lock wait timeout: retry.
 */
describe('a deadlock victim', () => {
  it('is UNAVAILABLE with DEPENDENCY_UNAVAILABLE, not INTERNAL', () => {
    const log = createLogger({ service: 'deadlock-test', replica: 'r1', level: 'silent' });
    const err = Object.assign(new Error('Deadlock found when trying to get lock; try restarting transaction'), { code: 'ER_LOCK_DEADLOCK', errno: 1213 });
    const status = toStatus(err, log, '/livemesh.gift.v1.GiftService/UpsertGiftGroup');
    expect(status.code).toBe(Code.UNAVAILABLE);
    expect(errorInfoOf(status.metadata)?.reason).toBe('DEPENDENCY_UNAVAILABLE');
  });
});
