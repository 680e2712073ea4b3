/**
 * The one way livemesh code makes a gRPC client to another livemesh service (the BFF, and service
 * to service): P2C balancing, a default deadline on every call, and retries for idempotent calls,
 * all through grpc-js's service config so nothing needs wrapping per call.
 *
 *   const rooms = createLbClient(RoomServiceClient, process.env.ROOM_ADDR ?? 'localhost:50051,localhost:50151');
 */
import { credentials as grpcCredentials, type ChannelCredentials, type ClientOptions, type MethodConfig, type ServiceConfig, type ServiceDefinition } from '@grpc/grpc-js';
import { committedRetryInterceptor } from './committed-retry.js';
import type { P2cOptions } from './endpoint-stats.js';
import { P2C_POLICY, registerP2cPolicy } from './policy.js';
import { lbTarget, registerStaticResolver } from './static-resolver.js';

export interface LbClientOptions {
  /** Deadline for calls that set none, in ms. Every call needs one: a hung replica must not hold a caller forever. */
  deadlineMs?: number;
  /**
   * Methods safe to retry on another replica (short names). Default: those named Get*, List* or
   * BatchGet* (livemesh's reads never change state, see DESIGN.md) and the service's KEYED_WRITES.
   * Pass [] to retry nothing.
   */
  idempotent?: string[];
  /** Attempts in total (first + retries) for idempotent methods, at least 2. */
  maxAttempts?: number;
  /** P2C tuning; see P2cOptions. */
  p2c?: Partial<P2cOptions>;
  /** How often to ask the resolver again (DNS targets pick up new pods), ms; 0 disables. */
  reresolveIntervalMs?: number;
  /** Label in metrics and the debug view; defaults to the service's full name. */
  name?: string;
  credentials?: ChannelCredentials;
  /** Extra channel options; they win over the helper's. */
  channelOptions?: Partial<ClientOptions>;
}

const DEFAULT_DEADLINE_MS = 5000;

/** Reads by livemesh convention: they never change state, so a second attempt elsewhere is harmless. */
const READ_METHOD = /^(Get|List|BatchGet)[A-Z]/;

/**
 * Writes whose request must carry an idempotency key: a second attempt with the same key returns
 * the first one's result and moves nothing twice, so retrying one is as harmless as retrying a
 * read. Without this, a replica SIGKILLed mid-call fails every write it was holding, and each
 * caller has to notice and resend; with it, the channel resends on the surviving replica.
 */
const KEYED_WRITES: Readonly<Record<string, readonly string[]>> = {
  'livemesh.gift.v1.GiftService': ['SendGift'],
  'livemesh.ledger.v1.LedgerService': ['TopUp', 'Transfer'],
  'livemesh.room.v1.RoomService': ['CreateRoom'],
};

/** Full service name and short method names of a ts-proto / grpc-js service definition. */
export function describeService(definition: ServiceDefinition): { service: string; methods: string[] } {
  const methods: string[] = [];
  let service = '';
  for (const method of Object.values(definition)) {
    const [, svc = '', name = ''] = method.path.split('/');
    service = svc;
    methods.push(name);
  }
  return { service, methods };
}

function duration(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: Math.round(ms % 1000) * 1e6 };
}

/** Short names of the methods retried on another replica: opts.idempotent, or reads and the service's keyed writes. */
function idempotentMethods(definition: ServiceDefinition, opts: LbClientOptions): string[] {
  const { service, methods } = describeService(definition);
  const keyed = new Set(KEYED_WRITES[service] ?? []);
  return opts.idempotent ?? methods.filter((m) => READ_METHOD.test(m) || keyed.has(m));
}

/**
 * The service config the helper installs: our policy, a default timeout for the whole service,
 * and for idempotent methods (reads and keyed writes) a retry policy on UNAVAILABLE only. DEADLINE_EXCEEDED is not retried
 * (the caller's time is already spent) and neither is RESOURCE_EXHAUSTED (a server shedding load
 * should not receive the same load twice). Retry throttling stops retries from doubling the
 * traffic when everything is failing at once.
 */
export function lbServiceConfig(definition: ServiceDefinition, opts: LbClientOptions = {}): ServiceConfig {
  const { service } = describeService(definition);
  const timeout = duration(opts.deadlineMs ?? DEFAULT_DEADLINE_MS);
  const idempotent = idempotentMethods(definition, opts);
  const p2c: Record<string, unknown> = { name: opts.name ?? service };
  if (opts.reresolveIntervalMs !== undefined) p2c.reresolve_interval_ms = opts.reresolveIntervalMs;
  for (const [key, value] of Object.entries(opts.p2c ?? {})) p2c[key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = value;
  const methodConfig: MethodConfig[] = [{ name: [{ service }], timeout }];
  if (idempotent.length > 0) {
    methodConfig.push({
      name: idempotent.map((method) => ({ service, method })),
      timeout,
      retryPolicy: {
        maxAttempts: opts.maxAttempts ?? 3,
        initialBackoff: '0.01s',
        maxBackoff: '0.1s',
        backoffMultiplier: 2,
        retryableStatusCodes: ['UNAVAILABLE'],
      },
    });
  }
  return {
    loadBalancingConfig: [{ [P2C_POLICY]: p2c }],
    methodConfig,
    retryThrottling: { maxTokens: 100, tokenRatio: 0.1 },
  };
}

/**
 * Client options for a balanced channel. Besides the service config: ignore service configs
 * published in DNS TXT records (ours is the one that applies), let re-resolution happen every few
 * seconds rather than every 30, and cap reconnect backoff at 5 s so a restarted replica is back
 * in seconds rather than minutes. The caller's interceptors run outside committedRetryInterceptor,
 * so its second attempt carries the metadata they added.
 */
function lbClientOptions(definition: ServiceDefinition, opts: LbClientOptions = {}): Partial<ClientOptions> {
  const { service } = describeService(definition);
  const idempotent = idempotentMethods(definition, opts);
  const extra = opts.channelOptions ?? {};
  const interceptors = [...(extra.interceptors ?? [])];
  if (idempotent.length > 0) interceptors.push(committedRetryInterceptor(new Set(idempotent.map((m) => `/${service}/${m}`))));
  return {
    'grpc.service_config': JSON.stringify(lbServiceConfig(definition, opts)),
    'grpc.service_config_disable_resolution': 1,
    'grpc.dns_min_time_between_resolutions_ms': 5000,
    'grpc.initial_reconnect_backoff_ms': 500,
    'grpc.max_reconnect_backoff_ms': 5000,
    'grpc.enable_retries': 1,
    ...extra,
    interceptors,
  };
}

/** A ts-proto generated client class (`RoomServiceClient`), which knows its service definition. */
export interface GeneratedClientClass<C> {
  new (address: string, credentials: ChannelCredentials, options?: Partial<ClientOptions>): C;
  service: ServiceDefinition;
}

/**
 * A client for `spec`: a comma-separated address list (local runs), a single host:port (resolved
 * through DNS, every A record an endpoint: Kubernetes headless services), or any grpc-js target
 * with a scheme.
 */
export function createLbClient<C>(Client: GeneratedClientClass<C>, spec: string, opts: LbClientOptions = {}): C {
  registerLb();
  return new Client(lbTarget(spec), opts.credentials ?? grpcCredentials.createInsecure(), lbClientOptions(Client.service, opts));
}

/** Registers the policy and the `static:` scheme with grpc-js; idempotent. */
export function registerLb(): void {
  registerP2cPolicy();
  registerStaticResolver();
}
