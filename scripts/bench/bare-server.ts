/**
 * The benchmark baseline: a bare grpc-js server with no interceptors, serving
 * grpc.health.v1 Health/Check with a constant SERVING answer, and `/livemesh.bench.Echo/Echo`,
 * which returns the request's bytes untouched (no protobuf code at all). What a unary call costs
 * in grpc-js itself, before anything livemesh adds.
 *
 * `node dist/scripts/bench/bare-server.js [port]` (or PORT=...); 0 or nothing picks a free port.
 * Prints one JSON line `{"port":N}` once it listens; SIGTERM/SIGINT shut it down gracefully.
 */
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { HealthCheckResponse_ServingStatus as Serving, HealthService, type HealthCheckResponse } from '../../gen/ts/grpc/health/v1/health.js';
import { ECHO_SERVICE } from './echo.js';

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
const host = process.env.HOST || '127.0.0.1';
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`bare-server: port must be an integer 0-65535 (got ${JSON.stringify(process.argv[2] ?? process.env.PORT)})\n`);
  process.exit(78);
}

const server = new Server();
const serving: HealthCheckResponse = { status: Serving.SERVING };
const impl = {
  check: (_call: unknown, callback: (err: null, res: HealthCheckResponse) => void) => callback(null, serving),
};
server.addService(HealthService, impl);
server.addService(ECHO_SERVICE, { echo: (call: { request: Buffer }, callback: (err: null, res: Buffer) => void) => callback(null, call.request) });

const bound = await new Promise<number>((resolve, reject) =>
  server.bindAsync(`${host}:${port}`, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
);
process.stdout.write(`${JSON.stringify({ port: bound, msg: `bare grpc-js server on ${host}:${bound}` })}\n`);

let stopping = false;
const stop = () => {
  if (stopping) process.exit(1);
  stopping = true;
  const timer = setTimeout(() => {
    server.forceShutdown();
    process.exit(0);
  }, 5000);
  server.tryShutdown(() => {
    clearTimeout(timer);
    process.exit(0);
  });
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// Started by the benchmark with an IPC channel: go away with the parent, even if it is killed.
if (process.send) process.on('disconnect', stop);
