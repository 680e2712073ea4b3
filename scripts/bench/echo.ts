import { makeGenericClientConstructor, type ServiceDefinition } from '@grpc/grpc-js';

const raw = (b: Buffer) => b;

/**
 * A byte-for-byte echo for baselines: no schema, no (de)serialization beyond grpc-js's framing, so
 * it measures the transport alone. Benchmarks send it a payload the size of the RPC they compare.
 */
export const ECHO_SERVICE: ServiceDefinition = {
  echo: {
    path: '/livemesh.bench.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
};

export const EchoClient = makeGenericClientConstructor(ECHO_SERVICE, 'Echo');
