import { Metadata, ServerInterceptingCall, status as Code, type ServerInterceptor } from '@grpc/grpc-js';
import { statusFor } from './grpc-errors.js';
import { LOAD_METADATA_KEY, ORCA_TRAILER_KEY, type LoadMonitor } from './load.js';
import type { KitMetrics } from './metrics.js';

/** Splits "/pkg.Service/Method" into its two parts. */
function splitPath(path: string): [service: string, method: string] {
  const [, service = '', method = ''] = path.split('/');
  return [service, method];
}

/**
 * Codes that count as the server's failures in the ORCA report's `eps` (weighted_round_robin
 * penalizes them); business outcomes such as NOT_FOUND or INVALID_ARGUMENT do not.
 */
const SERVER_FAILURE_CODES: ReadonlySet<Code> = new Set([Code.UNAVAILABLE, Code.RESOURCE_EXHAUSTED, Code.DEADLINE_EXCEEDED, Code.INTERNAL, Code.UNKNOWN, Code.DATA_LOSS]);

/**
 * Writes the load report onto every response and records call metrics.
 *
 * Load goes out twice: the ASCII `lm-load` key (headers and trailers) that lb/'s P2C picker reads,
 * and ORCA's `endpoint-load-metrics-bin` trailer, which grpc-js's weighted_round_robin and other
 * gRPC stacks understand. Both values are formatted once per load sample, not per call.
 */
export function observeInterceptor(load: LoadMonitor, metrics: KitMetrics): ServerInterceptor {
  return (method, call) => {
    const [service, name] = splitPath(method.path);
    const started = process.hrtime.bigint();
    let recorded = false;
    const record = (code: Code) => {
      if (recorded) return;
      recorded = true;
      load.countCall(SERVER_FAILURE_CODES.has(code));
      metrics.observeCall(service, name, Code[code] ?? String(code), Number(process.hrtime.bigint() - started) / 1e9);
    };
    return new ServerInterceptingCall(call, {
      start: (next) => next({ onCancel: () => record(Code.CANCELLED) }),
      sendMetadata: (md, next) => {
        md.set(LOAD_METADATA_KEY, load.header);
        next(md);
      },
      sendStatus: (status, next) => {
        const md = status.metadata ? status.metadata.clone() : new Metadata();
        md.set(LOAD_METADATA_KEY, load.header);
        md.set(ORCA_TRAILER_KEY, load.orcaTrailer);
        record(status.code);
        next({ ...status, metadata: md });
      },
    });
  };
}

export interface FaultConfig {
  latencyMs: number;
  cpuMs: number;
  errorRate: number;
  /** Short method names to affect; empty means all. */
  methods: string[];
}

/** Services faults never touch: probes and debugging must keep working while a replica is "sick". */
const INFRA_SERVICES = new Set(['grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection']);

function faultsEnabled(cfg: FaultConfig): boolean {
  return cfg.latencyMs > 0 || cfg.cpuMs > 0 || cfg.errorRate > 0;
}

/** Spins the CPU for `ms`: a replica made expensive the way a noisy neighbour would make it. */
export function burnCpu(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy by design
  }
}

/**
 * Fault injection for benchmarks and chaos tests: added latency, CPU burned per call, and a rate
 * of UNAVAILABLE failures (reason FAULT_INJECTED). Returns undefined when nothing is configured, so
 * production servers do not even carry the interceptor.
 *
 * Faults act when the request metadata arrives, before the handler runs: an injected error means
 * the handler never sees the call, exactly like a replica that fails in front of the application.
 */
export function faultInterceptor(cfg: FaultConfig, random: () => number = Math.random): ServerInterceptor | undefined {
  if (!faultsEnabled(cfg)) return undefined;
  const only = new Set(cfg.methods);
  return (method, call) => {
    const [service, name] = splitPath(method.path);
    if (INFRA_SERVICES.has(service) || (only.size > 0 && !only.has(name))) return new ServerInterceptingCall(call);
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (md, proceed) => {
            const act = () => {
              if (cfg.cpuMs > 0) burnCpu(cfg.cpuMs);
              if (cfg.errorRate > 0 && random() < cfg.errorRate) {
                call.sendStatus(statusFor(Code.UNAVAILABLE, 'FAULT_INJECTED', `fault injected on ${name}`));
                return;
              }
              proceed(md);
            };
            if (cfg.latencyMs > 0) setTimeout(act, cfg.latencyMs);
            else act();
          },
        }),
    });
  };
}
