import type { Server } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { boundPort, createApp, drainHttpServer, listen, Readiness } from '../bff/app.js';

/** A real BFF app on a free loopback port; closed after each test unless the test drained it. */
async function serve(readiness = new Readiness()) {
  const server = await listen(createApp({ readiness }), '127.0.0.1', 0);
  servers.push(server);
  return { server, readiness, base: `http://127.0.0.1:${boundPort(server)}` };
}

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    if (!server.listening) continue;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

function expectJson(res: Response): void {
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
}

describe('bff app', () => {
  it('answers /healthz with its JSON and without advertising Express', async () => {
    const { base } = await serve();
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expectJson(res);
    expect(await res.json()).toEqual({ status: 'ok', service: 'bff' });
    expect(res.headers.get('x-powered-by')).toBeNull();
  });

  it('answers an unknown route with a JSON 404', async () => {
    const { base } = await serve();
    const res = await fetch(`${base}/x?secret=1`);
    expect(res.status).toBe(404);
    expectJson(res);
    expect(await res.json()).toEqual({ error: { code: 'NOT_FOUND', message: 'no route GET /x' } });
  });

  it('answers a malformed JSON body with a JSON 400, even on an unknown route (no HTML)', async () => {
    const { base } = await serve();
    for (const path of ['/healthz', '/no/such/route']) {
      const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"room": ' });
      expect(res.status).toBe(400);
      expectJson(res);
      expect(await res.json()).toEqual({ error: { code: 'INVALID_ARGUMENT', message: 'malformed JSON body' } });
    }
  });

  it("answers a request Node's parser refuses (unknown method, with a body still coming) with a JSON 400, not a reset connection", async () => {
    const { server } = await serve();
    const body = 'x'.repeat(512 * 1024);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(boundPort(server), '127.0.0.1');
      let received = '';
      socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
      socket.on('error', (err) => reject(new Error(`${err.message} after receiving ${JSON.stringify(received)}`)));
      socket.on('close', () => resolve(received));
      // The body is written after the server has answered the request line: a client that does not wait for the answer.
      socket.write(`FUZZ /v1/rooms HTTP/1.1\r\nHost: bff\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
      setTimeout(() => socket.end(body), 100);
    });
    const [head = '', json = ''] = answer.split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(head).toMatch(/content-type: application\/json/i);
    expect(JSON.parse(json)).toEqual({ error: { code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^not a valid HTTP\/1\.1 request \(HPE_INVALID_METHOD\)$/) } });
  });

  it('answers an oversized JSON body with a JSON 413', async () => {
    const { base } = await serve();
    const res = await fetch(`${base}/anything`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pad: 'x'.repeat(100_000) }) });
    expect(res.status).toBe(413);
    expectJson(res);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('PAYLOAD_TOO_LARGE');
  });

  it('turns /readyz to 503 as soon as a drain begins, keeps serving through the grace period, then closes', async () => {
    const { server, readiness, base } = await serve();
    const before = await fetch(`${base}/readyz`);
    expect(before.status).toBe(200);
    expect(await before.json()).toEqual({ status: 'ok' });

    const started = Date.now();
    // The two requests below must both land inside the grace period; 400 ms (as it was) is a race
    // a loaded machine can lose between them, and the second then finds the server closed.
    const graceMs = 1500;
    const drained = drainHttpServer(server, readiness, { graceMs, timeoutMs: 5_000 });
    const during = await fetch(`${base}/readyz`);
    expect(during.status).toBe(503);
    expectJson(during);
    expect(await during.json()).toEqual({ status: 'draining' });
    // Clients are told to drop keep-alive connections, so idle sockets cannot hold the close open.
    expect(during.headers.get('connection')).toBe('close');
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    await health.arrayBuffer();

    // fetch's keep-alive pool must not stall the close until the 5 s timeout.
    await expect(drained).resolves.toBe(true);
    // A stalled close would take the grace plus the whole 5 s timeout.
    expect(Date.now() - started).toBeLessThan(graceMs + 3_000);
    expect(server.listening).toBe(false);
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });
});
