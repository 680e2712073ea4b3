/**
 * The BFF benchmark's baselines: the smallest JSON endpoint Express can serve, and the same on
 * bare node:http. `node dist/scripts/bench/bff-hello.js express|http` (PORT from the environment).
 * Both answer GET /healthz for the readiness probe and GET / with a small JSON body.
 */
import { createServer } from 'node:http';
import express from 'express';

const kind = process.argv[2];
const port = Number(process.env.PORT ?? 0);
const host = process.env.HOST || '127.0.0.1';
const body = JSON.stringify({ hello: 'world' });

if (kind === 'express') {
  const app = express();
  app.get('/healthz', (_req, res) => void res.json({ status: 'ok' }));
  app.get('/', (_req, res) => void res.json({ hello: 'world' }));
  const server = app.listen(port, host);
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
} else if (kind === 'http') {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }).listen(port, host);
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
} else {
  process.stderr.write('usage: bff-hello.js express|http\n');
  process.exit(2);
}
