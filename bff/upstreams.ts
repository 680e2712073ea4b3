/**
 * The five services the BFF calls, each behind one `Upstream`: the caller's identity in metadata,
 * a deadline on every call, and a breaker that fails calls fast while the service is failing, so
 * a dead ranking service costs the room screen nothing instead of a timeout per request.
 */
import { Metadata, status as Code } from '@grpc/grpc-js';
import CircuitBreaker from 'opossum';
import { ChatServiceClient } from '../gen/ts/livemesh/chat/v1/chat.js';
import { GiftServiceClient } from '../gen/ts/livemesh/gift/v1/gift.js';
import { LedgerServiceClient } from '../gen/ts/livemesh/ledger/v1/ledger.js';
import { RankingServiceClient } from '../gen/ts/livemesh/ranking/v1/ranking.js';
import { RoomServiceClient } from '../gen/ts/livemesh/room/v1/room.js';
import type { GeneratedClientClass } from '../lb/client.js';
import { call, serviceClient, type RequestOf, type ResponseOf, type UnaryMethod } from '../kit/clients.js';
import { onBehalfOf, type MeshCredentials } from '../kit/credentials.js';
import { GrpcCallError } from '../kit/grpc-errors.js';
import type { Caller } from '../kit/identity.js';
import type { BffConfig } from './config.js';

export interface CallContext {
  /** Who the call is for; calls for no user (anonymous reads, a provider's callback) carry the BFF's own service token. */
  caller?: Caller;
  /** Absolute deadline, ms since the epoch. */
  deadline: number;
}

/**
 * Failures that say nothing about the upstream's health (the caller's own mistakes and refusals)
 * must not open its breaker: a burst of bad gift requests would otherwise black out the catalog.
 * RESOURCE_EXHAUSTED is here too: livemesh services use it for per-user limits (slow mode, chat
 * rate), and one chatty user must not switch chat off for everyone.
 */
const CLIENT_CODES = new Set<Code>([
  Code.RESOURCE_EXHAUSTED,
  Code.INVALID_ARGUMENT,
  Code.NOT_FOUND,
  Code.ALREADY_EXISTS,
  Code.PERMISSION_DENIED,
  Code.UNAUTHENTICATED,
  Code.FAILED_PRECONDITION,
  Code.ABORTED,
  Code.OUT_OF_RANGE,
  Code.CANCELLED,
]);

export interface BreakerSettings {
  errorPercent: number;
  minCalls: number;
  windowMs: number;
  openMs: number;
}

/** The UNAVAILABLE a call gets while its upstream's breaker is open; a gRPC error like any other, so one mapping serves both. */
function breakerOpen(name: string): GrpcCallError {
  const message = `${name} is failing; calls are paused (breaker open)`;
  // Named like any other upstream failure, so the error middleware maps it (503) instead of a bare 500.
  return new GrpcCallError(Code.UNAVAILABLE, message, new Metadata(), { message, upstream: name });
}

/** One service: its client, its breaker, and a typed promise-returning `call`. */
export class Upstream<C extends object> {
  private readonly breaker: CircuitBreaker<[() => Promise<unknown>], unknown>;
  /** Upstream calls made, by method; read by /metrics and by the tests that count single flights. */
  readonly calls = new Map<string, number>();

  readonly client: C;

  constructor(
    readonly name: string,
    Client: GeneratedClientClass<C>,
    target: string,
    private readonly credentials: MeshCredentials,
    settings: BreakerSettings,
    /** Told the outcome of every call (gRPC code name, or BREAKER_OPEN), for metrics. */
    private readonly observe?: (method: string, code: string, seconds: number) => void,
  ) {
    this.client = serviceClient(Client, target, credentials);
    this.breaker = new CircuitBreaker((run: () => Promise<unknown>) => run(), {
      name,
      // Deadlines are ours (per call, inside the request budget), not the breaker's.
      timeout: false,
      errorThresholdPercentage: settings.errorPercent,
      volumeThreshold: settings.minCalls,
      rollingCountTimeout: settings.windowMs,
      rollingCountBuckets: 10,
      resetTimeout: settings.openMs,
      errorFilter: (err: unknown) => GrpcCallError.is(err) && CLIENT_CODES.has(err.code),
    });
  }

