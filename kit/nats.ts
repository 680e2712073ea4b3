import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import type { Logger } from './logger.js';

export type { NatsConnection };

/**
 * A NATS connection that never gives up reconnecting: chat fan-out and cache invalidation must
 * resume on their own after a NATS restart. Status changes are logged so an outage is visible.
 */
export async function connectNats(url: string, name: string, log: Logger): Promise<NatsConnection> {
  const nc = await connect({ servers: url, name, maxReconnectAttempts: -1, reconnectTimeWait: 250, timeout: 5000 });
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
