import { credentials, Metadata, type ChannelOptions, type ChannelCredentials, type Client } from '@grpc/grpc-js';
import { ROLE_KEY, USER_ID_KEY, type Caller } from './identity.js';

/** A generated grpc-js client class (ts-proto `outputServices=grpc-js`). */
export type ClientClass<C extends Client> = new (address: string, creds: ChannelCredentials, options?: Partial<ChannelOptions>) => C;

/**
 * The one place services make a client for another livemesh service. Today it is a plain
 * grpc-js channel to one address; when the P2C balancer (lb/) lands, this becomes its
 * `createLbClient`, and every caller gets balancing, default deadlines and read retries at once.
 */
export function serviceClient<C extends Client>(Ctor: ClientClass<C>, address: string): C {
  return new Ctor(address, credentials.createInsecure(), { 'grpc.keepalive_time_ms': 30_000 });
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
