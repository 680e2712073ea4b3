/**
 * Cases for every BFF route, listed from the OpenAPI document the BFF serves (plus the routes the
 * document leaves out: the demo page and its token route), and a small HTTP client that sends
 * exactly the bytes a case describes, odd methods and broken encodings included.
 */
import { createHmac } from 'node:crypto';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { brotliDecompressSync, gunzipSync, gzipSync, inflateSync } from 'node:zlib';
import { SignJWT } from 'jose';
import { TokenVerifier } from '../../bff/auth.js';
import { DEV_JWT_SECRET, DEV_TOPUP_SECRET } from '../../bff/config.js';
import { openApiDocument } from '../../bff/openapi.js';
import { SWITCHES } from '../../bff/switches.js';
import { signTopup } from '../../bff/routes/wallet.js';
import type { Role } from '../../kit/identity.js';
import type { Rng } from '../random.js';
import { day, key, title, wildBigInt, wildDay, wildString, word, type Known } from './values.js';

type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  maxLength?: number;
  anyOf?: JsonSchema[];
  default?: unknown;
};
type Param = { name: string; in: 'path' | 'query' | 'header'; required?: boolean; schema?: JsonSchema };

export interface RouteTarget {
  /** `POST /v1/rooms/{id}/gifts` */
  name: string;
  method: string;
  template: string;
  params: Param[];
  body: JsonSchema | undefined;
  /** Needs a signed-in user (OpenAPI `security`). */
  secured: boolean;
  /** A WebSocket route: cases ask for an upgrade. */
  websocket: boolean;
}

/** Every route of the BFF, from its own OpenAPI document, plus the demo page and unrouted paths it does not describe. */
export function routeTargets(): RouteTarget[] {
  const doc = openApiDocument() as { paths: Record<string, Record<string, { parameters?: Param[]; requestBody?: { content: Record<string, { schema: JsonSchema }> }; security?: unknown[] }>> };
  const out: RouteTarget[] = [];
  for (const [template, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      out.push({
        name: `${method.toUpperCase()} ${template}`,
        method: method.toUpperCase(),
        template,
        params: op.parameters ?? [],
        body: op.requestBody?.content['application/json']?.schema,
        // `[{}, { bearer: [] }]` is an optional token (public screens); only a list without `{}` requires one.
        secured: (op.security?.length ?? 0) > 0 && !(op.security ?? []).some((s) => typeof s === 'object' && s !== null && Object.keys(s).length === 0),
        websocket: template.endsWith('/stream'),
      });
    }
  }
  const extra = (method: string, template: string, body?: JsonSchema): RouteTarget => ({ name: `${method} ${template}`, method, template, params: [], body, secured: false, websocket: false });
  out.push(
    // The demo page and its script are not API, so the document leaves them out.
    extra('GET', '/'),
    extra('GET', '/demo.js'),
    // Paths no route matches, with any method: the 404 handler and Express's own parsing.
    extra('ANY', '/{random}'),
  );
  return out;
}

/** Tokens of every kind, minted before the run so cases can pick one synchronously. */
export interface TokenPool {
  byRole: Record<Role, string[]>;
  /** Tokens that must be refused: expired, foreign-signed, unsigned, bad claims, garbage. */
  bad: string[];
}

export async function mintTokens(known: Known, rng: Rng, secret = DEV_JWT_SECRET): Promise<TokenPool> {
  const verifier = new TokenVerifier(secret);
  const sign = (userId: string, role: Role) => verifier.sign({ userId, role, name: rng.chance(0.3) ? wildString(rng).slice(0, 80) : `fuzz${userId}` });
  const others = Array.from({ length: 300 }, () => String(rng.int(100_000, 9_000_000)));
  const byRole: Record<Role, string[]> = {
    viewer: await Promise.all([...known.viewers, ...others].map((u) => sign(u, 'viewer'))),
    streamer: await Promise.all(known.streamers.map((u) => sign(u, 'streamer'))),
    admin: await Promise.all(known.admins.map((u) => sign(u, 'admin'))),
  };
  const key = new TextEncoder().encode(secret);
  const now = Math.floor(Date.now() / 1000);
  const claims = (extra: Record<string, unknown>) => new SignJWT({ role: 'viewer', name: 'x', ...extra }).setProtectedHeader({ alg: 'HS256' });
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const bad = [
    await claims({}).setSubject('1001').setIssuedAt(now - 7200).setExpirationTime(now - 3600).sign(key),
    await new TokenVerifier('another-secret-another-secret-another-secret').sign({ userId: '1001', role: 'admin', name: 'x' }),
    `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: '1001', role: 'admin', exp: now + 3600 })}.`,
    await claims({}).setSubject('abc').setExpirationTime(now + 3600).sign(key),
    await claims({}).setSubject('0').setExpirationTime(now + 3600).sign(key),
    await claims({}).setSubject('-5').setExpirationTime(now + 3600).sign(key),
    await claims({}).setSubject('99999999999999999999').setExpirationTime(now + 3600).sign(key),
    await claims({ role: 'god' }).setSubject('1001').setExpirationTime(now + 3600).sign(key),
    await claims({ role: 7 }).setSubject('1001').setExpirationTime(now + 3600).sign(key),
    await claims({ name: { nested: true } }).setSubject('1001').setExpirationTime(now + 3600).sign(key),
    await new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(now + 3600).sign(key),
    await claims({}).setSubject('1001').setNotBefore(now + 3600).setExpirationTime(now + 7200).sign(key),
    'a.b.c',
    'e30.e30.',
    'x'.repeat(9000),
  ];
  return { byRole, bad };
}

