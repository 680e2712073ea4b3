/**
 * One load-generating client process of bench:lb (forked by lb.ts, configured through the
 * LB_BENCH_CLIENT environment variable as JSON, driven over IPC).
 *
 * Open loop: calls start at a fixed rate whatever the servers do (a closed loop would slow down
 * with a slow replica and hide exactly the latency a bad balancer causes), alternating a cheap RPC
 * (GetRoom of one room) and an expensive one (BatchGetRooms of `batchIds`). Every call has the
 * same deadline and, being a read, the same retry policy under every balancing policy; only the
 * loadBalancingConfig differs.
 *
 * Protocol: → {type:'ready'} once a call succeeded; ← 'go' starts the load; ← 'mark' starts the
 * measured window; ← 'stop' ends it; → {type:'result'} once the calls in flight have ended.
 */
import { Metadata, status as Code, type ServiceError } from '@grpc/grpc-js';
import { RoomServiceClient } from '../../gen/ts/livemesh/room/v1/room.js';
import { createLbClient, lbServiceConfig, registerLb } from '../../lb/client.js';
import { lbSnapshot } from '../../lb/observe.js';
import { P2C_POLICY } from '../../lb/policy.js';
import { registerWrrShim, WRR_SHIM_POLICY } from './lb-wrr-shim.js';

export type PolicyName = 'pick_first' | 'round_robin' | 'weighted_round_robin' | typeof P2C_POLICY;

export interface ClientConfig {
  id: number;
  policy: PolicyName;
  addresses: string[];
  /** Calls per second this process starts. */
  rate: number;
  deadlineMs: number;
  roomId: string;
  batchIds: string[];
  /** Record the P2C balancer's pick counters every 20 ms (kill phase). */
  samplePicks: boolean;
  /** weighted_round_robin's blackout period, seconds. */
  wrrBlackoutS: number;
}

export interface ClientResult {
  type: 'result';
  id: number;
  /** Latency of every call started in the window, ms. */
  latencies: Float64Array;
  ok: number;
  errors: Record<string, number>;
  /** Calls (ok or not) by the replica that answered, "127.0.0.1:port". */
  byPeer: Record<string, number>;
  windowMs: number;
  cpuMs: number;
  /** [time (epoch ms), picks of each address] samples, when samplePicks is set. */
  picks: Array<[number, Record<string, number>]>;
  /** Epoch ms of each failed call, for the kill phase. */
  errorTimes: number[];
  /** One message per error code, to tell a deadline from a refused connection. */
  errorSamples: Record<string, string>;
  /** The P2C balancer's view every second of the window (empty for other policies). */
  views: Array<{ at: number; endpoints: Array<{ address: string; load: number; latencyMs: number; inflight: number; avoided: boolean; score: number }> }>;
}

const now = () => performance.timeOrigin + performance.now();

function loadBalancingConfig(cfg: ClientConfig): object {
  switch (cfg.policy) {
    case 'pick_first':
      return { pick_first: {} };
    case 'round_robin':
      return { round_robin: {} };
    case 'weighted_round_robin':
      // Per-call ORCA trailers (no out-of-band stream), weights refreshed every second.
      return { [WRR_SHIM_POLICY]: { weighted_round_robin: { enable_oob_load_report: false, blackout_period: `${cfg.wrrBlackoutS}s`, weight_update_period: '1s' } } };
    case P2C_POLICY:
      return { [P2C_POLICY]: { name: `bench-client-${cfg.id}` } };
  }
}

