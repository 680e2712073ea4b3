/**
 * The load-report wire format between servers and lb/'s balancer: what a livemesh server puts in
 * its response metadata and what the P2C policy reads back. It lives with the balancer, the
 * format's reader; the kit (kit/load.ts) measures the numbers and writes them.
 */
import { status as Status, type Metadata } from '@grpc/grpc-js';
import { OrcaLoadReport } from '../gen/ts/xds/data/orca/v3/orca_load_report.js';

/** The plain ASCII response key lb/ reads: `cpu=0.123,elu=0.456`. */
export const LOAD_METADATA_KEY = 'lm-load';

/**
 * Whether a call ended on its connection rather than with a server's answer: every livemesh
 * answer carries LOAD_METADATA_KEY, so an UNAVAILABLE without it was a refused, reset or dropped
 * connection. The picker ejects the endpoint on it, and committed-retry.ts resends on it.
 */
export function endedByConnection(code: Status, trailers: Metadata | undefined): boolean {
  return code === Status.UNAVAILABLE && (trailers?.get(LOAD_METADATA_KEY).length ?? 0) === 0;
}

/** The standard ORCA per-call trailer (xds.data.orca.v3.OrcaLoadReport), read by weighted_round_robin. */
export const ORCA_TRAILER_KEY = 'endpoint-load-metrics-bin';

export interface LoadSample {
  /** Process CPU time over the last window, as a fraction of the CPUs the process may use. */
  cpu: number;
  /** Event-loop utilization over the last window: the fraction of time the loop was busy. */
  elu: number;
}

/** Request rates over the last load window, for the ORCA report. */
export interface CallRates {
  /** Calls finished per second. */
  rps: number;
  /** Of those, failures the server is to blame for (see SERVER_FAILURE_CODES in interceptors.ts). */
  eps: number;
}

/** application_utilization is max(cpu, elu): a Node replica is saturated when either is. */
export function encodeOrca(s: LoadSample, r: CallRates): Buffer {
  return Buffer.from(
    OrcaLoadReport.encode(OrcaLoadReport.fromPartial({ cpuUtilization: s.cpu, applicationUtilization: Math.max(s.cpu, s.elu), rpsFractional: r.rps, eps: r.eps })).finish(),
  );
}

export function formatLoad(s: LoadSample): string {
  return `cpu=${s.cpu.toFixed(3)},elu=${s.elu.toFixed(3)}`;
}

/** Parses the LOAD_METADATA_KEY value; undefined when absent or malformed (old servers, proxies). */
export function parseLoad(value: string | undefined): LoadSample | undefined {
  if (!value) return undefined;
  const m = /^cpu=([0-9.]+),elu=([0-9.]+)$/.exec(value);
  if (!m) return undefined;
  const cpu = Number(m[1]);
  const elu = Number(m[2]);
  return Number.isFinite(cpu) && Number.isFinite(elu) ? { cpu, elu } : undefined;
}
