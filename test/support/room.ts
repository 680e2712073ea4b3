import { spawn, type ChildProcess } from 'node:child_process';
import { Metadata, status as Code, type CallOptions, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll } from 'vitest';
import * as roomPb from '../../gen/ts/livemesh/room/v1/room.js';
import { RoomServiceClient } from '../../gen/ts/livemesh/room/v1/room.js';
import { badRequestOf, errorInfoOf } from '../../kit/grpc-errors.js';
import { fromRoot } from '../../kit/paths.js';
import { roomConfigShape, wireRoom } from '../../services/room/service.js';
import { bearer, devUserToken } from '../../scripts/credentials.js';
import { isolate, type Isolation } from '../../scripts/isolation.js';

import { startInProcess } from './service.js';

export { LogCapture } from './log-capture.js';

/** An in-process Room server on a free port, wired exactly as the real process wires it. */
export const startRoom = (iso: Isolation, env: Record<string, string> = {}) => startInProcess('room', roomConfigShape, wireRoom, RoomServiceClient, iso, { METRICS_PORT: '0', ...env });

/**
 * Metadata carrying a caller's signed token: for viewers and streamers the token the BFF would
 * mint, for admins an operator's (development keys, every service in the audience).
 */
export function as(userId: string, role: 'viewer' | 'streamer' | 'admin', name = ''): Metadata {
  return bearer(devUserToken(userId, role, name));
}

/** Promisifies a grpc-js unary method, keeping the error object (code, details, metadata). */
export function call<Req, Res>(
  fn: (req: Req, md: Metadata, options: Partial<CallOptions>, cb: (err: ServiceError | null, res: Res) => void) => ClientUnaryCall,
  self: unknown,
  req: Req,
  md: Metadata = new Metadata(),
  options: Partial<CallOptions> = {},
): Promise<Res> {
  return new Promise((resolve, reject) => fn.call(self, req, md, options, (err, res) => (err ? reject(err) : resolve(res))));
}

/** Spawns the built Room process (dist/), for tests about signals, exit codes and config. */
export function spawnRoom(iso: Isolation, env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, [fromRoot('dist', 'services', 'room', 'main.js')], {
    env: { ...process.env, HOST: '127.0.0.1', LOG_LEVEL: 'info', ...iso.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export type RoomServer = Awaited<ReturnType<typeof startRoom>>;

/**
 * One Room server for a whole test file, on its own isolation, started before the tests and torn
 * down (server drained, database and keys dropped) after them. Read `.current` inside tests.
 */
export function useRoomServer(name: string, env: Record<string, string> = {}): { iso: Isolation; current: RoomServer } {
  const fixture = { iso: isolate(name), current: undefined as unknown as RoomServer };
  beforeAll(async () => {
    fixture.current = await startRoom(fixture.iso, env);
  });
  afterAll(async () => {
    await fixture.current?.close();
    await fixture.iso.cleanup();
  });
  return fixture;
}

type Unary<Req, Res> = (req: Req, md: Metadata, options: Partial<CallOptions>, cb: (err: ServiceError | null, res: Res) => void) => ClientUnaryCall;
type Partialish<T> = T extends Date ? T : T extends Array<infer U> ? Array<Partialish<U>> : T extends object ? { [K in keyof T]?: Partialish<T[K]> } : T;
export type Promised<C> = {
  [K in keyof C as C[K] extends Unary<never, unknown> ? K : never]: C[K] extends Unary<infer Q, infer S> ? (req: Partialish<Q>, md?: Metadata) => Promise<S> : never;
};

/**
 * Every unary RPC of a generated client as `api.getRoom({ roomId }, as('7', 'viewer'))`, returning
 * a promise. Requests are deep-partial (through the generated `fromPartial` of `<Method>Request`
 * in `messages`, the client's generated module): unset fields take their proto defaults, as on the wire.
 */
export function unaryApi<C extends object>(client: C, messages: object): Promised<C> {
  return new Proxy({} as Promised<C>, {
    get: (_target, name: string) => {
      const fn = (client as unknown as Record<string, Unary<unknown, unknown>>)[name];
      if (typeof fn !== 'function') throw new Error(`client has no method ${name}`);
      const type = (messages as Record<string, { fromPartial(p: unknown): unknown } | undefined>)[`${name[0]?.toUpperCase()}${name.slice(1)}Request`];
      if (!type) throw new Error(`no request message for ${name}`);
      return (req: unknown, md: Metadata = new Metadata()) => call(fn, client, type.fromPartial(req), md);
    },
  });
}

export const roomApi = (client: RoomServiceClient) => unaryApi(client, roomPb);

/** The gRPC failure a promise ends with, reduced to what a client acts on; throws if it succeeded. */
export async function failure(p: Promise<unknown>): Promise<{ code: string; reason: string | undefined; fields: string[]; message: string }> {
  const err = await p.then(
    (res) => {
      throw new Error(`expected a gRPC error, got ${JSON.stringify(res)}`);
    },
    (e: unknown) => e as ServiceError,
  );
  if (typeof err.code !== 'number') throw err;
  return {
    code: Code[err.code] ?? String(err.code),
    reason: errorInfoOf(err.metadata)?.reason,
    fields: badRequestOf(err.metadata)?.fieldViolations.map((v) => v.field) ?? [],
    message: err.details,
  };
}
