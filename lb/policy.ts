/**
 * The `livemesh_p2c` load-balancing policy for grpc-js: the glue between grpc-js's experimental
 * load-balancer API (pinned: @grpc/grpc-js 1.14.7, the API changes between minor releases) and
 * the transport-free P2C chooser in p2c.ts.
 *
 * Shape follows grpc-js's own round_robin / weighted_round_robin: one LeafLoadBalancer (a
 * pick_first over one endpoint) per resolved endpoint, and a new Picker pushed to the channel
 * whenever the set of READY endpoints changes. What the picker adds is per-call bookkeeping:
 * `onCallStarted` / `onCallEnded` on the pick result, the latter receiving the status code and the
 * trailers, from which the server's `lm-load` report is read.
 */
import { connectivityState as ConnectivityState, experimental, status as Status, type ChannelOptions, type Metadata } from '@grpc/grpc-js';
import { endedByConnection, LOAD_METADATA_KEY, parseLoad } from './load-report.js';
import { DEFAULT_P2C_OPTIONS, type EndpointStats, type P2cOptions } from './endpoint-stats.js';
import { P2cChooser, systemSources, type Sources } from './p2c.js';
import { balancers, type BalancerView, type Observable } from './registry.js';

type LoadBalancer = experimental.LoadBalancer;
type ChannelControlHelper = experimental.ChannelControlHelper;
type Endpoint = experimental.Endpoint;
type Picker = experimental.Picker;
type PickArgs = experimental.PickArgs;
type PickResult = experimental.PickResult;
type TypedLoadBalancingConfig = experimental.TypedLoadBalancingConfig;
const {
  LeafLoadBalancer,
  PickResultType,
  QueuePicker,
  UnavailablePicker,
  createChildChannelControlHelper,
  endpointToString,
  subchannelAddressToString,
  registerLoadBalancerType,
  isLoadBalancerNameRegistered,
} = experimental;

/** The name used in service configs: `{"loadBalancingConfig": [{"livemesh_p2c": {}}]}`. */
export const P2C_POLICY = 'livemesh_p2c';

/** Default period of asking the resolver again, so DNS targets (headless services) pick up new pods. */
const DEFAULT_RERESOLVE_MS = 30_000;

/** Overload and transport failures: the only outcomes that count against an endpoint's success rate. */
const FAILURE_CODES: ReadonlySet<Status> = new Set([Status.UNAVAILABLE, Status.RESOURCE_EXHAUSTED, Status.DEADLINE_EXCEEDED]);
/** Failures that come back fast: their latency says nothing about how busy the endpoint is. */
const NO_LATENCY_CODES: ReadonlySet<Status> = new Set([Status.UNAVAILABLE, Status.RESOURCE_EXHAUSTED, Status.CANCELLED]);

/** JSON keys of the policy config and the option each sets (all numbers). */
const CONFIG_KEYS = {
  latency_tau_ms: 'latencyTauMs',
  success_alpha: 'successAlpha',
  success_recovery_ms: 'successRecoveryMs',
  load_tau_ms: 'loadTauMs',
  force_pick_after_ms: 'forcePickAfterMs',
  max_load: 'maxLoad',
  min_success: 'minSuccess',
  slow_start_ms: 'slowStartMs',
  scan_interval_ms: 'scanIntervalMs',
  transport_eject_ms: 'transportEjectMs',
} as const satisfies Record<string, keyof P2cOptions>;

/** The parsed `livemesh_p2c` config. Unknown keys are ignored, wrong types are an error. */
export class P2cConfig implements TypedLoadBalancingConfig {
  constructor(
    readonly options: Partial<P2cOptions>,
    readonly name: string,
    readonly reresolveMs: number,
  ) {}

  getLoadBalancerName(): string {
    return P2C_POLICY;
  }

  toJsonObject(): object {
    const inner: Record<string, unknown> = { name: this.name, reresolve_interval_ms: this.reresolveMs };
    for (const [json, key] of Object.entries(CONFIG_KEYS)) if (this.options[key] !== undefined) inner[json] = this.options[key];
    return { [P2C_POLICY]: inner };
  }

  static createFromJson(obj: unknown): P2cConfig {
    const raw = (typeof obj === 'object' && obj !== null ? obj : {}) as Record<string, unknown>;
    const options: Partial<P2cOptions> = {};
    for (const [json, key] of Object.entries(CONFIG_KEYS)) {
      const v = raw[json];
      if (v === undefined) continue;
      const fraction = key === 'maxLoad' || key === 'minSuccess' || key === 'successAlpha';
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (fraction && v > 1) || (key === 'successAlpha' && v === 0)) {
        throw new Error(`${P2C_POLICY} config: ${json} must be ${fraction ? 'a number in (0, 1]' : 'a non-negative number'} (got ${JSON.stringify(v)})`);
      }
      options[key] = v;
    }
    const name = raw.name ?? '';
    if (typeof name !== 'string') throw new Error(`${P2C_POLICY} config: name must be a string`);
    const reresolve = raw.reresolve_interval_ms ?? DEFAULT_RERESOLVE_MS;
    if (typeof reresolve !== 'number' || !(reresolve >= 0)) throw new Error(`${P2C_POLICY} config: reresolve_interval_ms must be a non-negative number (0 disables)`);
    return new P2cConfig(options, name, reresolve);
  }
}