  /** Open: calls fail fast. Non-critical sections read this to degrade without trying. */
  get open(): boolean {
    return this.breaker.opened;
  }

  /** Listen for the breaker flipping, for logs and the admin view. */
  onStateChange(listener: (state: 'open' | 'halfOpen' | 'close') => void): void {
    this.breaker.on('open', () => listener('open'));
    this.breaker.on('halfOpen', () => listener('halfOpen'));
    this.breaker.on('close', () => listener('close'));
  }

  call<M extends UnaryMethod<C>>(method: M, req: RequestOf<C, M>, ctx: CallContext): Promise<ResponseOf<C, M>> {
    const metadata = this.identity(ctx.caller);
    const run = () => {
      this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
      return call(this.client, method, req, { metadata, deadline: ctx.deadline });
    };
    const start = performance.now();
    const seconds = () => (performance.now() - start) / 1000;
    return (this.breaker.fire(run) as Promise<ResponseOf<C, M>>).then(
      (res) => {
        this.observe?.(method, 'OK', seconds());
        return res;
      },
      (err: unknown) => {
        if ((err as { code?: unknown }).code === 'EOPENBREAKER') {
          this.observe?.(method, 'BREAKER_OPEN', seconds());
          throw breakerOpen(this.name);
        }
        this.observe?.(method, GrpcCallError.is(err) ? (Code[err.code] ?? String(err.code)) : 'UNKNOWN', seconds());
        // The error middleware names the failing upstream in 5xx bodies.
        if (GrpcCallError.is(err)) err.upstream = this.name;
        throw err;
      },
    );
  }

  /**
   * A signed-in user's identity as a token the BFF signs for this service (and whoever it forwards
   * to on the user's behalf); no user, no metadata: the client adds the BFF's own service token.
   */
  private identity(caller: Caller | undefined): Metadata | undefined {
    return caller ? onBehalfOf({ token: this.credentials.userToken(caller, this.name) }) : undefined;
  }

  close(): void {
    this.breaker.shutdown();
    (this.client as { close?: () => void }).close?.();
  }
}


export interface Upstreams {
  room: Upstream<RoomServiceClient>;
  gift: Upstream<GiftServiceClient>;
  ledger: Upstream<LedgerServiceClient>;
  chat: Upstream<ChatServiceClient>;
  ranking: Upstream<RankingServiceClient>;
}

export function createUpstreams(
  credentials: MeshCredentials,
  config: Pick<BffConfig, 'ROOM_ADDR' | 'GIFT_ADDR' | 'LEDGER_ADDR' | 'CHAT_ADDR' | 'RANKING_ADDR' | 'BREAKER_ERROR_PERCENT' | 'BREAKER_MIN_CALLS' | 'BREAKER_WINDOW_MS' | 'BREAKER_OPEN_MS'>,
  observe?: (upstream: string, method: string, code: string, seconds: number) => void,
): Upstreams {
  const settings: BreakerSettings = {
    errorPercent: config.BREAKER_ERROR_PERCENT,
    minCalls: config.BREAKER_MIN_CALLS,
    windowMs: config.BREAKER_WINDOW_MS,
    openMs: config.BREAKER_OPEN_MS,
  };
  const observer = (name: string) => (observe ? (method: string, code: string, s: number) => observe(name, method, code, s) : undefined);
  return {
    room: new Upstream('room', RoomServiceClient, config.ROOM_ADDR, credentials, settings, observer('room')),
    gift: new Upstream('gift', GiftServiceClient, config.GIFT_ADDR, credentials, settings, observer('gift')),
    ledger: new Upstream('ledger', LedgerServiceClient, config.LEDGER_ADDR, credentials, settings, observer('ledger')),
    chat: new Upstream('chat', ChatServiceClient, config.CHAT_ADDR, credentials, settings, observer('chat')),
    ranking: new Upstream('ranking', RankingServiceClient, config.RANKING_ADDR, credentials, settings, observer('ranking')),
  };
}

export function closeUpstreams(upstreams: Upstreams): void {
  for (const u of Object.values(upstreams) as Array<Upstream<object>>) u.close();
}
