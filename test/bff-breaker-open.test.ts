import type { AddressInfo } from 'node:net';
import express from 'express';
import { describe, expect, it } from 'vitest';
import { GetBalancesRequest, LedgerServiceClient } from '../gen/ts/livemesh/ledger/v1/ledger.js';
import { errorHandler } from '../bff/errors.js';
import { Upstream } from '../bff/upstreams.js';
import { devCredentials } from '../scripts/credentials.js';
import { freePorts } from '../scripts/net.js';

/**
 * Found by `npm run fuzz`: while an upstream's breaker was open, routes that call it directly
 * (income, top-ups, gifts, chat) answered 500 INTERNAL, because the breaker's error did not name
 * its upstream and the error middleware took it for the BFF's own bug. It is a 503 naming it.
 */
describe('a route on an open breaker', () => {
  it('answers 503 naming the upstream, with Retry-After', async () => {
    const [port] = await freePorts(1);
    const ledger = new Upstream('ledger', LedgerServiceClient, `127.0.0.1:${port}`, devCredentials('bff'), { errorPercent: 50, minCalls: 1, windowMs: 10_000, openMs: 60_000 });
    const call = () => ledger.call('getBalances', GetBalancesRequest.fromPartial({ ownerId: '1' }), { deadline: Date.now() + 500 });
    for (let i = 0; i < 5 && !ledger.open; i++) await call().catch(() => undefined);
    expect(ledger.open).toBe(true);

    const app = express();
    app.get('/balance', async (_req, res) => {
      res.json(await call());
    });
    app.use(errorHandler(undefined));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/balance`);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(await res.json()).toMatchObject({ error: { code: 'UNAVAILABLE', upstream: 'ledger' } });
    } finally {
      server.close();
      ledger.close();
    }
  });
});
