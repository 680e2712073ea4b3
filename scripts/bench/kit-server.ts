/**
 * A service-kit host with no service of its own: exactly what runService builds for a real
 * service (observe interceptor with the lm-load header, ORCA trailer and call metrics; health;
 * reflection; metrics endpoint; drain on SIGTERM), minus the service's handlers and stores. The
 * benchmark calls its Health/Check to compare with the bare grpc-js server.
 *
 * `node dist/scripts/bench/kit-server.js [port]`; otherwise the usual kit environment (PORT,
 * METRICS_PORT, LOG_LEVEL, FAULT_*, ...).
 */
import { runService } from '../../services/kit/server.js';

if (process.argv[2] !== undefined) process.env.PORT = process.argv[2];

const host = await runService({ name: 'bench-kit', configShape: {}, wire: async () => {} });
// Started by the benchmark with an IPC channel: drain and go away with the parent, even if it is killed.
let signalled = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => (signalled = true));
if (process.send) process.on('disconnect', () => signalled || process.kill(process.pid, 'SIGTERM'));
void host;