/** What the picker needs of one READY endpoint. */
export interface PickerEntry {
  stats: EndpointStats;
  /** The endpoint's own (pick_first) picker, which hands out its connection. */
  picker: Picker;
  /** The last `lm-load` string and its value: a server's report changes once per window, not per call. */
  loadCache: { raw: string | undefined; value: number | undefined };
}

interface Child {
  /** host:port, for people (the map key is grpc-js's endpoint string). */
  address: string;
  leaf: InstanceType<typeof LeafLoadBalancer>;
  stats: EndpointStats;
  /** State last seen, to notice READY being entered or left. */
  state: ConnectivityState;
  loadCache: PickerEntry['loadCache'];
}

/**
 * One balancer per channel. Keeps a child per endpoint across resolver updates (so an endpoint
 * that stays keeps its numbers and its connection), destroys children whose endpoint left (their
 * connection closes gracefully: calls in flight finish), and asks the resolver again every
 * `reresolve_interval_ms` and whenever a READY endpoint drops.
 */
class P2cLoadBalancer implements LoadBalancer, Observable {
  private readonly children = new Map<string, Child>();
  private chooser: P2cChooser | undefined;
  private config: P2cConfig | undefined;
  private state = ConnectivityState.IDLE;
  private updatesPaused = false;
  private lastError: string | null = null;
  private reresolveTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly helper: ChannelControlHelper,
    private readonly sources: Sources = systemSources,
  ) {
    balancers.add(this);
  }

  updateAddressList(endpoints: experimental.StatusOr<Endpoint[]>, lbConfig: TypedLoadBalancingConfig, options: ChannelOptions, resolutionNote: string): boolean {
    if (!(lbConfig instanceof P2cConfig)) return false;
    this.applyConfig(lbConfig);
    if (!endpoints.ok) {
      // Keep serving from the endpoints we have; fail calls only if there are none.
      if (this.children.size === 0) this.updateState(ConnectivityState.TRANSIENT_FAILURE, new UnavailablePicker(endpoints.error), endpoints.error.details);
      return true;
    }
    if (endpoints.value.length === 0) {
      const message = `${P2C_POLICY}: the resolver returned no addresses${resolutionNote ? ` (${resolutionNote})` : ''}`;
      this.updateState(ConnectivityState.TRANSIENT_FAILURE, new UnavailablePicker({ details: message }), message);
      return false;
    }
    const seen = new Set<string>();
    this.updatesPaused = true;
    for (const endpoint of endpoints.value) {
      const key = endpointToString(endpoint);
      seen.add(key);
      const existing = this.children.get(key);
      if (existing) existing.leaf.updateEndpoint(endpoint, options);
      else this.children.set(key, this.createChild(endpoint.addresses.map(subchannelAddressToString).join(','), endpoint, options, resolutionNote));
    }
    for (const [key, child] of this.children) {
      if (seen.has(key)) child.leaf.startConnecting();
      else {
        child.leaf.destroy();
        this.children.delete(key);
      }
    }
    this.updatesPaused = false;
    this.calculateAndUpdateState();
    return true;
  }

  private applyConfig(config: P2cConfig): void {
    const options = { ...DEFAULT_P2C_OPTIONS, ...config.options };
    if (!this.chooser) this.chooser = new P2cChooser(options, this.sources);
    // Stats hold the chooser's options object, so updating it in place retunes every endpoint.
    else Object.assign(this.chooser.opts, options);
    if (this.config?.reresolveMs !== config.reresolveMs) {
      clearInterval(this.reresolveTimer);
      this.reresolveTimer = config.reresolveMs > 0 ? setInterval(() => this.helper.requestReresolution(), config.reresolveMs).unref() : undefined;
    }
    this.config = config;
  }

  private createChild(address: string, endpoint: Endpoint, options: ChannelOptions, resolutionNote: string): Child {
    const child = { address, stats: this.chooser!.create(address), state: ConnectivityState.IDLE, loadCache: { raw: undefined, value: undefined } } as Omit<Child, 'leaf'> as Child;
    const childHelper = createChildChannelControlHelper(this.helper, {
      updateState: (state, _picker, errorMessage) => {
        if (errorMessage) this.lastError = errorMessage;
        this.onChildState(child, state);
      },
    });
    child.leaf = new LeafLoadBalancer(endpoint, childHelper, options, resolutionNote);
    return child;
  }

  private onChildState(child: Child, state: ConnectivityState): void {
    const was = child.state;
    child.state = state;
    if (state === ConnectivityState.READY && was !== ConnectivityState.READY) this.chooser!.restart(child.stats);
    // A dropped connection may mean the pod is gone for good: look the name up again.
    if (was === ConnectivityState.READY && state !== ConnectivityState.READY) this.helper.requestReresolution();
    this.calculateAndUpdateState();
  }

  private calculateAndUpdateState(): void {
    if (this.updatesPaused || !this.chooser) return;
    const all = [...this.children.values()];
    const ready = all.filter((c) => c.leaf.getConnectivityState() === ConnectivityState.READY);
    const count = (s: ConnectivityState) => all.filter((c) => c.leaf.getConnectivityState() === s).length;
    if (ready.length > 0) {
      const entries = ready.map((c) => ({ stats: c.stats, picker: c.leaf.getPicker(), loadCache: c.loadCache }));
      this.updateState(ConnectivityState.READY, new P2cPicker(entries, this.chooser, this.sources), null);
    } else if (count(ConnectivityState.CONNECTING) > 0) {
      this.updateState(ConnectivityState.CONNECTING, new QueuePicker(this), null);
    } else if (count(ConnectivityState.TRANSIENT_FAILURE) > 0) {
      const message = `${P2C_POLICY}: no endpoint is reachable. Last error: ${this.lastError}`;
      this.updateState(ConnectivityState.TRANSIENT_FAILURE, new UnavailablePicker({ details: message }), message);
    } else {
      this.updateState(ConnectivityState.IDLE, new QueuePicker(this), null);
    }
    // Like round_robin: every endpoint stays connected, so a pick never waits for a handshake.
    for (const c of all) if (c.leaf.getConnectivityState() === ConnectivityState.IDLE) c.leaf.exitIdle();
  }

  private updateState(state: ConnectivityState, picker: Picker, errorMessage: string | null): void {
    this.state = state;
    this.helper.updateState(state, picker, errorMessage);
  }

  exitIdle(): void {
    // Children leave IDLE by themselves (calculateAndUpdateState); doing it here as well would
    // loop, since every QueuePicker calls this on its first pick and each call publishes a new one.
  }

  resetBackoff(): void {
    // Backoff lives in the subchannels; nothing of our own to reset.
  }

  destroy(): void {
    for (const c of this.children.values()) c.leaf.destroy();
    this.children.clear();
    clearInterval(this.reresolveTimer);
    balancers.delete(this);
  }

  getTypeName(): string {
    return P2C_POLICY;
  }

  view(): BalancerView {
    const now = this.sources.now();
    const pool = this.chooser?.pool ?? { latencyMs: 0, load: 0, inflight: 0 };
    return {
      name: this.config?.name || [...this.children.values()].map((c) => c.address).join(','),
      state: ConnectivityState[this.state],
      pool,
      endpoints: [...this.children.values()].map((c) => ({
        address: c.address,
        state: ConnectivityState[c.leaf.getConnectivityState()],
        ...c.stats.inputs(now, pool),
        picks: c.stats.picks,
        forcedPicks: c.stats.forcedPicks,
        lastPickAgoMs: now - c.stats.lastPickAt,
      })),
    };
  }
}