export interface HttpCase {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** The server may close the connection before reading the whole body (larger than its limit). */
  mayReset?: boolean;
  /** Ask for a WebSocket upgrade. */
  upgrade?: boolean;
}

const ODD_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'PROPFIND', 'FUZZ', 'M-SEARCH', 'PURGE'];

/** One request for a route: mostly well-formed so handlers run, with every part sometimes broken. */
export function httpCase(route: RouteTarget, rng: Rng, known: Known, tokens: TokenPool, bodyLimit: number): HttpCase {
  const headers: Record<string, string> = {
    // Many addresses (the mesh trusts one proxy hop), so the per-address limit rarely hides a handler.
    'x-forwarded-for': rng.chance(0.95) ? `10.${rng.int(0, 255)}.${rng.int(0, 255)}.${rng.int(1, 254)}` : rng.pick(['', 'garbage', '::1, ::1', '999.1.1.1', '1.1.1.1,'.repeat(100)]),
  };
  let method = route.method === 'ANY' ? rng.pick(ODD_METHODS) : route.method;
  if (route.method !== 'ANY' && rng.chance(0.08)) method = rng.pick(ODD_METHODS);
  // Node's client sends only printable ASCII in a path; anything else is percent-encoded first.
  const path = (fillPath(route, rng, known) + query(route, rng)).replace(/[^\x21-\x7e]/gu, (ch) => uriEncode(ch));
  const auth = authorization(route, rng, tokens);
  if (auth !== undefined) headers.authorization = auth;
  for (const p of route.params.filter((x) => x.in === 'header')) {
    if (p.name === 'Idempotency-Key' && rng.chance(0.92)) headers[p.name] = rng.chance(0.85) ? key(rng) : wildHeader(rng);
  }
  if (rng.chance(0.05)) headers['if-none-match'] = rng.pick(['*', 'W/"abc"', '"', wildHeader(rng)]);
  if (rng.chance(0.05)) headers['accept-encoding'] = rng.pick(['br', 'gzip;q=0', '*;q=NaN', 'identity, *;q=0', wildHeader(rng)]);
  const c: HttpCase = { method, path, headers };
  if (route.websocket && rng.chance(0.8)) {
    c.upgrade = true;
    Object.assign(headers, { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': rng.chance(0.9) ? '13' : '8', 'sec-websocket-key': rng.chance(0.9) ? Buffer.from(rng.bytes(16)).toString('base64') : 'short' });
  }
  if (route.body || rng.chance(0.1)) {
    const b = body(route, rng, known, bodyLimit);
    c.body = b.body;
    c.mayReset = b.mayReset;
    Object.assign(headers, b.headers);
  }
  if (route.template === '/v1/wallet/topups') signCallback(c, rng);
  // Past Node's 16 KB header limit the server answers 431 and closes, possibly before the client has finished writing.
  if (c.path.length + Object.values(headers).reduce((n, v) => n + v.length + 40, 0) > 15_000) c.mayReset = true;
  return c;
}

function fillPath(route: RouteTarget, rng: Rng, known: Known): string {
  if (route.template === '/{random}') {
    return rng.pick(['/', '/v1', '/v1/', '/v1/rooms/', '/v2/rooms/1', '/V1/ROOMS', '/v1/rooms/1/', '/v1//rooms//1', '/%2e%2e/%2e%2e/etc/passwd', `/${uriEncode(wildString(rng)).slice(0, 2000)}`, '/v1/rooms/1/gifts/1', '/metrics', '/v1/admin', '/favicon.ico', `/v1/rooms/${'9'.repeat(5000)}`]);
  }
  return route.template.replace(/\{(\w+)\}/g, (_m, name: string) => {
    if (name === 'name') return rng.chance(0.7) ? rng.pick(Object.keys(SWITCHES)) : pathSegment(rng);
    if (rng.chance(0.75)) return rng.pick([...known.liveRoomIds, ...known.liveRoomIds, ...known.idleRoomIds]);
    return pathSegment(rng);
  });
}

/** encodeURIComponent, with lone surrogates (which it refuses) replaced first. */
function uriEncode(s: string): string {
  return encodeURIComponent(s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd'));
}

function pathSegment(rng: Rng): string {
  return rng.pick(['0', '-1', '1.5', 'abc', ' 1', '%20', '%00', '%ZZ', '%', '..', '%2F', '9223372036854775807', '9223372036854775808', '１２３', '1e3', '0x10', String(wildBigInt(rng)), uriEncode(wildString(rng)).slice(0, 3000)]);
}

function query(route: RouteTarget, rng: Rng): string {
  const parts: string[] = [];
  for (const p of route.params.filter((x) => x.in === 'query')) {
    if (!rng.chance(p.required ? 0.9 : 0.6)) continue;
    const value = rng.chance(0.75) ? saneValue(p.name, p.schema ?? {}, rng) : wildString(rng);
    const encoded = uriEncode(typeof value === 'string' ? value : JSON.stringify(value));
    parts.push(`${p.name}=${encoded}`);
    if (rng.chance(0.05)) parts.push(`${p.name}=${encoded}`); // repeated: an array in req.query
    if (rng.chance(0.03)) parts.push(`${p.name}[x]=1`);
  }
  if (rng.chance(0.1)) parts.push(rng.pick(['=', '&&', '%', '%ZZ=1', '__proto__[x]=1', 'constructor[prototype][x]=1', `q=${'a'.repeat(5000)}`, 'a=%E0%A4%A']));
  return parts.length > 0 ? `?${parts.join('&')}` : rng.chance(0.05) ? '?' : '';
}

function authorization(route: RouteTarget, rng: Rng, tokens: TokenPool): string | undefined {
  const roll = rng.next();
  const valid = route.secured || route.template === '/v1/me' ? 0.75 : 0.3;
  if (roll < valid) {
    const role: Role = rng.weighted([
      [5, 'viewer'],
      [3, 'streamer'],
      [2, 'admin'],
    ]);
    return `Bearer ${rng.pick(tokens.byRole[role])}`;
  }
  if (roll < valid + 0.12) return `Bearer ${rng.pick(tokens.bad)}`;
  if (roll < valid + 0.16) return rng.pick(['', 'Bearer', 'Bearer ', 'bearer x.y.z', 'Basic dXNlcjpwYXNz', `Bearer ${'a'.repeat(100)}=== x`, wildHeader(rng)]);
  return undefined;
}

/** A header value Node's client will send (printable, no CR/LF): header injection is not the subject here. */
function wildHeader(rng: Rng): string {
  return wildString(rng)
    .replace(/[^\x20-\x7e]/g, '')
    .slice(0, 4000);
}

function saneValue(name: string, schema: JsonSchema, rng: Rng, known?: Known): unknown {
  if (schema.enum) return rng.pick(schema.enum);
  if (schema.const !== undefined) return schema.const;
  if (schema.anyOf?.length) return saneValue(name, rng.pick(schema.anyOf), rng, known);
  if (known) {
    if (name === 'giftId') return rng.pick(known.giftIds);
    if (name === 'userId') return rng.pick(known.viewers);
  }
  if (name === 'from' || name === 'to') return day(rng);
  if (name === 'clientMessageId' || name === 'paymentReference') return key(rng);
  if (name === 'expectedUnitPriceMinor') return rng.chance(0.5) ? '100' : String(rng.int(1, 1000));
  if (name === 'amountMinor') return String(rng.int(1, 100_000));
  if (name === 'expectedVersion') return String(rng.int(1, 5));
  if (name === 'category') return rng.pick(['music', 'games', 'talk']);
  if (name === 'cursor') return '';
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  if (type === 'integer' || type === 'number') return rng.int(Math.max(schema.minimum ?? 1, 1), Math.min(schema.maximum ?? 10, 10));
  if (type === 'boolean') return rng.chance(0.5);
  return name === 'text' || name === 'title' || name === 'notice' || name === 'reason' ? title(rng) : word(rng);
}

function wildJson(rng: Rng, depth = 0): unknown {
  return rng.weighted<() => unknown>([
    [3, () => wildString(rng)],
    [2, () => rng.pick([0, -1, 1.5, 1e308, -0, 2 ** 53 + 1, 9999, 10000])],
    [1, () => rng.pick([true, false, null])],
    [1, () => (depth < 3 ? Array.from({ length: rng.int(0, 4) }, () => wildJson(rng, depth + 1)) : [])],
    [1, () => (depth < 3 ? { [word(rng)]: wildJson(rng, depth + 1) } : {})],
    [1, () => String(wildBigInt(rng))],
    [1, () => wildDay(rng)],
  ])();
}

function body(route: RouteTarget, rng: Rng, known: Known, bodyLimit: number): { body: Buffer; mayReset: boolean; headers: Record<string, string> } {
  const schema = route.body ?? { type: 'object', properties: {} };
  const props = Object.entries(schema.properties ?? {});
  const shaped = () => {
    const obj: Record<string, unknown> = {};
    for (const [name, s] of props) {
      if (!(schema.required?.includes(name) ? rng.chance(0.95) : rng.chance(0.6))) continue;
      obj[name] = rng.chance(0.85) ? saneValue(name, s, rng, known) : wildJson(rng);
    }
    if (rng.chance(0.05)) obj[rng.pick(['__proto__', 'constructor', 'extra', word(rng)])] = wildJson(rng);
    return obj;
  };
  let text: string;
  let mayReset = false;
  const kind = rng.weighted<string>([
    [60, 'shaped'],
    [12, 'wild-values'],
    [8, 'not-object'],
    [8, 'malformed'],
    [4, 'deep'],
    [4, 'huge'],
    [4, 'empty'],
  ]);
  if (kind === 'shaped') text = JSON.stringify(shaped());
  else if (kind === 'wild-values') text = JSON.stringify(Object.fromEntries(props.map(([n]) => [n, wildJson(rng)])));
  else if (kind === 'not-object') text = JSON.stringify(wildJson(rng)) ?? 'null';
  else if (kind === 'malformed') {
    const good = JSON.stringify(shaped());
    text = rng.pick([good.slice(0, rng.int(0, good.length - 1)), `${good}}`, good.replace(/"/g, "'"), '{"a":1,}', '{', 'nul', '\ufeff{}', `{"x":"\\ud800"}`, `{"x":"\\u00"}`, '[1,2', '{"count":01}', '{"count":1e400}', 'NaN']);
  } else if (kind === 'deep') {
    const n = rng.int(100, 5000);
    text = rng.chance(0.5) ? `${'['.repeat(n)}${']'.repeat(n)}` : `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
  } else if (kind === 'huge') {
    mayReset = true;
    text = JSON.stringify({ ...shaped(), pad: 'x'.repeat(rng.pick([bodyLimit - 100, bodyLimit + 1, bodyLimit * 4, 2_000_000])) });
  } else text = '';
  const headers: Record<string, string> = {};
  const ct = rng.weighted<string | undefined>([
    [85, 'application/json'],
    [2, 'application/json; charset=utf-8'],
    [2, rng.pick(['application/json; charset=latin1', 'application/json; charset=utf-16', 'application/json; charset=bogus'])],
    [2, 'text/plain'],
    [2, 'application/x-www-form-urlencoded'],
    [1, 'multipart/form-data; boundary=x'],
    [1, 'application/vnd.api+json'],
    [2, undefined],
    [1, rng.pick(['', ';;;', 'application/', '*/*', 'application/json; charset'])],
  ]);
  if (ct !== undefined) headers['content-type'] = ct;
  let bytes = Buffer.from(text);
  const encoding = rng.weighted<string | undefined>([
    [95, undefined],
    [2, 'gzip'],
    [1, 'gzip-broken'],
    [1, 'deflate'],
    [1, rng.pick(['br', 'x-unknown', 'identity', 'gzip, gzip'])],
  ]);
  if (encoding === 'gzip') {
    bytes = gzipSync(bytes);
    headers['content-encoding'] = 'gzip';
  } else if (encoding === 'gzip-broken') {
    bytes = Buffer.concat([gzipSync(bytes).subarray(0, 12), Buffer.from(rng.bytes(16))]);
    headers['content-encoding'] = 'gzip';
  } else if (encoding !== undefined) {
    headers['content-encoding'] = encoding;
  }
  return { body: bytes, mayReset, headers };
}

/** Top-up callbacks are signed by the payment provider; most cases carry a good signature so the Ledger is reached. */
function signCallback(c: HttpCase, rng: Rng): void {
  const now = Math.floor(Date.now() / 1000);
  const ts = rng.weighted<number>([
    [85, now],
    [5, now - 3600],
    [5, now + 10_000],
    [5, Number.NaN],
  ]);
  if (!Number.isNaN(ts)) c.headers['x-signature-timestamp'] = String(ts);
  else if (rng.chance(0.5)) c.headers['x-signature-timestamp'] = rng.pick(['abc', '1e3', '', '-1', '99999999999999999999']);
  if (rng.chance(0.85)) c.headers['x-signature'] = signTopup(DEV_TOPUP_SECRET, ts, c.body ?? Buffer.alloc(0));
  else if (rng.chance(0.5)) c.headers['x-signature'] = rng.pick(['sha256=', `sha256=${'0'.repeat(64)}`, 'md5=abc', `sha256=${createHmac('sha256', 'x').update('y').digest('hex')}`]);
}

export interface HttpOutcome {
  /** HTTP status, 101 for an accepted upgrade, 0 when no response came. */
  status: number;
  contentType: string;
  body: string;
  /** The socket error when no response came. */
  error?: string;
}

const MAX_KEPT_BODY = 1_048_576;
/** Stands for a body too long to keep; only error bodies are inspected, and those are small. */
export const TRUNCATED = '<body longer than kept>';

/** The body as text, after undoing its content coding; a coding that does not decode is said so. */
function decoded(raw: Buffer, encoding: string): string {
  try {
    const enc = encoding.trim().toLowerCase();
    const plain = enc === 'br' ? brotliDecompressSync(raw) : enc === 'gzip' ? gunzipSync(raw) : enc === 'deflate' ? inflateSync(raw) : raw;
    return plain.toString('utf8');
  } catch (err) {
    return `<${encoding} body that does not decode: ${(err as Error).message}>`;
  }
}

/** Sends a case and resolves with its outcome; never rejects. */
export function sendHttp(baseUrl: string, agent: Agent, c: HttpCase, timeoutMs = 15_000): Promise<HttpOutcome> {
  const url = new URL(baseUrl);
  return new Promise((resolve) => {
    let settled = false;
    const finish = (o: HttpOutcome) => {
      if (settled) return;
      settled = true;
      resolve(o);
    };
    const headers: Record<string, string | number> = { ...c.headers };
    if (c.body !== undefined) headers['content-length'] = c.body.length;
    const req = request({ host: url.hostname, port: url.port, method: c.method, path: c.path, headers, agent: c.upgrade ? false : agent, timeout: timeoutMs });
    req.on('upgrade', (_res, socket) => {
      socket.destroy();
      finish({ status: 101, contentType: '', body: '' });
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let kept = 0;
      res.on('data', (chunk: Buffer) => {
        if (kept < MAX_KEPT_BODY) {
          chunks.push(chunk);
          kept += chunk.length;
        }
      });
      const done = () =>
        finish({ status: res.statusCode ?? 0, contentType: headerOf(res.headers, 'content-type'), body: kept > MAX_KEPT_BODY ? TRUNCATED : decoded(Buffer.concat(chunks), headerOf(res.headers, 'content-encoding')) });
      res.on('end', done);
      res.on('error', done);
      res.on('aborted', done);
    });
    req.on('timeout', () => {
      req.destroy(new Error(`no response within ${timeoutMs} ms`));
    });
    req.on('error', (err) => finish({ status: 0, contentType: '', body: '', error: `${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}`.trim() }));
    if (c.body !== undefined) req.end(c.body);
    else req.end();
  });
}

function headerOf(headers: IncomingHttpHeaders, name: string): string {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : (v ?? '');
}

/** A curl command that sends the same request again. */
export function curlOf(baseUrl: string, c: HttpCase): string {
  const q = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
  const parts = ['curl', '-sS', '-X', c.method === 'HEAD' ? 'HEAD' : q(c.method)];
  for (const [k, v] of Object.entries(c.headers)) parts.push('-H', q(`${k}: ${v}`));
  if (c.body !== undefined && c.body.length > 0) {
    const printable = !c.headers['content-encoding'] && c.body.length <= 2000 && /^[\x20-\x7e]*$/.test(c.body.toString('latin1'));
    if (printable) parts.push('--data-binary', q(c.body.toString('utf8')));
    else parts.push('--data-binary', `@<(echo ${c.body.subarray(0, 20_000).toString('base64')} | base64 -d)${c.body.length > 20_000 ? ` # first 20000 of ${c.body.length} bytes` : ''}`);
  }
  parts.push(q(`${baseUrl}${c.path}`));
  return parts.join(' ');
}
