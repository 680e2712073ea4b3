import { request, type IncomingHttpHeaders, type Server } from 'node:http';
import { credentials } from '@grpc/grpc-js';
import { pino } from 'pino';
import * as giftPb from '../../gen/ts/livemesh/gift/v1/gift.js';
import { GiftServiceClient } from '../../gen/ts/livemesh/gift/v1/gift.js';
import { boundPort, listen } from '../../bff/app.js';
import { TokenVerifier } from '../../bff/auth.js';
import { signTopup } from '../../bff/routes/wallet.js';
import { parseBffConfig, type BffConfig } from '../../bff/config.js';
import { createBff, type Bff } from '../../bff/wiring.js';
import type { Role } from '../../kit/identity.js';
import type { Server as ServiceProcess } from '../../scripts/mesh.js';
import { spawnService, stopServer } from './gift.js';
import type { Isolation } from '../../scripts/isolation.js';
import { as, LogCapture, unaryApi } from './room.js';

/** A port nothing listens on: an upstream that is down (never started, or killed). */
export const DEAD_ADDR = '127.0.0.1:1';

/** An in-process BFF on a free port, wired as main.ts wires it, on the isolation's Redis and NATS prefixes. */
export async function startBff(iso: Isolation, env: Record<string, string>) {
  const logs = new LogCapture();
  const config: BffConfig = parseBffConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    DRAIN_GRACE_MS: '0',
    // Generous budgets: the shared test machine is often loaded, and a slow answer is not what these tests are about.
    REQUEST_BUDGET_MS: '5000',
    OPTIONAL_DEADLINE_MS: '2000',
    RANKING_ADDR: DEAD_ADDR,
    CHAT_ADDR: DEAD_ADDR,
    LEDGER_ADDR: DEAD_ADDR,
    GIFT_ADDR: DEAD_ADDR,
    ROOM_ADDR: DEAD_ADDR,
    ...iso.env,
    ...env,
  });
  const log = pino({ level: 'info', base: { service: 'bff' } }, logs.stream);
  const bff: Bff = await createBff(config, log);
  const server: Server = await listen(bff.handler, '127.0.0.1', 0);
  bff.stream.attach(server);
  const base = `http://127.0.0.1:${boundPort(server)}`;
  const verifier = new TokenVerifier(config.JWT_SECRET, config.JWT_ISSUER);
  return {
    bff,
    config,
    server,
    base,
    logs,
    /** A bearer header for a user, signed as the identity provider would sign it. */
    async auth(userId: string, role: Role, name = `user${userId}`): Promise<Record<string, string>> {
      return { authorization: `Bearer ${await verifier.sign({ userId, role, name })}` };
    },
    async close() {
      // WebSockets first (as main.ts does): upgraded sockets would otherwise hold server.close open.
      bff.stream.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await bff.close();
    },
  };
}

export type BffServer = Awaited<ReturnType<typeof startBff>>;

/** A built service process on the isolation, with its own database (`<isolation db>_<name>`). */
export function spawnOn(name: 'gift' | 'ledger', iso: Isolation, env: Record<string, string>): Promise<ServiceProcess> {
  return spawnService(name, { ...iso.env, MYSQL_DATABASE: `${iso.database}_${name}`, ...env });
}

export { stopServer };

/** Kills a service process outright (an upstream crash, not a drain). */
export async function killService(server: ServiceProcess): Promise<void> {
  server.child.kill('SIGKILL');
  await server.exited;
}

/** A gift catalog with a default group, so every room shows the same gift bar. */
export async function seedGiftCatalog(giftAddr: string): Promise<{ rose: giftPb.Gift; rocket: giftPb.Gift; client: GiftServiceClient }> {
  const client = new GiftServiceClient(giftAddr, credentials.createInsecure());
  const api = unaryApi(client, giftPb);
  const admin = as('1', 'admin');
  const rose = (await api.upsertGift({ gift: { name: 'rose', priceMinor: '100', iconKey: 'icons/rose.png', effectKey: 'rose' } }, admin)).gift!;
  const rocket = (await api.upsertGift({ gift: { name: 'rocket', priceMinor: '50000', iconKey: 'icons/rocket.png', effectKey: 'rocket' } }, admin)).gift!;
  await api.upsertGiftGroup({ giftGroup: { name: 'standard', giftIds: [rose.giftId, rocket.giftId], isDefault: true } }, admin);
  return { rose, rocket, client };
}

/** fetch with a JSON body. */
export function send(base: string, method: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${base}${path}`, { method, headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

/** The JSON body of a response, typed loosely for assertions. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- deliberately `any`: tests walk response bodies field by field
export async function json(res: Response): Promise<any> {
  return res.json();
}

/** Polls until `check` passes or `ms` runs out; for effects that arrive asynchronously (NATS, caches). */
export async function until<T>(what: string, get: () => T | Promise<T>, check: (v: T) => boolean, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await get();
    if (check(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
}

/**
 * A GET through node:http: the body exactly as sent (fetch decodes it), and no headers added
 * (fetch adds `Cache-Control: no-cache` to a request carrying If-None-Match, which makes Express
 * refuse a 304).
 */
export function rawGet(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    request(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    })
      .on('error', reject)
      .end();
  });
}

/** The payment provider's top-up callback to `base`, signed with `secret` as the provider signs it. */
export function providerTopup(base: string, secret: string, body: object): Promise<Response> {
  const raw = JSON.stringify(body);
  const ts = Math.floor(Date.now() / 1000);
  return send(base, 'POST', '/v1/wallet/topups', raw, { 'x-signature': signTopup(secret, ts, raw), 'x-signature-timestamp': String(ts) });
}
