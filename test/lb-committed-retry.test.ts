import { Metadata, Server, ServerCredentials, status as Status, type sendUnaryData, type ServerUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GetRoomResponse, RoomServiceClient, RoomServiceService } from '../gen/ts/livemesh/room/v1/room.js';
import { createLbClient } from '../lb/client.js';
import { formatLoad, LOAD_METADATA_KEY } from '../lb/load-report.js';
import { call } from './support/room.js';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.js';

/**
 * A replica that dies between sending its response headers and its trailers: the call is
 * committed in grpc-js, whose retry policy no longer applies. Replica A answers only with headers
 * and is reached through a TCP proxy the test cuts at that moment; replica B answers normally.
 */
let proxy: TcpProxy;
const servers: Server[] = [];
let bPort = 0;
/** Resolves on A's next call, once its headers are on the wire. */
let headersSent: () => void = () => undefined;
const aCalls: string[] = [];

async function serve(handler: (call: ServerUnaryCall<unknown, unknown>, done: sendUnaryData<unknown>) => void): Promise<number> {
  const server = new Server();
  server.addService(RoomServiceService, { getRoom: handler, stopLive: handler });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  servers.push(server);
  return port;
}

beforeAll(async () => {
  const aPort = await serve((call) => {
    aCalls.push(call.getPath());
    call.sendMetadata(new Metadata());
    setTimeout(() => headersSent(), 50);
  });
  bPort = await serve((call, done) => {
    const trailers = new Metadata();
    trailers.set(LOAD_METADATA_KEY, formatLoad({ cpu: 0.1, elu: 0.1 }));
    done(null, GetRoomResponse.fromPartial({ room: { roomId: '1', title: 'served by B' } }), trailers);
  });
  proxy = await startTcpProxy('127.0.0.1', aPort);
});

afterAll(async () => {
  for (const s of servers) s.forceShutdown();
  await proxy.cut();
});

/** Calls `send` until one lands on A, cuts A's connection once its headers are out, and returns that call's outcome. */
async function callLandingOnA<T>(send: () => Promise<T>): Promise<{ value?: T; error?: ServiceError }> {
  for (let i = 0; i < 200; i++) {
    const onA = new Promise<'a'>((resolve) => (headersSent = () => resolve('a')));
    const pending = send().then(
      (value) => ({ value }),
      (error: ServiceError) => ({ error }),
    );
    if ((await Promise.race([pending, onA])) !== 'a') continue;
    await proxy.cut();
    const outcome = await pending;
    await proxy.resume();
    return outcome;
  }
  throw new Error('no call reached replica A in 200 tries');
}

describe('a call whose replica drops the connection after sending headers', () => {
  it('is an idempotent read: answered by another replica, the caller sees no failure', async () => {
    const client = createLbClient(RoomServiceClient, `127.0.0.1:${proxy.port},127.0.0.1:${bPort}`, { name: 'committed-retry-read', deadlineMs: 5000 });
    try {
      const before = aCalls.length;
      const outcome = await callLandingOnA(() => call(client.getRoom, client, { roomId: '1', readMask: undefined }));
      expect(aCalls.length).toBe(before + 1);
      expect(outcome.error?.message).toBeUndefined();
      expect(outcome.value?.room?.title).toBe('served by B');
    } finally {
      client.close();
    }
  });

  it('is a write with no idempotency key: not sent again, the caller gets UNAVAILABLE', async () => {
    const client = createLbClient(RoomServiceClient, `127.0.0.1:${proxy.port},127.0.0.1:${bPort}`, { name: 'committed-retry-write', deadlineMs: 5000 });
    try {
      const before = aCalls.filter((p) => p.endsWith('/StopLive')).length;
      const outcome = await callLandingOnA(() => call(client.stopLive, client, { roomId: '1' }));
      expect(outcome.error?.code).toBe(Status.UNAVAILABLE);
      expect(aCalls.filter((p) => p.endsWith('/StopLive')).length).toBe(before + 1);
    } finally {
      client.close();
    }
  });
});
