/**
 * A service-kit host with no service of its own: exactly what runService builds for a real
 * service (observe interceptor with the lm-load header, ORCA trailer and call metrics; health;
 * reflection; metrics endpoint; drain on SIGTERM; the caller's token verified before a handler
 * runs; mutual TLS when GRPC_TLS_DIR is set), minus the service's handlers and stores. The
 * benchmark calls its Health/Check to compare with the bare grpc-js server, and its
 * `/livemesh.bench.Echo/Echo`, registered like a service's RPCs (so every call's `authorization`
 * metadata is verified first), to measure what tokens and TLS cost per call.
 *
 * `node dist/scripts/bench/kit-server.js [port]`; otherwise the usual kit environment (PORT,
 * METRICS_PORT, LOG_LEVEL, FAULT_*, AUTH_PUBLIC_KEYS_DIR, GRPC_TLS_DIR, ...), and
 * BENCH_KIT_SERVICE: the name the host runs under, which is the audience its tokens must name
 * (default `bench-kit`; a mesh service's name such as `room` for its development certificate).
 */
import { runService } from '../../kit/server.js';
import { ECHO_SERVICE } from './echo.js';

if (process.argv[2] !== undefined) process.env.PORT = process.argv[2];

const host = await runService({
  name: process.env.BENCH_KIT_SERVICE || 'bench-kit',
  configShape: {},
  wire: (h) => {
    h.addService(ECHO_SERVICE, { echo: (call: { request: Buffer }, callback: (err: null, res: Buffer) => void) => callback(null, call.request) });
    return Promise.resolve();
  },
});
// Started by the benchmark with an IPC channel: drain and go away with the parent, even if it is killed.
let signalled = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => (signalled = true));
if (process.send) process.on('disconnect', () => signalled || process.kill(process.pid, 'SIGTERM'));
void host;
