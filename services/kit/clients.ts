import { Metadata } from '@grpc/grpc-js';
import { createLbClient, type GeneratedClientClass } from '../../lb/client.js';
import { ROLE_KEY, USER_ID_KEY, type Caller } from './identity.js';

/**
 * The one place Chat and Ranking make a client for another livemesh service: lb/'s P2C balancing
 * over every replica `target` names (a comma-separated list, as `npm start` passes, or a DNS name),
 * a default deadline, and retries of reads on another replica.
 */
export function serviceClient<C>(Ctor: GeneratedClientClass<C>, target: string): C {
  return createLbClient(Ctor, target, { channelOptions: { 'grpc.keepalive_time_ms': 30_000 } });
}

/** Metadata naming a caller, for calls made on a user's behalf or as an internal admin. */
export function callerMetadata(caller: Pick<Caller, 'userId' | 'role'>): Metadata {
  const md = new Metadata();
  md.set(USER_ID_KEY, caller.userId);
  md.set(ROLE_KEY, caller.role);
  return md;
}

/** A deadline `ms` from now, for one outgoing call. */
export const deadlineIn = (ms: number) => ({ deadline: Date.now() + ms });

/**
 * Who a service is when it calls another service on its own account (effect acks, rebuilds): an
 * internal admin. User id 1 is reserved for it until the platform issues service identities.
 */
export const SERVICE_CALLER: Pick<Caller, 'userId' | 'role'> = { userId: '1', role: 'admin' };
