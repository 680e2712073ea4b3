import { Metadata, type CallOptions, type ClientOptions, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import { createLbClient, describeService, type GeneratedClientClass } from '../lb/client.js';
import { audienceOf } from './auth.js';
import type { MeshCredentials } from './credentials.js';
import { GrpcCallError } from './grpc-errors.js';
import { tracingOn } from './tracing.js';
import { traceClientInterceptor } from './tracing-grpc.js';

/**
 * The one place a service makes a client for another livemesh service: lb/'s P2C balancing over
 * every replica `target` names (a comma-separated list, as `npm start` passes, or a DNS name), a
 * default deadline, retries of reads on another replica, this process's service token on every
 * call that carries no user's token, and mutual TLS when the process has certificates.
 */
export function serviceClient<C>(Ctor: GeneratedClientClass<C>, target: string, credentials: MeshCredentials): C {
  const service = audienceOf(describeService(Ctor.service).service);
  return createLbClient(Ctor, target, {
    credentials: credentials.channelCredentials(),
    channelOptions: withTracing({ 'grpc.keepalive_time_ms': 30_000, ...credentials.clientOptions(service) }),
  });
}

/** Adds the tracing interceptor (outermost, so its span covers the others) when tracing is on. */
function withTracing(options: Partial<ClientOptions>): Partial<ClientOptions> {
  return tracingOn() ? { ...options, interceptors: [traceClientInterceptor, ...(options.interceptors ?? [])] } : options;
}

type Unary<Req, Res> = (req: Req, md: Metadata, options: Partial<CallOptions>, cb: (err: ServiceError | null, res: Res) => void) => ClientUnaryCall;
/** The unary method names of a generated client (its last overload takes metadata, options and a callback). */
export type UnaryMethod<C> = { [K in keyof C]: C[K] extends Unary<never, unknown> ? K : never }[keyof C] & string;
export type RequestOf<C, M extends keyof C> = C[M] extends Unary<infer Q, unknown> ? Q : never;
export type ResponseOf<C, M extends keyof C> = C[M] extends Unary<never, infer S> ? S : never;

export interface CallOpts {
  /**
   * Built with kit/credentials.ts `onBehalfOf(caller)` for a call made for a user; without it the
   * call carries no token and the channel adds this process's own service token.
   */
  metadata?: Metadata;
  /** Deadline from now, ms. */
  deadlineMs?: number;
  /** Absolute deadline, ms since the epoch, for callers spending one budget over several calls (the BFF). */
  deadline?: number;
}

/**
 * The one way to make a unary call: a promise instead of grpc-js's callback, and every failure
 * normalised by GrpcCallError.from, so callers branch on one error type. With no deadline given,
 * the channel's default (lb/'s service config) applies.
 */
export function call<C extends object, M extends UnaryMethod<C>>(client: C, method: M, req: RequestOf<C, M>, opts: CallOpts = {}): Promise<ResponseOf<C, M>> {
  const fn = (client as Record<string, unknown>)[method] as Unary<RequestOf<C, M>, ResponseOf<C, M>>;
  const deadline = opts.deadline ?? (opts.deadlineMs === undefined ? undefined : Date.now() + opts.deadlineMs);
  return new Promise<ResponseOf<C, M>>((resolve, reject) => {
    try {
      fn.call(client, req, opts.metadata ?? new Metadata(), deadline === undefined ? {} : { deadline }, (err, res) => (err ? reject(GrpcCallError.from(err)) : resolve(res)));
    } catch (err) {
      reject(GrpcCallError.from(err));
    }
  });
}

/**
 * A generated client's unary methods as promise-returning functions, each through `call`. This is
 * what a service's `client.ts` hands to other services: they never see callbacks, grpc-js
 * metadata plumbing or how the channel is balanced.
 */
export type PromiseClient<C> = {
  readonly [M in UnaryMethod<C>]: (req: RequestOf<C, M>, opts?: CallOpts) => Promise<ResponseOf<C, M>>;
} & {
  /** The generated client underneath, for streaming calls. */
  readonly raw: C;
  close(): void;
};

/** A typed promise client over lb/ for one service (see serviceClient for what the channel does). */
export function promiseClient<C extends object>(Ctor: GeneratedClientClass<C>, target: string, credentials: MeshCredentials): PromiseClient<C> {
  const raw = serviceClient(Ctor, target, credentials);
  const out: Record<string, unknown> = { raw, close: () => (raw as { close?: () => void }).close?.() };
  for (const [name, def] of Object.entries(Ctor.service)) {
    if (def.requestStream || def.responseStream) continue;
    out[name] = (req: unknown, opts?: CallOpts) => call(raw, name as UnaryMethod<C>, req as RequestOf<C, UnaryMethod<C>>, opts);
  }
  return out as PromiseClient<C>;
}
