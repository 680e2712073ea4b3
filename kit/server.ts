import { Server, type ServerWritableStream, type ServiceDefinition, type UntypedServiceImplementation, type handleUnaryCall, type ServerUnaryCall, type sendUnaryData, type handleServerStreamingCall } from '@grpc/grpc-js';
import { CallAuthenticator, type AccessTable } from './auth.js';
import { MeshCredentials } from './credentials.js';
import { toStatus } from './grpc-errors.js';
import { setCallerOf } from './handler.js';
import { ConfigError, EXIT_CONFIG, kitConfigShape, parseConfig, resolveKitDefaults, type Shape } from './config.js';
import { HealthRegistry, Serving } from './health.js';
import { faultInterceptor, observeInterceptor } from './interceptors.js';
import { LoadMonitor } from './load.js';
import { CpuStealer } from './noisy-neighbour.js';
import { createLogger, type Logger } from './logger.js';
import { startTracing, tracingOn } from './tracing.js';
import { traceHandlers } from './tracing-grpc.js';
import { KitMetrics, serveMetrics } from './metrics.js';
import { addReflection, DescriptorIndex } from './reflection.js';
import { guardRequestDecoding, rejectUndecodableInterceptor } from './request-decoding.js';
import type { z } from 'zod';

export type KitConfigValues = z.infer<z.ZodObject<typeof kitConfigShape>>;
/** A service's configuration: the kit's settings plus its own. */
export type ServiceConfig<S extends Shape> = KitConfigValues & z.infer<z.ZodObject<S>>;

/** The service name a ts-proto definition serves, read from its first method's path. */
function serviceNameOf(definition: ServiceDefinition): string {
  const first = Object.values(definition)[0];
  if (!first) throw new Error('service definition has no methods');
  return first.path.split('/')[1] ?? '';
}

/**
 * One gRPC server process's plumbing: health, reflection, load reporting, metrics, faults and
 * graceful drain. A service adds its implementations and its resources' close functions, and the
 * host takes care of the order things start and stop in.
 */
export class ServiceHost {
  readonly server: Server;
  readonly health = new HealthRegistry();
  readonly load: LoadMonitor;
  readonly metrics: KitMetrics;
  /** Keys and certificates: who this process is, and how it checks who calls it. */
  readonly credentials: MeshCredentials;
  private readonly auth: CallAuthenticator;
  port = 0;
  metricsPort = 0;
  private readonly services: string[] = [];
  private readonly closers: Array<{ name: string; close: () => Promise<unknown> | void }> = [];
  private readonly streamEnders: Array<() => void> = [];
  private metricsServer: { close(): Promise<void> } | undefined;
  private draining: Promise<void> | undefined;
  private readonly stealer: CpuStealer | undefined;

  constructor(
    readonly name: string,
    readonly config: KitConfigValues,
    readonly log: Logger,
    descriptors: DescriptorIndex = DescriptorIndex.fromFile(),
  ) {
    this.credentials = MeshCredentials.load(name, config);
    this.auth = new CallAuthenticator(this.credentials.verifier);
    this.load = new LoadMonitor(config.LOAD_WINDOW_MS).start();
    this.metrics = new KitMetrics({ service: name, replica: config.REPLICA }, this.load);
    const fault = faultInterceptor({
      latencyMs: config.FAULT_LATENCY_MS,
      cpuMs: config.FAULT_CPU_MS,
      errorRate: config.FAULT_ERROR_RATE,
      methods: config.FAULT_METHODS,
    });
    if (fault) log.warn({ latencyMs: config.FAULT_LATENCY_MS, cpuMs: config.FAULT_CPU_MS, errorRate: config.FAULT_ERROR_RATE, methods: config.FAULT_METHODS }, 'fault injection is ON');
    if (config.FAULT_CPU_FACTOR > 1) {
      this.stealer = new CpuStealer(config.FAULT_CPU_FACTOR).start();
      log.warn({ cpuFactor: config.FAULT_CPU_FACTOR }, 'fault injection is ON: every unit of work costs this many times the CPU');
    }
    const undecodable = rejectUndecodableInterceptor(log);
    this.server = new Server({
      // Order matters: observe wraps faults, so injected failures are counted and carry load too.
      interceptors: fault ? [observeInterceptor(this.load, this.metrics), fault, undecodable] : [observeInterceptor(this.load, this.metrics), undecodable],
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_permit_without_calls': 1,
      ...(config.GRPC_MAX_CONNECTION_AGE_MS > 0 ? { 'grpc.max_connection_age_ms': config.GRPC_MAX_CONNECTION_AGE_MS } : {}),
      ...(config.GRPC_MAX_CONNECTION_AGE_GRACE_MS > 0 ? { 'grpc.max_connection_age_grace_ms': config.GRPC_MAX_CONNECTION_AGE_GRACE_MS } : {}),
    });
    guardRequestDecoding(this.server);
    this.health.addToServer(this.server);
    addReflection(this.server, descriptors, () => [...this.services, 'grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection']);
  }

