/**
 * The typed contract: /openapi.json documents every route Express serves (a new route without
 * documentation fails here), and every route's real answers, good and bad, from a real mesh
 * (Room, Ledger, Gift, Chat, Ranking on MariaDB, Redis and NATS) validate against the schema
 * documented for their status. Response objects are closed, so a field a route adds or drops
 * without its schema line fails the validation.
 *
 * Validation is ajv's draft 2020-12 build (OpenAPI 3.1's schema dialect), strict about the
 * schemas themselves. Formats are not asserted (zod already puts a pattern next to each one). The
 * document as a whole is checked against the OpenAPI 3.1 specification's own JSON Schema by
 * @seriousme/openapi-schema-validator (small, ajv-based, resolves every $ref).
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isolate } from '../scripts/isolation.js';
import { json, providerTopup, send, startBff, until, type BffServer } from './support/bff.js';
import { startBffMesh, type BffMesh } from './support/bff-mesh.js';
import { openStream, refusal } from './support/bff-stream.js';

const iso = isolate('bffopenapi');
let mesh: BffMesh;
let bff: BffServer;
let roseId = '';

const STREAMER = '5600';
const FAN = '7900';
const BODY_LIMIT = 4096;

type Json = Record<string, unknown>;
interface Doc {
  paths: Record<string, Record<string, { responses: Record<string, Json>; tags: string[] }>>;
  components: { schemas: Record<string, Json>; responses: Record<string, Json> };
}
let doc: Doc;
const ajv = new Ajv2020({ strict: true, allErrors: true, validateFormats: false });
const BASE = 'https://livemesh.test/schemas/';

/** `METHOD /path/{param}` → the statuses whose real bodies were validated. */
const validated = new Map<string, Set<number>>();

beforeAll(async () => {
  mesh = await startBffMesh(iso, {
    rankingSnapshotMs: 300,
    bffEnv: { DEMO: 'on', RATE_LIMIT_IP_PER_S: '0', RATE_LIMIT_USER_PER_S: '0', BODY_LIMIT_BYTES: String(BODY_LIMIT), CACHE_TTL_MS: '200' },
  });
  ({ bff, roseId } = mesh);

  const res = await fetch(`${bff.base}/openapi.json`);
  expect(res.status).toBe(200);
  doc = (await res.json()) as Doc;
  // Component references become absolute ids so ajv resolves them without the rest of the document.
  const schemas = JSON.parse(JSON.stringify(doc.components.schemas).replaceAll('"#/components/schemas/', `"${BASE}`)) as Record<string, Json>;
  for (const [id, schema] of Object.entries(schemas)) ajv.addSchema({ ...schema, $id: `${BASE}${id}` });
}, 120_000);

afterAll(async () => {
  await mesh?.close();
});

/** The component schema a `$ref` names, compiled. */
function validatorFor(ref: string): ValidateFunction {
  const validate = ajv.getSchema(`${BASE}${ref.replace('#/components/schemas/', '')}`);
  if (!validate) throw new Error(`no schema ${ref}`);
  return validate;
}

/** The documented response of an operation for a status (`default` when not listed), resolved. */
function documented(op: string, status: number): { schema?: string; headers: string[] } {
  const [method = '', path = ''] = op.split(' ');
  const operation = doc.paths[path]?.[method.toLowerCase()];
  if (!operation) throw new Error(`${op} is not documented`);
  let response = operation.responses[String(status)] ?? (status >= 400 ? operation.responses.default : undefined);
  if (!response) throw new Error(`${op} answered ${status}, which its documentation does not list`);
  if (typeof response.$ref === 'string') response = doc.components.responses[response.$ref.replace('#/components/responses/', '')] ?? {};
  const content = response.content as Record<string, { schema: { $ref: string } }> | undefined;
  return { schema: content?.['application/json']?.schema.$ref, headers: Object.keys((response.headers as Json | undefined) ?? {}) };
}

