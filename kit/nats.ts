import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { ConfigError } from './config.js';
import type { Logger } from './logger.js';

export type { NatsConnection };

/** NATS_URL's servers: one, or a cluster's seeds separated by commas (the client tries each). */
export const natsServers = (url: string): string[] =>
  url
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** How this process's streams and KV buckets are kept: see kit/streams.ts ensureStream and ensureKv. */
export interface JetStreamSettings {
  /** NATS_REPLICAS: 1 on one server, 3 or 5 on a cluster. */
  replicas: number;
  log: Logger | undefined;
}

/**
 * The replica count belongs to the cluster a connection points at, so it is set once where the
 * connection is made and every stream or bucket created over it follows, instead of being passed
 * through every service's consumers. A connection made elsewhere (a test's, a tool's) gets one
 * replica, which never lowers a stream that already has more.
 */
const settingsOf = new WeakMap<NatsConnection, JetStreamSettings>();

export function jetStreamSettings(nc: NatsConnection): JetStreamSettings {
  return settingsOf.get(nc) ?? { replicas: 1, log: undefined };
}

/**
 * A NATS connection that never gives up reconnecting: chat fan-out and cache invalidation must
 * resume on their own after a NATS restart. Status changes are logged so an outage is visible.
 * `url` may list a cluster's servers; the client also learns the rest of the cluster from them.
 */
export async function connectNats(url: string, name: string, log: Logger, opts: { replicas?: number } = {}): Promise<NatsConnection> {
  const nc = await connect({ servers: natsServers(url), name, maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: 5000 });
  const replicas = opts.replicas ?? 1;
  // A standalone server can never place more than one replica: JetStream would refuse every
  // stream and the process would wait for ever, so it is refused here, where the cause is known.
  if (replicas > 1 && !nc.info?.cluster) {
    const server = nc.getServer();
    await nc.close();
    throw new ConfigError([`NATS_REPLICAS=${replicas} needs a JetStream cluster of at least ${replicas} servers, but ${server} is a standalone server (it names no cluster); set NATS_REPLICAS=1 or point NATS_URL at the cluster`]);
  }
  settingsOf.set(nc, { replicas, log });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error') log.info({ nats: s.type }, `nats ${s.type}`);
    }
  })();
  return nc;
}

/** Applies the configured prefix (NATS_PREFIX) to a subject, so test files never hear each other. */
export function subject(prefix: string, name: string): string {
  return prefix ? `${prefix}.${name}` : name;
}
