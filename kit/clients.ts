import { createLbClient, describeService, type GeneratedClientClass } from '../lb/client.js';
import { audienceOf } from './auth.js';
import type { MeshCredentials } from './credentials.js';

/**
 * The one place a service makes a client for another livemesh service: lb/'s P2C balancing over
 * every replica `target` names (a comma-separated list, as `npm start` passes, or a DNS name), a
 * default deadline, retries of reads on another replica, this process's service token on every
 * call that carries no user's token, and mutual TLS when the process has certificates.
 */
export function serviceClient<C>(Ctor: GeneratedClientClass<C>, target: string, credentials: MeshCredentials): C {
  const service = audienceOf(describeService(Ctor.service).service);
  return createLbClient(Ctor, target, {
    credentials: credentials.channelCredentials(),
    channelOptions: { 'grpc.keepalive_time_ms': 30_000, ...credentials.clientOptions(service) },
  });
}

/** A deadline `ms` from now, for one outgoing call. */
export const deadlineIn = (ms: number) => ({ deadline: Date.now() + ms });
