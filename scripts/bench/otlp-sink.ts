import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * Where the benchmarks' traced processes export: a local OTLP/HTTP endpoint that takes every
 * export request (POST /v1/traces), counts it and its bytes, and answers success with an empty
 * ExportTraceServiceResponse, as a collector would. It decodes nothing, so what the rows measure
 * is the traced processes' cost, not a backend's.
 */
export async function startOtlpSink(): Promise<{ url: string; take(): { requests: number; bytes: number }; close(): Promise<void> }> {
  let requests = 0;
  let bytes = 0;
  const server = createServer((req, res) => {
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      requests++;
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    /** Requests and bytes received since the last call. */
    take() {
      const out = { requests, bytes };
      requests = 0;
      bytes = 0;
      return out;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The OTEL_* environment of a process exporting to `url` with parent-based ratio sampling, or none at all (tracing off). */
export function tracingEnv(url: string, ratio: number | undefined): Record<string, string> {
  if (ratio === undefined) return {};
  return { OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: String(ratio) };
}

/** The three settings every tracing comparison runs: off, 1% and 100% of traces sampled. */
export const TRACING_MODES: ReadonlyArray<{ label: string; ratio: number | undefined }> = [
  { label: 'tracing off', ratio: undefined },
  { label: 'tracing on, 1% sampled', ratio: 0.01 },
  { label: 'tracing on, 100% sampled', ratio: 1 },
];
