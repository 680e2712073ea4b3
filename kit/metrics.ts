import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { LoadMonitor } from './load.js';

/**
 * Per-process Prometheus metrics. Names follow go-grpc-prometheus so existing Grafana dashboards
 * for gRPC work unchanged.
 */
export class KitMetrics {
  readonly registry = new Registry();
  private readonly handled: Counter<'grpc_service' | 'grpc_method' | 'grpc_code'>;
  private readonly latency: Histogram<'grpc_service' | 'grpc_method'>;

  constructor(labels: { service: string; replica: string }, load: LoadMonitor) {
    this.registry.setDefaultLabels(labels);
    collectDefaultMetrics({ register: this.registry });
    this.handled = new Counter({
      name: 'grpc_server_handled_total',
      help: 'RPCs completed on the server, by method and status code.',
      labelNames: ['grpc_service', 'grpc_method', 'grpc_code'],
      registers: [this.registry],
    });
    this.latency = new Histogram({
      name: 'grpc_server_handling_seconds',
      help: 'Time from receiving an RPC to sending its status.',
      labelNames: ['grpc_service', 'grpc_method'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    new Gauge({
      name: 'livemesh_load_cpu_ratio',
      help: 'Process CPU over the load window, as a fraction of the CPUs it may use (cgroup-aware).',
      registers: [this.registry],
      collect() {
        this.set(load.load.cpu);
      },
    });
    new Gauge({
      name: 'livemesh_load_event_loop_ratio',
      help: 'Event-loop utilization over the load window.',
      registers: [this.registry],
      collect() {
        this.set(load.load.elu);
      },
    });
  }

  observeCall(service: string, method: string, code: string, seconds: number): void {
    this.handled.inc({ grpc_service: service, grpc_method: method, grpc_code: code });
    this.latency.observe({ grpc_service: service, grpc_method: method }, seconds);
  }
}

/** Serves GET /metrics; returns the bound port (useful when asked for port 0). */
export async function serveMetrics(metrics: Pick<KitMetrics, 'registry'>, host: string, port: number): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.method === 'GET' && req.url?.split('?')[0] === '/metrics') {
      metrics.registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(body);
        },
        (err: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`metrics collection failed: ${String(err)}`);
        },
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { code: 'NOT_FOUND', message: 'only GET /metrics is served here' } }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
