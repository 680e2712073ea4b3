/**
 * bench:lb only. grpc-js 1.14.7's weighted_round_robin, unchanged, behind a thin parent policy
 * (`bench_wrr_predecoded_orca`) that decodes each call's ORCA trailer before WRR sees it.
 *
 * Why: with per-call reports, WRR hands the trailer to orca.ts's createMetricsReader, which calls
 * loadOrcaProto() for every call, and that function never caches (`const loadedOrcaProto = null`):
 * each call re-reads and re-parses orca.proto with proto-loader, about 10 ms of client CPU (the
 * same bug bench:kit found on the server side). Left alone, the benchmark would measure that bug
 * rather than WRR's balancing. createMetricsReader first looks for an already parsed report under
 * the metadata's opaque key `grpc_orca_load_report`; this shim puts one there (decoded with the
 * ts-proto OrcaLoadReport, fields named as proto-loader would name them), so WRR's own code runs
 * exactly as shipped, minus the re-parse. bench:lb also measures the unshimmed cost per call.
 */
import { experimental, type ChannelOptions, type Metadata } from '@grpc/grpc-js';
import { OrcaLoadReport } from '../../gen/ts/xds/data/orca/v3/orca_load_report.js';
import { ORCA_TRAILER_KEY } from '../../lb/load-report.js';

export const WRR_SHIM_POLICY = 'bench_wrr_predecoded_orca';
const PARSED_KEY = 'grpc_orca_load_report';

/** The report in the shape orca.ts's proto-loader gives (keepCase, defaults). */
function predecodeOrca(trailers: Metadata): void {
  const raw = trailers.get(ORCA_TRAILER_KEY)[0];
  if (!(raw instanceof Buffer) || trailers.getOpaque(PARSED_KEY)) return;
  const r = OrcaLoadReport.decode(raw);
  trailers.setOpaque(PARSED_KEY, {
    cpu_utilization: r.cpuUtilization,
    mem_utilization: r.memUtilization,
    rps_fractional: r.rpsFractional,
    eps: r.eps,
    application_utilization: r.applicationUtilization,
    request_cost: r.requestCost,
    utilization: r.utilization,
    named_metrics: r.namedMetrics,
  });
}

class ShimConfig implements experimental.TypedLoadBalancingConfig {
  constructor(readonly child: experimental.TypedLoadBalancingConfig) {}
  getLoadBalancerName(): string {
    return WRR_SHIM_POLICY;
  }
  toJsonObject(): object {
    return { [WRR_SHIM_POLICY]: { weighted_round_robin: this.child.toJsonObject() } };
  }
  static createFromJson(obj: { weighted_round_robin?: object }): ShimConfig {
    return new ShimConfig(experimental.parseLoadBalancingConfig({ weighted_round_robin: obj.weighted_round_robin ?? {} }));
  }
}

class ShimBalancer implements experimental.LoadBalancer {
  private readonly child: experimental.ChildLoadBalancerHandler;

  constructor(helper: experimental.ChannelControlHelper) {
    this.child = new experimental.ChildLoadBalancerHandler(
      experimental.createChildChannelControlHelper(helper, {
        updateState: (state, picker, error) => helper.updateState(state, wrap(picker), error),
      }),
    );
  }
  updateAddressList(endpoints: experimental.StatusOr<experimental.Endpoint[]>, config: experimental.TypedLoadBalancingConfig, options: ChannelOptions, note: string): boolean {
    return config instanceof ShimConfig && this.child.updateAddressList(endpoints, config.child, options, note);
  }
  exitIdle(): void {
    this.child.exitIdle();
  }
  resetBackoff(): void {
    this.child.resetBackoff();
  }
  destroy(): void {
    this.child.destroy();
  }
  getTypeName(): string {
    return WRR_SHIM_POLICY;
  }
}

function wrap(inner: experimental.Picker): experimental.Picker {
  return {
    pick(args) {
      const result = inner.pick(args);
      const ended = result.onCallEnded;
      if (result.pickResultType !== experimental.PickResultType.COMPLETE || !ended) return result;
      return {
        ...result,
        onCallEnded: (code, details, trailers) => {
          predecodeOrca(trailers);
          ended(code, details, trailers);
        },
      };
    },
  };
}

export function registerWrrShim(): void {
  if (!experimental.isLoadBalancerNameRegistered(WRR_SHIM_POLICY)) experimental.registerLoadBalancerType(WRR_SHIM_POLICY, ShimBalancer, ShimConfig);
}