  /**
   * Registers a service implementation; it reports NOT_SERVING until listen() succeeds. Every
   * call's token is verified before its handler runs, against `access` (which callers each RPC
   * accepts); handlers read the result as `ctx.caller`.
   */
  addService(definition: ServiceDefinition, implementation: UntypedServiceImplementation, access: AccessTable = {}): void {
    const name = serviceNameOf(definition);
    const authenticated = this.authenticated(definition, implementation, this.auth.withAccess(access));
    // Tracing wraps authentication, so a refused call is a span too.
    this.server.addService(definition, tracingOn() ? traceHandlers(definition, authenticated) : authenticated);
    this.services.push(name);
    this.health.set(name, Serving.NOT_SERVING);
  }

  private authenticated(definition: ServiceDefinition, implementation: UntypedServiceImplementation, auth: CallAuthenticator): UntypedServiceImplementation {
    const wrapped: UntypedServiceImplementation = {};
    for (const [key, handler] of Object.entries(implementation)) {
      const method = definition[key];
      if (!method || method.requestStream) {
        wrapped[key] = handler;
        continue;
      }
      const path = method.path;
      const short = path.slice(path.lastIndexOf('/') + 1);
      const verify = (call: { metadata: ServerUnaryCall<unknown, unknown>['metadata'] }, run: () => void, fail: (err: unknown) => void) => {
        let caller;
        try {
          caller = auth.authenticate(call.metadata, short);
        } catch (err) {
          return fail(err);
        }
        if (caller instanceof Promise) {
          caller.then((c) => {
            setCallerOf(call, c);
            run();
          }, fail);
        } else {
          setCallerOf(call, caller);
          run();
        }
      };
      if (method.responseStream) {
        const h = handler as handleServerStreamingCall<unknown, unknown>;
        wrapped[key] = (call: ServerWritableStream<unknown, unknown>) =>
          verify(call, () => h(call), (err) => call.emit('error', toStatus(err, this.log, path)));
      } else {
        const h = handler as handleUnaryCall<unknown, unknown>;
        wrapped[key] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) =>
          verify(call, () => h(call, callback), (err) => callback(toStatus(err, this.log, path)));
      }
    }
    return wrapped;
  }

  /** Something to close after the server has stopped (pools, clients); closed in reverse order, a returned promise awaited. */
  onClose(name: string, close: () => Promise<unknown> | void): void {
    this.closers.push({ name, close });
  }

  /**
   * Something that ends long-lived streams when the server stops accepting calls. Without it a
   * server-streaming RPC would hold the shutdown until DRAIN_TIMEOUT_MS; ended, its clients
   * reconnect to another replica at once.
   */
  onStopAccepting(endStreams: () => void): void {
    this.streamEnders.push(endStreams);
  }

  async listen(): Promise<number> {
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`${this.config.HOST}:${this.config.PORT}`, this.credentials.serverCredentials(), (err, port) => (err ? reject(err) : resolve(port))),
    );
    if (this.config.METRICS_PORT >= 0) {
      const served = await serveMetrics(this.metrics, this.config.HOST, this.config.METRICS_PORT);
      this.metricsServer = served;
      this.metricsPort = served.port;
    }
    this.health.setAll(Serving.SERVING);
    this.log.info({ port: this.port, metricsPort: this.metricsPort, services: this.services, tls: this.credentials.tls }, `${this.name} serving on ${this.config.HOST}:${this.port}`);
    return this.port;
  }

  /**
   * Graceful stop: report NOT_SERVING, keep answering for DRAIN_GRACE_MS so balancers and probes
   * notice, stop accepting, let in-flight calls finish within DRAIN_TIMEOUT_MS (then cancel them),
   * and only then close pools, which in-flight calls may still have needed. Idempotent.
   */
  drain(): Promise<void> {
    this.draining ??= this.doDrain();
    return this.draining;
  }

  private async doDrain(): Promise<void> {
    const started = Date.now();
    this.log.info({ graceMs: this.config.DRAIN_GRACE_MS, timeoutMs: this.config.DRAIN_TIMEOUT_MS }, 'draining');
    this.health.setAll(Serving.NOT_SERVING);
    await sleep(this.config.DRAIN_GRACE_MS);
    this.health.endWatches();
    for (const end of this.streamEnders) end();
    const finished = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), this.config.DRAIN_TIMEOUT_MS);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!finished) {
      this.log.warn('drain deadline passed; cancelling the calls still in flight');
      this.server.forceShutdown();
    }
    for (const { name, close } of [...this.closers].reverse()) {
      try {
        await close();
      } catch (err) {
        this.log.warn({ err, resource: name }, 'error while closing');
      }
    }
    await this.metricsServer?.close();
    this.stealer?.stop();
    this.load.stop();
    this.log.info({ ms: Date.now() - started, clean: finished }, 'drained');
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Loads and validates configuration; on a bad value prints one line naming the variable and exits
 * with EX_CONFIG before anything else starts.
 */
