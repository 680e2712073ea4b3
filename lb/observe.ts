/**
 * Visibility into the balancers: Prometheus metrics of every endpoint's score inputs, and a JSON
 * debug view with the same numbers, so an operator can see why a replica gets less traffic.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge, type Registry } from 'prom-client';
import { balancers, type BalancerView } from './registry.js';

/** Every live balancer in this process, as JSON-ready objects. */
export function lbSnapshot(): { balancers: BalancerView[] } {
  return { balancers: balancers.views() };
}

/** The debug route: mount it on any HTTP server the process already runs. */
const LB_DEBUG_PATH = '/debug/lb';

/**
 * Serves `GET /debug/lb` (the snapshot, pretty-printed); returns false for any other request so
 * the caller's own routing continues. Works as plain node:http code and inside Express
 * (`app.get('/debug/lb', (req, res) => void lbDebugHandler(req, res))`).
 */
export function lbDebugHandler(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method !== 'GET' || req.url?.split('?')[0] !== LB_DEBUG_PATH) return false;
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify(lbSnapshot(), null, 2)}\n`);
  return true;
}

type Labels = 'channel' | 'endpoint';

/**
 * Registers the balancer metrics on `registry` (a service passes its KitMetrics registry). Values
 * are read at scrape time from the live balancers; endpoints that left disappear from the output.
 */
export function registerLbMetrics(registry: Registry): void {
  let cached: { at: number; views: BalancerView[] } | undefined;
  // All gauges are collected in one scrape; one snapshot serves them all.
  const views = () => {
    const now = Date.now();
    if (!cached || now - cached.at > 50) cached = { at: now, views: balancers.views() };
    return cached.views;
  };
  const gauge = (name: string, help: string, value: (e: BalancerView['endpoints'][number]) => number | undefined) =>
    new Gauge<Labels>({
      name,
      help,
      labelNames: ['channel', 'endpoint'],
      registers: [registry],
      collect() {
        this.reset();
        for (const b of views()) {
          for (const e of b.endpoints) {
            const v = value(e);
            if (v !== undefined && Number.isFinite(v)) this.set({ channel: b.name, endpoint: e.address }, v);
          }
        }
      },
    });
  const counter = (name: string, help: string, value: (e: BalancerView['endpoints'][number]) => number) =>
    new Counter<Labels>({
      name,
      help,
      labelNames: ['channel', 'endpoint'],
      registers: [registry],
      collect() {
        this.reset();
        for (const b of views()) for (const e of b.endpoints) this.inc({ channel: b.name, endpoint: e.address }, value(e));
      },
    });
  gauge('livemesh_lb_endpoint_ready', '1 if the endpoint has a READY connection.', (e) => (e.state === 'READY' ? 1 : 0));
  gauge('livemesh_lb_endpoint_inflight', 'Calls this client has in flight on the endpoint.', (e) => e.inflight);
  gauge('livemesh_lb_endpoint_latency_ewma_seconds', 'Peak-sensitive EWMA of client-side latency.', (e) => e.latencyMs / 1000);
  gauge('livemesh_lb_endpoint_success_ratio', 'EWMA of calls not failed by overload or transport (UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED).', (e) => e.success);
  gauge('livemesh_lb_endpoint_load_ratio', 'Server load used in the score: the last lm-load report, faded towards the pool mean by its age.', (e) => e.load);
  gauge('livemesh_lb_endpoint_load_report_age_seconds', 'Age of the last lm-load report from the endpoint.', (e) => (e.loadAgeMs === undefined ? undefined : e.loadAgeMs / 1000));
  gauge('livemesh_lb_endpoint_avoided', '1 if the endpoint is avoided (success collapsed or load over the limit).', (e) => (e.avoided ? 1 : 0));
  gauge('livemesh_lb_endpoint_score', 'P2C score (estimated cost of a new call, lower is better).', (e) => e.score);
  counter('livemesh_lb_endpoint_picks_total', 'Calls (attempts) this client sent to the endpoint.', (e) => e.picks);
  counter('livemesh_lb_endpoint_forced_picks_total', 'Picks forced because the endpoint had not been picked for a while.', (e) => e.forcedPicks);
}