/**
 * The picker for one set of READY endpoints. grpc-js calls pick() for every call attempt
 * (retries included), synchronously, on the channel's event loop.
 */
export class P2cPicker implements Picker {
  private readonly stats: EndpointStats[];
  private readonly byStats = new Map<EndpointStats, PickerEntry>();

  constructor(
    ready: readonly PickerEntry[],
    private readonly chooser: P2cChooser,
    private readonly sources: Sources = systemSources,
  ) {
    this.stats = ready.map((c) => c.stats);
    for (const c of ready) this.byStats.set(c.stats, c);
  }

  pick(args: PickArgs): PickResult {
    const stats = this.chooser.pick(this.stats)!;
    const entry = this.byStats.get(stats)!;
    const result = entry.picker.pick(args);
    if (result.pickResultType !== PickResultType.COMPLETE) {
      stats.clearPending();
      return result;
    }
    const { onCallStarted, onCallEnded } = result;
    let startedAt = 0;
    return {
      ...result,
      onCallStarted: () => {
        startedAt = this.sources.now();
        stats.onStart();
        onCallStarted?.();
      },
      onCallEnded: (code: Status, details: string, trailers: Metadata) => {
        const now = this.sources.now();
        const load = readLoad(entry.loadCache, trailers);
        stats.onEnd(now, {
          failed: code === Status.CANCELLED ? undefined : FAILURE_CODES.has(code),
          latencyMs: NO_LATENCY_CODES.has(code) ? undefined : now - startedAt,
          load,
          transportFailure: endedByConnection(code, trailers),
        });
        onCallEnded?.(code, details, trailers);
      },
    };
  }
}

/** The server's load (max of CPU and event-loop utilization) from the `lm-load` trailer. */
function readLoad(cache: PickerEntry['loadCache'], trailers: Metadata | undefined): number | undefined {
  const raw = trailers?.get(LOAD_METADATA_KEY)[0];
  if (typeof raw !== 'string') return undefined;
  if (raw !== cache.raw) {
    const parsed = parseLoad(raw);
    cache.raw = raw;
    cache.value = parsed && Math.max(parsed.cpu, parsed.elu);
  }
  return cache.value;
}

/** Registers the policy with grpc-js (idempotent). The client helper calls this for you. */
export function registerP2cPolicy(): void {
  if (!isLoadBalancerNameRegistered(P2C_POLICY)) registerLoadBalancerType(P2C_POLICY, P2cLoadBalancer, P2cConfig);
}