function makeClient(cfg: ClientConfig): RoomServiceClient {
  const spec = cfg.addresses.join(',');
  const opts = { deadlineMs: cfg.deadlineMs, name: `bench-client-${cfg.id}` };
  if (cfg.policy === P2C_POLICY) return createLbClient(RoomServiceClient, spec, opts);
  registerLb();
  registerWrrShim();
  // Same deadline, retry policy and channel options as ours; only the balancer differs.
  const serviceConfig = { ...lbServiceConfig(RoomServiceClient.service, opts), loadBalancingConfig: [loadBalancingConfig(cfg)] };
  return createLbClient(RoomServiceClient, spec, { ...opts, channelOptions: { 'grpc.service_config': JSON.stringify(serviceConfig) } });
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.env.LB_BENCH_CLIENT ?? '{}') as ClientConfig;
  const client = makeClient(cfg);
  const cheap = { roomId: cfg.roomId, readMask: undefined };
  const expensive = { roomIds: cfg.batchIds, readMask: undefined };

  const starts: number[] = [];
  const latencies: number[] = [];
  const codes: number[] = [];
  const peers: string[] = [];
  const errorSamples: Record<string, string> = {};
  let inflight = 0;
  let launched = 0;

  const fire = (onDone?: (err: ServiceError | null) => void) => {
    const t0 = now();
    const i = starts.length;
    starts.push(t0);
    latencies.push(NaN);
    codes.push(-1);
    peers.push('');
    inflight++;
    const done = (err: ServiceError | null) => {
      inflight--;
      latencies[i] = now() - t0;
      codes[i] = err ? err.code : Code.OK;
      if (err) errorSamples[Code[err.code] ?? String(err.code)] ??= err.details;
      peers[i] = call.getPeer();
      onDone?.(err);
    };
    const call = launched++ % 2 === 0 ? client.getRoom(cheap, new Metadata(), done) : client.batchGetRooms(expensive, new Metadata(), done);
  };

  // Ready: one successful call of each kind, so no policy is measured while still connecting.
  for (;;) {
    const err = await new Promise<ServiceError | null>((resolve) => fire(resolve));
    const err2 = await new Promise<ServiceError | null>((resolve) => fire(resolve));
    if (!err && !err2) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  starts.length = latencies.length = codes.length = peers.length = 0;

  let markAt = Infinity;
  let stopAt = Infinity;
  let cpu0 = process.cpuUsage();
  let cpuMs = 0;
  const picks: ClientResult['picks'] = [];
  let ticker: NodeJS.Timeout | undefined;
  let sampler: NodeJS.Timeout | undefined;
  const views: ClientResult['views'] = [];
  const viewer = setInterval(() => {
    const b = lbSnapshot().balancers[0];
    if (b && now() >= markAt) views.push({ at: now(), endpoints: b.endpoints.map(({ address, load, latencyMs, inflight, avoided, score }) => ({ address, load, latencyMs, inflight, avoided, score })) });
  }, 1000);

  const finish = () => {
    const inWindow: number[] = [];
    const errors: Record<string, number> = {};
    const byPeer: Record<string, number> = {};
    const errorTimes: number[] = [];
    let ok = 0;
    for (let i = 0; i < starts.length; i++) {
      const t = starts[i]!;
      if (t < markAt || t > stopAt) continue;
      inWindow.push(latencies[i]!);
      const peer = peers[i] || 'none';
      byPeer[peer] = (byPeer[peer] ?? 0) + 1;
      if (codes[i] === Code.OK) ok++;
      else {
        const name = Code[codes[i]!] ?? String(codes[i]);
        errors[name] = (errors[name] ?? 0) + 1;
        errorTimes.push(t);
      }
    }
    const result: ClientResult = { type: 'result', id: cfg.id, latencies: Float64Array.from(inWindow), ok, errors, byPeer, windowMs: stopAt - markAt, cpuMs, picks, errorTimes, errorSamples, views };
    process.send!(result, () => {
      client.close();
      process.exit(0);
    });
  };

  process.on('message', (msg: { type: string }) => {
    if (msg.type === 'go') {
      const t0 = now();
      const base = launched;
      ticker = setInterval(() => {
        const due = base + Math.floor(((now() - t0) * cfg.rate) / 1000);
        while (launched < due) fire();
      }, 2);
      if (cfg.samplePicks) {
        sampler = setInterval(() => {
          const b = lbSnapshot().balancers[0];
          if (b) picks.push([now(), Object.fromEntries(b.endpoints.map((e) => [e.address, e.picks]))]);
        }, 20);
      }
    } else if (msg.type === 'mark') {
      markAt = now();
      cpu0 = process.cpuUsage();
    } else if (msg.type === 'stop') {
      stopAt = now();
      const cpu = process.cpuUsage(cpu0);
      cpuMs = (cpu.user + cpu.system) / 1000;
      clearInterval(ticker);
      clearInterval(sampler);
      clearInterval(viewer);
      const wait = setInterval(() => {
        if (inflight === 0 || now() > stopAt + cfg.deadlineMs + 1000) {
          clearInterval(wait);
          finish();
        }
      }, 10);
    }
  });
  // The parent went away: nothing left to report to.
  process.on('disconnect', () => process.exit(0));
  process.send!({ type: 'ready' });
}

void main();
