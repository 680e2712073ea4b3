import type { PoolMeans, ScoreInputs } from './endpoint-stats.js';

/** One endpoint as an operator sees it: why it gets the traffic it gets. */
export interface EndpointView extends ScoreInputs {
  address: string;
  /** grpc-js connectivity state of the endpoint's connection (READY, CONNECTING, ...). */
  state: string;
  picks: number;
  forcedPicks: number;
  /** Milliseconds since this client last sent it a call. */
  lastPickAgoMs: number;
}

/** One P2C balancer, that is one client channel. */
export interface BalancerView {
  /** The channel's label: the `name` in the policy config (the client helper sets the service name). */
  name: string;
  /** The balancer's own state as reported to its channel. */
  state: string;
  pool: PoolMeans;
  endpoints: EndpointView[];
}

/** Anything that can describe itself as a BalancerView; the policy registers its instances here. */
export interface Observable {
  view(): BalancerView;
}

const live = new Set<Observable>();

/**
 * Process-wide list of live balancers, so metrics and the debug view can find every channel's
 * numbers without the code that created the channel having to pass anything around.
 */
export const balancers = {
  add(b: Observable): void {
    live.add(b);
  },
  delete(b: Observable): void {
    live.delete(b);
  },
  views(): BalancerView[] {
    return [...live].map((b) => b.view());
  },
};