/** Validates a real body against what `op` documents for `status`, and records the coverage. */
function conforms(op: string, status: number, body: unknown): void {
  const { schema } = documented(op, status);
  if (!schema) throw new Error(`${op} ${status} documents no JSON body`);
  const validate = validatorFor(schema);
  if (!validate(body)) throw new Error(`${op} ${status} does not match ${schema}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body)}`);
  if (!validated.has(op)) validated.set(op, new Set());
  validated.get(op)?.add(status);
}

interface CallOptions {
  /** Another BFF than the main one. */
  on?: BffServer;
  params?: Record<string, string>;
  query?: string;
  body?: unknown;
  headers?: Record<string, string>;
  /** The status the test expects (a mismatch fails with the body, before validation); any documented one when absent. */
  expect?: number;
}

/** Calls `op` (e.g. `POST /v1/rooms/{id}/gifts`) on the BFF and validates the answer; resolves to its body. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- deliberately `any`: the body was just validated against its schema
async function call(op: string, opts: CallOptions): Promise<any> {
  return (await answer(op, opts)).body;
}

/** Like `call`, with the status: for answers whose status the test cannot know in advance. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- as in `call`
async function answer(op: string, opts: CallOptions): Promise<{ status: number; body: any }> {
  const [method = '', template = ''] = op.split(' ');
  const path = template.replace(/\{(\w+)\}/g, (_m, name: string) => encodeURIComponent(opts.params?.[name] ?? ''));
  const url = `${path}${opts.query ? `?${opts.query}` : ''}`;
  const base = (opts.on ?? bff).base;
  const res = opts.body === undefined ? await fetch(`${base}${url}`, { method, headers: opts.headers ?? {} }) : await send(base, method, url, opts.body, opts.headers ?? {});
  const body: unknown = await json(res);
  if (opts.expect !== undefined && res.status !== opts.expect) throw new Error(`${op} answered ${res.status}, expected ${opts.expect}: ${JSON.stringify(body)}`);
  conforms(op, res.status, body);
  // The headers the documentation promises for this status (Retry-After, WWW-Authenticate, ETag…) are sent.
  for (const header of documented(op, res.status).headers) expect(res.headers.get(header), `${op} ${res.status}: ${header}`).not.toBeNull();
  return { status: res.status, body };
}

/** `METHOD /path` of every route registered on an Express 5 app, through nested routers. */
function routesOf(app: unknown): string[] {
  type Layer = { route?: { path: string; methods: Record<string, boolean> }; handle?: { stack?: Layer[] } };
  const out: string[] = [];
  const walk = (stack: Layer[]) => {
    for (const layer of stack) {
      if (layer.route) for (const m of Object.keys(layer.route.methods)) out.push(`${m.toUpperCase()} ${layer.route.path.replace(/:(\w+)/g, '{$1}')}`);
      else if (layer.handle?.stack) walk(layer.handle.stack);
    }
  };
  walk((app as { router: { stack: Layer[] } }).router.stack);
  return out;
}

/** The demo page and its script are HTML and JavaScript for browsers, not API. */
const NOT_API = new Set(['GET /', 'GET /demo.js']);
/** Served outside Express: the WebSocket handshake is an upgrade the gateway takes before routing. */
const UPGRADES = ['GET /v1/rooms/{id}/stream'];

