/**
 * `/demo/token`: off unless DEMO=on is asked for, and never an admin token under
 * NODE_ENV=production, even with the demo switched on there.
 */
import express from 'express';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TokenVerifier } from '../bff/auth.js';
import { parseBffConfig } from '../bff/config.js';
import { demoRoutes } from '../bff/demo.js';
import { errorHandler } from '../bff/errors.js';

const SECRET = 's'.repeat(32);
let server: Server | undefined;
afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

async function demo(production: boolean): Promise<{ base: string; verifier: TokenVerifier }> {
  const verifier = new TokenVerifier(SECRET);
  const app = express();
  app.use(express.json());
  app.use(demoRoutes(verifier, { production }));
  app.use(errorHandler(undefined));
  const s = app.listen(0, '127.0.0.1');
  server = s;
  await new Promise((resolve) => s.once('listening', resolve));
  return { base: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, verifier };
}

const mint = (base: string, body: object) => fetch(`${base}/demo/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('/demo/token', () => {
  it('is off unless asked for, in development and in production', () => {
    expect(parseBffConfig({}).DEMO).toBe('off');
    expect(parseBffConfig({ DEMO: 'on' }).DEMO).toBe('on');
    const prod = { NODE_ENV: 'production', JWT_SECRET: 'j'.repeat(32), TOPUP_SECRET: 't'.repeat(32) };
    expect(parseBffConfig(prod).DEMO).toBe('off');
  });

  it('never mints an admin token in production; viewers and streamers still sign in', async () => {
    const { base, verifier } = await demo(true);
    const admin = await mint(base, { userId: '1', role: 'admin' });
    expect(admin.status).toBe(403);
    expect(await admin.json()).toMatchObject({ error: { code: 'PERMISSION_DENIED', field: 'role' } });
    const viewer = await mint(base, { userId: '2', role: 'viewer', name: 'v' });
    expect(viewer.status).toBe(200);
    expect(await verifier.verify(((await viewer.json()) as { token: string }).token)).toMatchObject({ userId: '2', role: 'viewer' });
  });

  it('mints admin tokens for local development', async () => {
    const { base, verifier } = await demo(false);
    const admin = await mint(base, { userId: '3', role: 'admin' });
    expect(admin.status).toBe(200);
    expect(await verifier.verify(((await admin.json()) as { token: string }).token)).toMatchObject({ userId: '3', role: 'admin' });
  });
});
