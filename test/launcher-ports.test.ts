/**
 * `npm start` at LM_PORT_OFFSET=2000 put the BFF on 10080, a port the Fetch standard blocks: the
 * launcher's fetch()-based readiness probe never succeeded. The probe now uses node:http, and the
 * offset the launcher suggests keeps every process off the blocked ports.
 */
import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { FETCH_BLOCKED_PORTS, fetchBlocked, suggestOffset } from '../scripts/fetch-ports.js';
import { HIGHEST_PORT, httpReady, planMesh } from '../scripts/mesh.js';
import { repoRoot } from '../kit/paths.js';

const MAX_OFFSET = 65535 - HIGHEST_PORT;

async function plannedPorts(offset: number): Promise<number[]> {
  const { specs } = await planMesh(repoRoot(), { ports: { offset }, env: {} });
  return specs.flatMap((s) => [s.port, ...(s.metricsPort === undefined ? [] : [s.metricsPort])]);
}

let server: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
});

function serve(port: number, status: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const s = createServer((_req, res) => res.writeHead(status).end('{}'));
    s.once('error', () => resolve(undefined));
    s.listen({ host: '127.0.0.1', port }, () => {
      server = s;
      const addr = s.address();
      resolve(typeof addr === 'object' && addr ? addr.port : undefined);
    });
  });
}

describe('launcher ports', () => {
  it('never suggests an offset that lands a process on a port fetch() refuses (2000 put the BFF on 10080)', async () => {
    const atZero = await plannedPorts(0);
    expect(atZero).toContain(8080);
    expect(fetchBlocked(await plannedPorts(2000))).toEqual([10080]);
    const suggested = suggestOffset(0, atZero, MAX_OFFSET);
    expect(suggested).toBe(4000);
    expect(fetchBlocked(await plannedPorts(suggested))).toEqual([]);
    // From any offset, wrapping round at the top.
    for (let current = 0; current <= MAX_OFFSET; current += 1000) {
      const at = await plannedPorts(current);
      const next = suggestOffset(current, at, MAX_OFFSET);
      expect(next).not.toBe(current);
      expect(next).toBeLessThanOrEqual(MAX_OFFSET);
      expect(fetchBlocked(await plannedPorts(next))).toEqual([]);
    }
  });

  it('the readiness probe reaches a process on 10080, which fetch() refuses', async () => {
    await expect(fetch('http://127.0.0.1:10080/readyz')).rejects.toThrow();
    expect(FETCH_BLOCKED_PORTS.has(10080)).toBe(true);
    const port = await serve(10080, 200);
    // Another process may hold 10080 on this shared machine; the probe's answer is then not ours to check.
    if (port === undefined) return;
    expect(await httpReady(`http://127.0.0.1:${port}/readyz`)).toBe(true);
  });

  it('the probe says not ready for a non-200 answer and for a closed port', async () => {
    const port = await serve(0, 503);
    expect(await httpReady(`http://127.0.0.1:${port}/readyz`)).toBe(false);
    await new Promise((resolve) => server?.close(resolve));
    server = undefined;
    expect(await httpReady(`http://127.0.0.1:${port}/readyz`, 500)).toBe(false);
  });
});
