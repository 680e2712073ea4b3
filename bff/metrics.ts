/**
 * The BFF's Prometheus metrics, served on their own port (METRICS_PORT, like the services) so
 * the public listener never exposes them. Counters the modules already keep for their own
 * reasons (cache statuses, stream stats, breaker state) are read at scrape time rather than
 * duplicated on the hot path.
 */
import type { RequestHandler } from 'express';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { MicroCache } from './microcache.js';
import type { StreamStats } from './stream/gateway.js';
import type { Upstream, Upstreams } from './upstreams.js';

export class BffMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly latency: Histogram<'route'>;
  private readonly upstreamCalls: Counter<'upstream' | 'method' | 'code'>;
  private readonly upstreamLatency: Histogram<'upstream' | 'method'>;

  constructor(replica: string) {
    this.registry.setDefaultLabels({ service: 'bff', replica });
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({ name: 'bff_http_requests_total', help: 'HTTP requests answered by Express, by route pattern and status.', labelNames: ['route', 'method', 'status'], registers: [this.registry] });
    this.latency = new Histogram({
      name: 'bff_http_request_seconds',
      help: 'Time to answer an HTTP request through Express, by route pattern.',
      labelNames: ['route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [this.registry],
    });
    this.upstreamCalls = new Counter({ name: 'bff_upstream_calls_total', help: 'Calls to the services, by upstream, method and gRPC code.', labelNames: ['upstream', 'method', 'code'], registers: [this.registry] });
    this.upstreamLatency = new Histogram({
      name: 'bff_upstream_call_seconds',
      help: 'Upstream call latency as the BFF sees it (retries inside lb/ included).',
      labelNames: ['upstream', 'method'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [this.registry],
    });
  }

  observeUpstream(upstream: string, method: string, code: string, seconds: number): void {
    this.upstreamCalls.inc({ upstream, method, code });
    this.upstreamLatency.observe({ upstream, method }, seconds);
  }

  /** Counts every response Express sends; the route label is the pattern, so ids never explode the label set. */
  http(): RequestHandler {
    return (req, res, next) => {
      const start = process.hrtime.bigint();
      res.once('finish', () => {
        const route = (req.route as { path?: string } | undefined)?.path ?? 'unmatched';
        this.requests.inc({ route, method: req.method, status: String(res.statusCode) });
        this.latency.observe({ route }, Number(process.hrtime.bigint() - start) / 1e9);
      });
      next();
    };
  }

  /** Gauges read at scrape time from the cache, the breakers and the stream. */
  follow(cache: MicroCache, upstreams: Upstreams, stream: () => StreamStats | undefined): void {
    new Gauge({
      name: 'bff_cache_responses',
      help: 'Responses served through the micro-cache since start, by status (HIT includes the fast path).',
      labelNames: ['status'],
      registers: [this.registry],
      collect() {
        for (const [status, n] of Object.entries(cache.served)) this.set({ status }, n);
      },
    });
    new Gauge({ name: 'bff_cache_entries', help: 'Screens held in the micro-cache.', registers: [this.registry], collect: function () {
      this.set(cache.size);
    } });
    new Gauge({
      name: 'bff_upstream_breaker_open',
      help: '1 while the upstream’s breaker is open (its optional sections degrade without a call).',
      labelNames: ['upstream'],
      registers: [this.registry],
      collect() {
        for (const u of Object.values(upstreams) as Array<Upstream<object>>) this.set({ upstream: u.name }, u.open ? 1 : 0);
      },
    });
    new Gauge({
      name: 'bff_stream',
      help: 'Room stream: connections and subscriptions now; frames, events, disconnects and dropped chat since start.',
      labelNames: ['stat'],
      registers: [this.registry],
      collect() {
        for (const [stat, n] of Object.entries(stream() ?? {}) as Array<[string, number]>) this.set({ stat }, n);
      },
    });
  }
}
