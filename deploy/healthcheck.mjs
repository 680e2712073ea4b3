// Container health check for Docker Compose (Kubernetes probes gRPC and HTTP natively and does not
// use this). The runtime image is distroless: no shell, curl or grpc_health_probe, only node.
//
//   node deploy/healthcheck.mjs grpc 50051          grpc.health.v1 Check("") must answer SERVING
//   node deploy/healthcheck.mjs http 8080 /readyz   GET must answer 2xx
//
// Exit 0 healthy, 1 not. Plain JavaScript next to the compiled code so it needs no build step of its own.
import { credentials } from '@grpc/grpc-js';
import { HealthClient, HealthCheckResponse_ServingStatus as Serving } from '../dist/gen/ts/grpc/health/v1/health.js';

const TIMEOUT_MS = 2000;
const [kind, port, path = '/readyz'] = process.argv.slice(2);

function fail(reason) {
  process.stderr.write(`unhealthy: ${reason}\n`);
  process.exit(1);
}

if (!/^\d+$/.test(port ?? '')) fail('usage: healthcheck.mjs grpc <port> | http <port> [path]');

if (kind === 'grpc') {
  const client = new HealthClient(`127.0.0.1:${port}`, credentials.createInsecure());
  client.check({ service: '' }, { deadline: Date.now() + TIMEOUT_MS }, (err, res) => {
    client.close();
    if (err) fail(err.message);
    if (res.status !== Serving.SERVING) fail(`status ${Serving[res.status] ?? res.status}`);
    process.exit(0);
  });
} else if (kind === 'http') {
  fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(TIMEOUT_MS) }).then(
    (res) => (res.ok ? process.exit(0) : fail(`HTTP ${res.status}`)),
    (err) => fail(err.message),
  );
} else {
  fail(`unknown check ${JSON.stringify(kind)}: grpc or http`);
}