export function loadConfigOrExit<S extends Shape>(shape: S, env: NodeJS.ProcessEnv = process.env): ServiceConfig<S> {
  try {
    return resolveKitDefaults(parseConfig({ ...kitConfigShape, ...shape }, env) as ServiceConfig<S>);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw err;
  }
}

/**
 * Entry point for a service process: config, logger, host, the service's own wiring, listen, and
 * a drain on SIGTERM/SIGINT that ends with exit code 0. A failure during start-up is logged and
 * exits 1 after closing whatever was opened (EX_CONFIG for a ConfigError the wiring throws).
 */
export async function runService<S extends Shape>(opts: {
  name: string;
  configShape: S;
  wire: (host: ServiceHost, config: ServiceConfig<S>) => Promise<void>;
}): Promise<ServiceHost> {
  const config = loadConfigOrExit(opts.configShape);
  // Tracing first: the logger adds trace ids to its lines only if tracing is on by then.
  const tracing = await startTracing(opts.name, config.REPLICA);
  const log = createLogger({ service: opts.name, replica: config.REPLICA, level: config.LOG_LEVEL });
  const host = new ServiceHost(opts.name, config, log);
  // Registered first, so closed last: spans of the drain's own work still go out.
  host.onClose('tracing', () => tracing.shutdown());
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'stop requested');
    host.drain().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'drain failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    await opts.wire(host, config);
    await host.listen();
  } catch (err) {
    log.error({ err }, 'start-up failed');
    await host.drain().catch(() => {});
    // Settings that cannot work (found only once the wiring looked, e.g. a Ledger pointed at the
    // wrong servers): one line on stderr and EX_CONFIG, like a bad value, so a restart is not mistaken for the cure.
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    process.exit(1);
  }
  return host;
}
