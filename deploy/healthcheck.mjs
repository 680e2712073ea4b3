// Container health check: Docker Compose's healthcheck, and Kubernetes' exec probes when the mesh runs
// mutual TLS (components/mtls; kubelet's native gRPC probe cannot present a client certificate).
// The runtime image is distroless: no shell, curl or grpc_health_probe, only node.
//
//   node deploy/healthcheck.mjs grpc [port]         grpc.health.v1 Check("") must answer SERVING
//   node deploy/healthcheck.mjs http <port> [path]  GET must answer 2xx (path defaults to /readyz)
//
// grpc: the port defaults to $PORT (the container's own setting). With GRPC_TLS_DIR set (ca.crt,
// tls.crt, tls.key, as the process itself reads them) the check speaks mutual TLS with the pod's own
// certificate, and expects the server's certificate to name what its own names first (the service
// name, `room`): both come from the same Secret. Health needs no token.
//
// Exit 0 healthy, 1 not. Plain JavaScript next to the compiled code so it needs no build step of its own.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { HealthClient, HealthCheckResponse_ServingStatus as Serving } from '../dist/gen/ts/grpc/health/v1/health.js';

const TIMEOUT_MS = 2000;
const [kind, portArg, path = '/readyz'] = process.argv.slice(2);
const port = portArg ?? (kind === 'grpc' ? process.env.PORT : undefined);

function fail(reason) {
  process.stderr.write(`unhealthy: ${reason}\n`);
  process.exit(1);
}

/** The name a certificate is for: its first DNS subject alternative name, else its common name. */
function certificateName(pem) {
  const cert = new X509Certificate(pem);
  const dns = (cert.subjectAltName ?? '').split(/,\s*/).find((san) => san.startsWith('DNS:'));
  if (dns) return dns.slice('DNS:'.length);
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
  if (!cn) throw new Error('tls.crt names no DNS subject alternative name and no common name');
  return cn;
}

/** Plaintext, or mutual TLS from GRPC_TLS_DIR checking the server against this pod's own name. */
function grpcChannel() {
  const dir = process.env.GRPC_TLS_DIR;
  if (!dir) return { creds: credentials.createInsecure(), options: {} };
  let files, name;
  try {
    const read = (file) => readFileSync(join(dir, file));
    files = { ca: read('ca.crt'), cert: read('tls.crt'), key: read('tls.key') };
    name = certificateName(files.cert);
  } catch (err) {
    fail(`GRPC_TLS_DIR ${dir}: ${err.message}`);
  }
  return {
    creds: credentials.createSsl(files.ca, files.key, files.cert),
    options: { 'grpc.ssl_target_name_override': name, 'grpc.default_authority': name },
  };
}

if (!/^\d+$/.test(port ?? '')) fail('usage: healthcheck.mjs grpc [port, default $PORT] | http <port> [path]');

if (kind === 'grpc') {
  const { creds, options } = grpcChannel();
  const client = new HealthClient(`127.0.0.1:${port}`, creds, options);
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