describe('the document', () => {
  it('is a valid OpenAPI 3.1 document whose references all resolve', async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(doc) as unknown as Record<string, unknown>);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('lists every route Express serves (and only those), each with a schema for every status', () => {
    const served = [...new Set(routesOf(bff.bff.app))].filter((r) => !NOT_API.has(r));
    const listed = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    expect(listed.sort()).toEqual([...served, ...UPGRADES].sort());
    for (const op of listed) {
      const [method = '', path = ''] = op.split(' ');
      const responses = doc.paths[path]?.[method.toLowerCase()]?.responses ?? {};
      const statuses = Object.keys(responses);
      expect(statuses.some((s) => /^[12]\d\d$/.test(s)), `${op} documents its success`).toBe(true);
      for (const status of statuses.filter((s) => s !== '304' && s !== '101')) {
        // Every documented status has a JSON schema that ajv compiles (strict: unknown keywords fail).
        const { schema } = documented(op, status === 'default' ? 599 : Number(status));
        expect(schema, `${op} ${status}`).toMatch(/^#\/components\/schemas\//);
        validatorFor(schema ?? '');
      }
    }
  });

  it('says how to authenticate: a bearer JWT per operation, public screens without', () => {
    const bearer = (doc.components as unknown as { securitySchemes: { bearer: Json } }).securitySchemes.bearer;
    expect(bearer).toMatchObject({ type: 'http', scheme: 'bearer', bearerFormat: expect.stringMatching(/^JWT/) });
    expect(bearer.description).toMatch(/\/demo\/token/);
    const security = (path: string, method: string) => (doc.paths[path]?.[method] as unknown as { security: unknown[] }).security;
    expect(security('/v1/me', 'get')).toEqual([{ bearer: [] }]);
    expect(security('/v1/rooms/{id}', 'get')).toEqual([{}, { bearer: [] }]);
    expect(security('/v1/wallet/topups', 'post')).toEqual([]);
    expect(security('/healthz', 'get')).toEqual([]);
  });

  it('the validator fails a body with an undocumented field or without a required one', async () => {
    const real = await call('GET /healthz', { expect: 200 });
    expect(() => conforms('GET /healthz', 200, { ...real, uptime: 1 })).toThrow(/must NOT have additional properties/);
    const entryError = { error: { code: 'NOT_FOUND', message: 'x' } };
    expect(() => conforms('GET /v1/rooms/{id}', 404, entryError)).not.toThrow();
    expect(() => conforms('GET /v1/rooms/{id}', 404, { error: { code: 'NOT_FOUND' } })).toThrow(/must have required property 'message'/);
    expect(() => conforms('GET /v1/rooms/{id}', 404, { error: { ...entryError.error, detail: 'x' } })).toThrow(/additional properties/);
  });
});

describe('every route answers what its documentation says', () => {
  let streamer: Record<string, string>;
  let fan: Record<string, string>;
  let admin: Record<string, string>;
  let roomId = '';
  let orderId = '';

  beforeAll(async () => {
    streamer = await bff.auth(STREAMER, 'streamer', 'Night Singer');
    fan = await bff.auth(FAN, 'viewer', 'Fan');
    admin = await bff.auth('1', 'admin', 'ops');
  });

  it('operations and development: probes, this document, demo tokens', async () => {
    await call('GET /healthz', { expect: 200 });
    await call('GET /readyz', { expect: 200 });
    await call('GET /openapi.json', { expect: 200 });
    const minted = await call('POST /demo/token', { body: { userId: '7901', role: 'viewer', name: 'demo' }, expect: 200 });
    expect(minted.token).toMatch(/^ey/);
    const bad = await call('POST /demo/token', { body: { userId: 'x', role: 'god' }, expect: 400 });
    expect(bad.error.fields.map((f: { field: string }) => f.field)).toEqual(['userId', 'role']);
  });

  it('streamer: create (and its retry), edit, go live; a viewer is refused, a stale edit conflicts', async () => {
    const create = { ...streamer, 'idempotency-key': 'openapi-room-1' };
    const created = await call('POST /v1/rooms', { body: { title: 'Contract night', category: 'music' }, headers: create, expect: 201 });
    roomId = created.room.id;
    expect((await call('POST /v1/rooms', { body: { title: 'Contract night', category: 'music' }, headers: create, expect: 201 })).room.id).toBe(roomId);
    await call('PATCH /v1/rooms/{id}', { params: { id: roomId }, body: { notice: 'be kind' }, headers: streamer, expect: 200 });
    await call('POST /v1/rooms/{id}/live', { params: { id: roomId }, headers: streamer, expect: 200 });

    await call('POST /v1/rooms', { body: { title: 'nope' }, headers: { ...fan, 'idempotency-key': 'openapi-room-2' }, expect: 403 });
    const stale = await call('PATCH /v1/rooms/{id}', { params: { id: roomId }, body: { title: 'x', expectedVersion: created.room.version }, headers: streamer, expect: 409 });
    expect(stale.error.reason).toBe('VERSION_CONFLICT');
    await call('PATCH /v1/rooms/{id}', { params: { id: roomId }, body: {}, headers: streamer, expect: 400 });
  });

  it('payment provider: credits a top-up once; a bad signature is a 401', async () => {
    const topup = { paymentReference: 'openapi-pay-1', userId: FAN, amountMinor: '100000', provider: 'test' };
    const sendTopup = async (expected: number) => {
      const res = await providerTopup(bff.base, bff.config.TOPUP_SECRET, topup);
      const body: unknown = await json(res);
      expect(res.status, JSON.stringify(body)).toBe(expected);
      conforms('POST /v1/wallet/topups', res.status, body);
    };
    await sendTopup(201);
    await sendTopup(200);
    await call('POST /v1/wallet/topups', { body: topup, headers: { 'x-signature': `sha256=${'0'.repeat(64)}`, 'x-signature-timestamp': String(Math.floor(Date.now() / 1000)) }, expect: 401 });
  });

  it('rooms: the screens and what viewers do, with bad input, unknown rooms and bad tokens refused', async () => {
    const key = { ...fan, 'idempotency-key': 'openapi-gift-1' };
    const sent = await call('POST /v1/rooms/{id}/gifts', { params: { id: roomId }, body: { giftId: roseId, count: 2 }, headers: key, expect: 201 });
    orderId = sent.order.id;
    expect((await call('POST /v1/rooms/{id}/gifts', { params: { id: roomId }, body: { giftId: roseId, count: 2 }, headers: key, expect: 200 })).replayed).toBe(true);
    await call('POST /v1/rooms/{id}/chat', { params: { id: roomId }, body: { text: 'hello contract', clientMessageId: 'openapi-chat-1' }, headers: fan, expect: 201 });
    await call('POST /v1/rooms/{id}/likes', { params: { id: roomId }, body: { count: 3 }, headers: fan, expect: 200 });

    // The entry screen with its events (chat, gift, likes) once Chat has them.
    const entry = await until(
      'the room screen with its messages',
      async () => call('GET /v1/rooms/{id}', { params: { id: roomId }, headers: fan, expect: 200 }),
      (b) => (b.messages ?? []).some((m: { type: string }) => m.type === 'chat'),
      30_000,
    );
    expect(entry.room.id).toBe(roomId);
    await call('GET /v1/rooms/{id}/gifts', { params: { id: roomId }, expect: 200 });
    await until('the ranking', async () => call('GET /v1/rooms/{id}/ranking', { params: { id: roomId }, query: 'period=live&limit=5', expect: 200 }), (b) => b.entries.length > 0, 30_000);
    await call('GET /v1/rooms/{id}/ranking', { params: { id: roomId }, query: 'period=day', expect: 200 });
    const live = await call('GET /v1/rooms', { query: 'live=1', expect: 200 });
    expect(live.rooms.map((r: { id: string }) => r.id)).toContain(roomId);

    const notFound = await call('GET /v1/rooms/{id}', { params: { id: '999999999' }, expect: 404 });
    expect(notFound.error.reason).toBe('ROOM_NOT_FOUND');
    expect((await call('GET /v1/rooms/{id}', { params: { id: 'abc' }, expect: 400 })).error.field).toBe('id');
    await call('GET /v1/rooms/{id}/ranking', { params: { id: roomId }, query: 'period=year', expect: 400 });
    await call('GET /v1/rooms', { query: 'live=0', expect: 400 });
    await call('GET /v1/rooms/{id}/gifts', { params: { id: roomId }, headers: { authorization: 'Bearer not.a.token' }, expect: 401 });
    expect((await call('POST /v1/rooms/{id}/gifts', { params: { id: roomId }, body: { giftId: roseId }, headers: fan, expect: 400 })).error.field).toBe('Idempotency-Key');
    const twoBad = await call('POST /v1/rooms/{id}/chat', { params: { id: roomId }, body: { text: '', colour: 'red' }, headers: fan, expect: 400 });
    expect(twoBad.error.fields).toHaveLength(2);
    await call('POST /v1/rooms/{id}/chat', { params: { id: roomId }, body: { text: 'x'.repeat(BODY_LIMIT) }, headers: fan, expect: 413 });
    await call('POST /v1/rooms/{id}/likes', { params: { id: roomId }, body: { count: 1 }, expect: 401 });
  });

  it('rooms: the stream handshake opens, and its refusals are the error shape', async () => {
    const stream = await openStream(bff.base, roomId);
    expect(stream.control[0]).toMatchObject({ type: 'hello' });
    stream.ws.close();
    for (const [path, status] of [
      ['/v1/rooms/0/stream', 400],
      ['/v1/rooms/999999999/stream', 404],
    ] as const) {
      const refused = await refusal(bff.base, path);
      expect(refused.status).toBe(status);
      conforms('GET /v1/rooms/{id}/stream', refused.status, refused.body);
    }
  });

  it('me: the me screen (viewer and streamer), income, history, an order; refusals', async () => {
    const me = await call('GET /v1/me', { headers: fan, expect: 200 });
    expect(me.wallet.incomeMinor).toBeNull();
    const streamerMe = await call('GET /v1/me', { headers: streamer, expect: 200 });
    expect(streamerMe.hostedRooms.map((r: { id: string }) => r.id)).toContain(roomId);
    const today = new Date().toISOString().slice(0, 10);
    await call('GET /v1/me/income', { query: `from=${today}&to=${today}`, headers: streamer, expect: 200 });
    await until('the consumption record', async () => call('GET /v1/me/consumption', { headers: fan, expect: 200 }), (b) => b.records.length > 0, 30_000);
    await call('GET /v1/me/consumption', { query: 'side=received&limit=5', headers: streamer, expect: 200 });
    await until('the top-up', async () => call('GET /v1/me/topups', { headers: fan, expect: 200 }), (b) => b.topups.length > 0, 30_000);
    await call('GET /v1/orders/{id}', { params: { id: orderId }, headers: fan, expect: 200 });

    await call('GET /v1/me', { expect: 401 });
    await call('GET /v1/me/income', { query: `from=${today}`, headers: streamer, expect: 400 });
    await call('GET /v1/me/income', { query: `from=${today}&to=${today}`, headers: fan, expect: 403 });
    await call('GET /v1/me/consumption', { query: 'side=both', headers: fan, expect: 400 });
    await call('GET /v1/me/topups', { query: 'limit=0', headers: fan, expect: 400 });
    await call('GET /v1/orders/{id}', { params: { id: '999999999' }, headers: fan, expect: 404 });
  });

  it('admin: switches, stuck orders, the gift catalog and a room’s group; a viewer is refused', async () => {
    await call('PUT /v1/admin/switches/{name}', { params: { name: 'me.recent' }, body: { off: false, reason: 'contract test' }, headers: admin, expect: 200 });
    const switches = await call('GET /v1/admin/switches', { headers: admin, expect: 200 });
    expect(switches.switches.find((s: { name: string }) => s.name === 'me.recent')).toMatchObject({ by: '1', reason: 'contract test' });
    await call('GET /v1/admin/gift-orders/stuck', { query: 'olderThanS=60', headers: admin, expect: 200 });

    const created = await call('POST /v1/admin/gifts', { body: { name: 'comet', priceMinor: '300', iconKey: 'icons/comet.png' }, headers: admin, expect: 201 });
    const giftId = created.gift.id;
    await call('PUT /v1/admin/gifts/{id}', { params: { id: giftId }, body: { name: 'comet', priceMinor: '350', iconKey: 'icons/comet.png', expectedVersion: created.gift.version }, headers: admin, expect: 200 });
    const group = await call('POST /v1/admin/gift-groups', { body: { name: 'space', giftIds: [giftId, roseId] }, headers: admin, expect: 201 });
    await call('PUT /v1/admin/gift-groups/{id}', { params: { id: group.giftGroup.id }, body: { name: 'space', giftIds: [giftId], expectedVersion: group.giftGroup.version }, headers: admin, expect: 200 });
    const assigned = await call('PUT /v1/admin/rooms/{id}/gift-group', { params: { id: roomId }, body: { giftGroupId: group.giftGroup.id }, headers: admin, expect: 200 });
    expect(assigned.room.giftGroupId).toBe(group.giftGroup.id);
    expect((await call('PUT /v1/admin/rooms/{id}/gift-group', { params: { id: roomId }, body: { giftGroupId: null }, headers: admin, expect: 200 })).room.giftGroupId).toBeNull();

    await call('GET /v1/admin/switches', { headers: fan, expect: 403 });
    expect((await call('PUT /v1/admin/switches/{name}', { params: { name: 'nope' }, body: { off: true }, headers: admin, expect: 404 })).error.field).toBe('name');
    await call('POST /v1/admin/gifts', { body: { name: '', priceMinor: '0' }, headers: admin, expect: 400 });
    await call('PUT /v1/admin/gifts/{id}', { params: { id: giftId }, body: { name: 'comet', priceMinor: '1', iconKey: 'i', expectedVersion: created.gift.version }, headers: admin, expect: 409 });
  });

  it('streamer: stops the show', async () => {
    const stopped = await call('DELETE /v1/rooms/{id}/live', { params: { id: roomId }, headers: streamer, expect: 200 });
    expect(stopped.room.live).toBe(false);
    await call('DELETE /v1/rooms/{id}/live', { params: { id: roomId }, headers: fan, expect: 403 });
  });

  it('upstreams down and clients over their limit: 503 and 429 with Retry-After, in the error shape', async () => {
    // A second BFF whose Gift, Ledger, Chat and Ranking are down, and which allows one request per user per second.
    const degraded = await startBff(iso, { ROOM_ADDR: mesh.room.address, RATE_LIMIT_IP_PER_S: '0', RATE_LIMIT_USER_PER_S: '1' });
    try {
      const down = await call('GET /v1/rooms/{id}/gifts', { on: degraded, params: { id: roomId }, expect: 503 });
      expect(down.error).toMatchObject({ code: 'UNAVAILABLE', upstream: 'gift' });
      const entry = await call('GET /v1/rooms/{id}', { on: degraded, params: { id: roomId }, expect: 503 });
      expect(entry.error.upstream).toBe('gift');
      // Two at once for one user: one gets through to a Ledger that is down, the other is over the limit.
      const both = await Promise.all([0, 1].map(() => answer('GET /v1/me', { on: degraded, headers: fan })));
      expect(both.map((a) => a.status).sort()).toEqual([429, 503]);
      expect(both.find((a) => a.status === 429)?.body.error.reason).toBe('RATE_LIMITED');
      expect(both.find((a) => a.status === 503)?.body.error.upstream).toBe('ledger');
    } finally {
      await degraded.close();
    }
  });

  it('covered every documented operation: a validated success, and an error for each family', () => {
    const families = new Map<string, boolean>();
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(ops)) {
        const op = `${method.toUpperCase()} ${path}`;
        const statuses = [...(validated.get(op) ?? [])];
        // The stream's success is a protocol switch (checked above by opening one), not a body.
        if (!UPGRADES.includes(op)) expect(statuses.some((s) => s < 300), `${op}: no success validated`).toBe(true);
        const family = operation.tags[0] ?? '';
        families.set(family, (families.get(family) ?? false) || statuses.some((s) => s >= 400));
      }
    }
    // Probes have no errors of their own to provoke here (503 draining is the drain tests' business).
    families.delete('operations');
    expect([...families].filter(([, hasError]) => !hasError).map(([family]) => family)).toEqual([]);
  });
});
