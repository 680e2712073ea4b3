/**
 * Who a gRPC fuzz case says it is: the `authorization: Bearer <token>` metadata every service now
 * verifies before any handler runs.
 *
 * - good identities: tokens as the BFF mints them for seeded viewers and streamers, operators'
 *   admin tokens, the mesh services' own tokens (so the RPCs that only Gift, Chat, Ranking or the
 *   BFF may call run too), another team's operator-signed service token, or no token at all;
 * - bad identities ('identity' cases): every way a token can be wrong — expired (long ago, just
 *   past the clock tolerance, or expiring while the services have it cached), forged (signed with
 *   a fresh Ed25519 key under a real key id, or a real token with its payload or signature
 *   altered), for another audience, from an issuer that may not sign it, with bad claims, with
 *   another algorithm or none, broken JOSE headers and payloads, garbage `authorization` values,
 *   two credentials in one value, and the old `lm-user-id` / `lm-role` metadata with no token
 *   (which proves nothing and must not be trusted).
 *
 * INTERNAL, UNKNOWN or a crash is a failure, as for any other input. So is any answer but
 * UNAUTHENTICATED (or the transport's own: UNAVAILABLE, a deadline, a cancel, shedding) to a
 * credential that must be refused, which would mean a bad token got past the check. Choices come
 * from the case's seeded stream; only the tokens' timestamps depend on the clock.
 */
import { createHmac, createPrivateKey, sign as signBytes, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AUTH_METADATA_KEY, MESH_SERVICES, OPERATOR, signJwt } from '../../kit/auth.js';
import { DEV_AUTH_DIR } from '../../kit/config.js';
import type { Role } from '../../kit/identity.js';
import { devSigningKey, GRPC_SERVICES } from '../credentials.js';
import { otherTeamServiceToken, serviceToken, userToken } from '../tokens.js';
import type { Rng } from '../random.js';
import { wildString, type Known } from './values.js';

export type MetadataEntries = Array<[string, string | Buffer]>;

/**
 * A case's identity metadata, and `refuse`: why it is a credential every service must refuse
 * outright (UNAUTHENTICATED, never treated as anonymous or as anyone). Without it the answer
 * depends on the RPC (a valid token, no token, a service token on an RPC that does not name the
 * service, the old metadata, an odd token the verifier may accept).
 */
export interface Identity {
  metadata: MetadataEntries;
  refuse?: string;
}

const bearer = (token: string): MetadataEntries => [[AUTH_METADATA_KEY, `Bearer ${token}`]];
const nowS = () => Math.floor(Date.now() / 1000);
const b64 = (data: string | Buffer) => Buffer.from(data).toString('base64url');
/** What grpc-js accepts in a text metadata value (printable ASCII): anything else would fail in the client, not the server. */
const printable = (s: string, max = 4000) => s.replace(/[^\x20-\x7e]/g, '?').slice(0, max);

/** A development private key (the mesh under fuzzing runs with them). */
const devKey = devSigningKey;

/** PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
/** An Ed25519 key no service knows, from the case's own random stream (so the case replays). */
function foreignKey(rng: Rng): KeyObject {
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, Buffer.from(rng.bytes(32))]), format: 'der', type: 'pkcs8' });
}

/** A compact JWS from any header and payload text, signed by `sign` (or with an empty signature). */
function rawJws(header: unknown, payload: unknown, sign?: (input: Buffer) => Buffer): string {
  const h = b64(typeof header === 'string' ? header : JSON.stringify(header));
  const p = b64(typeof payload === 'string' ? payload : JSON.stringify(payload));
  const input = Buffer.from(`${h}.${p}`);
  return `${h}.${p}.${sign ? b64(sign(input)) : ''}`;
}
const ed25519 = (key: KeyObject) => (input: Buffer) => signBytes(null, input, key);

/** A user's claims as the BFF makes them, valid for five minutes. */
function userClaims(userId: string, role: Role, audience: readonly string[] = GRPC_SERVICES): Record<string, unknown> {
  const iat = nowS();
  return { kind: 'user', sub: userId, role, name: 'fuzz', aud: [...audience], iat, exp: iat + 300 };
}

/**
 * A token that expires a second after it is minted, reused by every case for 20 s: the services
 * verify it and cache it while it is good, then (past their 5 s clock tolerance) must refuse it
 * from the cache. Exercises expiry on the cached path, which one-off expired tokens never reach.
 */
let shortLived: { token: string; until: number } | undefined;
function shortLivedToken(userId: string): string {
  const now = Date.now();
  if (!shortLived || shortLived.until < now) {
    const iat = Math.floor(now / 1000);
    shortLived = { token: signJwt({ ...userClaims(userId, 'viewer'), iat, exp: iat + 1 }, 'bff', devKey('bff')), until: now + 20_000 };
  }
  return shortLived.token;
}

/** A real caller most of the time: seeded viewers, streamers and admins, the mesh's own services, or nobody. */
export function goodIdentity(rng: Rng, known: Known): Identity {
  const who = rng.weighted<'none' | 'viewer' | 'streamer' | 'admin' | 'service' | 'other-team'>([
    [10, 'none'],
    [40, 'viewer'],
    [20, 'streamer'],
    [30, 'admin'],
    [8, 'service'],
    [2, 'other-team'],
  ]);
  if (who === 'none') return { metadata: [] };
  if (who === 'service') return { metadata: bearer(serviceToken(rng.pick(MESH_SERVICES))) };
  if (who === 'other-team') return { metadata: bearer(otherTeamServiceToken(rng.pick(['payments', 'moderation', 'ads-billing']))) };
  const id = rng.pick(who === 'viewer' ? known.viewers : who === 'streamer' ? known.streamers : known.admins);
  const name = rng.chance(0.3) ? rng.pick(['fan', 'streamer one', 'x'.repeat(200), '']) : '';
  return { metadata: bearer(userToken(id, who, name)) };
}

/** Identity metadata that is present but wrong, for a call to `service` (`room`, `ledger`, …). */
export function badIdentity(rng: Rng, known: Known, service: string): Identity {
  const viewer = rng.pick(known.viewers);
  const bff = () => devKey('bff');
  const valid = () => userToken(viewer, 'viewer');
  const othersAudience = GRPC_SERVICES.filter((s) => s !== service);
  const refuse = (why: string, metadata: MetadataEntries): Identity => ({ metadata, refuse: why });
  const make = rng.weighted<() => Identity>([
    // Expired: long ago, just past the 5 s tolerance, or expiring while cached.
    [3, () => refuse('expired', bearer(signJwt({ ...userClaims(viewer, 'viewer'), iat: nowS() - 7200, exp: nowS() - 3600 }, 'bff', bff())))],
    [2, () => refuse('expired past the tolerance', bearer(signJwt({ ...userClaims(viewer, 'viewer'), iat: nowS() - 120, exp: nowS() - rng.int(6, 60) }, 'bff', bff())))],
    [2, () => ({ metadata: bearer(shortLivedToken(viewer)) })],
    [1, () => refuse('expired operator token', bearer(signJwt({ ...userClaims('1', 'admin'), iat: nowS() - 7200, exp: nowS() - 10 }, OPERATOR, devKey(OPERATOR))))],
    // Forged: a key nobody trusts under a real key id, or a real token altered.
    [3, () => refuse('signed with a foreign key', bearer(signJwt(userClaims(rng.pick(known.admins), 'admin'), rng.pick(['bff', OPERATOR, 'gift']), foreignKey(rng))))],
    [1, () => refuse('service token signed with a foreign key', bearer(signJwt({ kind: 'service', sub: 'gift', aud: [...GRPC_SERVICES], iat: nowS(), exp: nowS() + 300 }, 'gift', foreignKey(rng))))],
    [3, () => refuse('payload altered', bearer(alterPayload(valid(), rng)))],
    [2, () => refuse('signature altered', bearer(alterSignature(valid(), rng)))],
    // For someone else: another service's audience, none, or not a livemesh one at all.
    [3, () => refuse('wrong audience', bearer(signJwt({ ...userClaims(viewer, 'viewer'), aud: rng.chance(0.7) ? othersAudience : rng.pick(['bff', 'billing', '', service.toUpperCase()]) }, 'bff', bff())))],
    [1, () => refuse('no audience', bearer(signJwt({ ...userClaims(viewer, 'viewer'), aud: undefined }, 'bff', bff())))],
    [1, () => refuse('wrong audience', bearer(userToken(viewer, 'viewer', '', othersAudience)))],
    // Issuers signing what they may not, and tokens claiming to be from someone other than their key.
    [2, () => {
      const issuer = rng.pick(['chat', 'gift', 'room', 'ranking', 'ledger']);
      return refuse(`user token signed by ${issuer}`, bearer(signJwt(userClaims('1', 'admin'), issuer, devKey(issuer))));
    }],
    [2, () => refuse('service impersonation', impersonation(rng))],
    [1, () => refuse('iss is not the key id', bearer(signJwt({ ...userClaims(viewer, 'viewer'), iss: OPERATOR }, 'bff', bff())))],
    [1, () => refuse('lifetime too long', bearer(signJwt({ ...userClaims(viewer, 'viewer'), exp: nowS() + rng.pick([3600, 86_400, 10 * 365 * 86_400]) }, 'bff', bff())))],
    // Claims a verifier must check (a few odd ones it may let through).
    [4, () => {
      const [claims, why] = badClaim(rng);
      const metadata = bearer(signJwt({ ...userClaims(viewer, 'viewer'), ...claims }, 'bff', bff()));
      return why ? refuse(why, metadata) : { metadata };
    }],
    // Other algorithms, no signature, broken JOSE.
    [3, () => refuse('another algorithm or none', bearer(algorithmConfusion(rng, viewer)))],
    [3, () => {
      const [token, why] = brokenJose(rng, viewer);
      return why ? refuse(why, bearer(token)) : { metadata: bearer(token) };
    }],
    // A real token, but sent wrongly.
    [4, () => {
      const value = garbageAuthorization(rng, valid());
      // An empty value, or one with whitespace at either end, may not reach the server as sent.
      return value !== '' && value === value.trim() ? refuse('not "Bearer <token>"', [[AUTH_METADATA_KEY, value]]) : { metadata: [[AUTH_METADATA_KEY, value]] };
    }],
    [2, () => multipleValues(rng, valid())],
    // The old identity metadata, which no service may trust any more: alone, or beside a viewer's token.
    [3, () => ({ metadata: legacy(rng, known) })],
    [1, () => ({ metadata: [...legacy(rng, known), ...bearer(valid())] })],
    // Large: a valid token with a long name.
    [1, () => ({ metadata: bearer(signJwt({ ...userClaims(viewer, 'viewer'), name: printable(wildString(rng), 6000) }, 'bff', bff())) })],
  ]);
  return make();
}

/** A real token with its payload changed and the original signature kept. */
function alterPayload(token: string, rng: Rng): string {
  const [h, p, s] = token.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
  const change = rng.weighted<() => void>([
    [3, () => (claims.role = 'admin')],
    [2, () => (claims.sub = '1')],
    [1, () => (claims.exp = (claims.exp as number) + 86_400)],
    [1, () => (claims.kind = 'service')],
    [1, () => (claims.iss = OPERATOR)],
    [1, () => (claims.aud = [...GRPC_SERVICES, 'bff'])],
  ]);
  change();
  return `${h}.${b64(JSON.stringify(claims))}.${s}`;
}

/** A real token with a damaged signature: a flipped character, cut short, missing, or another token's. */
function alterSignature(token: string, rng: Rng): string {
  const [h, p, s] = token.split('.') as [string, string, string];
  return rng.weighted<() => string>([
    [3, () => {
      const i = rng.int(0, s.length - 1);
      return `${h}.${p}.${s.slice(0, i)}${s[i] === 'A' ? 'B' : 'A'}${s.slice(i + 1)}`;
    }],
    [1, () => `${h}.${p}.${s.slice(0, rng.int(0, s.length - 1))}`],
    [1, () => `${h}.${p}.`],
    [1, () => `${h}.${p}.${s}${s}`],
    [1, () => `${h}.${p}.${b64(Buffer.alloc(64))}`],
  ])();
}

/** Service tokens that name a service their key may not speak for. */
function impersonation(rng: Rng): MetadataEntries {
  const iat = nowS();
  const svc = (sub: string) => ({ kind: 'service', sub, aud: [...GRPC_SERVICES], iat, exp: iat + 300 });
  return rng.weighted<() => MetadataEntries>([
    // A compromised Chat minting as Gift (who may move money).
    [3, () => bearer(signJwt(svc('gift'), 'chat', devKey('chat')))],
    // The BFF claiming a service name, or an operator naming one of the mesh's own services.
    [2, () => bearer(signJwt(svc(rng.pick(['gift', 'ledger', 'chat'])), 'bff', devKey('bff')))],
    [2, () => bearer(signJwt(svc(rng.pick([...MESH_SERVICES])), OPERATOR, devKey(OPERATOR)))],
    // Bad service names.
    [2, () => bearer(signJwt(svc(rng.pick(['', 'Gift', '1gift', 'gift service', 'a'.repeat(80), '../gift'])), OPERATOR, devKey(OPERATOR)))],
    // Gift's real token carrying user claims: a service token is not a user.
    [1, () => bearer(signJwt({ ...svc('gift'), kind: 'user', role: 'admin' }, 'gift', devKey('gift')))],
  ])();
}

/** One claim wrong in a token that is otherwise good and properly signed, and why it must be refused (undefined: it may pass). */
function badClaim(rng: Rng): [Record<string, unknown>, string | undefined] {
  return rng.weighted<[Record<string, unknown>, string | undefined]>([
    [2, [{ sub: rng.pick(['', '0', '-1', 'abc', '1.5', ' 1', '9223372036854775808', '99999999999999999999', '0x10', '1001,1002']) }, 'sub is not a user id']],
    [1, [{ sub: rng.pick([null, true, { id: '1001' }] as unknown[]) }, 'sub is not a string']],
    // A `sub` that only stringifies to an id, and an `iat` in the future that makes a token years
    // long look short (found by this fuzz: both were accepted once).
    [1, [{ sub: rng.pick([1001, ['1001']] as unknown[]) }, 'sub is not a string']],
    [1, [{ iat: nowS() + 10 * 365 * 86_400 - 60, exp: nowS() + 10 * 365 * 86_400 }, 'iat in the future']],
    [1, [{ sub: undefined }, 'no sub']],
    [2, [{ role: rng.pick(['', 'root', 'ADMIN', 'viewer ', 'admin,viewer', 'Streamer', 'operator', 7, null, ['admin']] as unknown[]) }, 'unknown role']],
    [1, [{ role: undefined }, 'no role']],
    [2, [{ kind: rng.pick(['', 'robot', 'USER', 'Service', 1, null] as unknown[]) }, 'unknown kind']],
    [1, [{ kind: undefined }, 'no kind']],
    [1, [{ name: rng.pick([{ nested: true }, 42, null, ['a'], 'x'.repeat(2000)] as unknown[]) }, undefined]],
    [1, [{ exp: rng.pick(['9999999999', null, -1, 0, 1e308, 1.5, true] as unknown[]) }, 'bad exp']],
    [1, [{ exp: undefined }, 'no exp']],
    [1, [{ iat: rng.pick(['0', null, -1] as unknown[]) }, 'bad iat']],
    [1, [{ iat: rng.pick([nowS() + 3600, 1e308] as unknown[]) }, 'iat in the future']],
    [1, [{ iat: undefined }, 'no iat']],
    [1, [{ nbf: nowS() + 3600 }, 'not valid before an hour from now']],
    [1, [{ aud: rng.pick([42, null, {}, [], [42]] as unknown[]) }, 'bad aud']],
    [1, [{ aud: ['room', null] }, undefined]],
    [1, [{ constructor: 'x', toString: 1, hasOwnProperty: null }, undefined]],
  ]);
}

/** Tokens in another algorithm (HS256 keyed with the public key, ES256), or none at all. */
function algorithmConfusion(rng: Rng, viewer: string): string {
  const claims = { iss: 'bff', ...userClaims(viewer, 'admin') };
  const bffPublic = () => readFileSync(join(DEV_AUTH_DIR, 'public', 'bff.pem'));
  return rng.weighted<() => string>([
    [3, () => rawJws({ alg: 'none', typ: 'JWT', kid: 'bff' }, claims)],
    [1, () => rawJws({ alg: 'none', typ: 'JWT', kid: 'bff' }, claims, () => Buffer.from('x'))],
    [3, () => rawJws({ alg: 'HS256', typ: 'JWT', kid: 'bff' }, claims, (input) => createHmac('sha256', bffPublic()).update(input).digest())],
    [1, () => rawJws({ alg: 'ES256', typ: 'JWT', kid: 'bff' }, claims, ed25519(devKey('bff')))],
    [1, () => rawJws({ alg: 'Ed25519', typ: 'JWT', kid: 'bff' }, claims, ed25519(devKey('bff')))],
    [1, () => rawJws({ alg: rng.pick(['', 'eddsa', 'EDDSA', null, 1] as unknown[]), typ: 'JWT', kid: 'bff' }, claims, ed25519(devKey('bff')))],
  ])();
}

/** JOSE structure a parser must survive: odd headers and payloads, properly signed with the BFF's key; and why it must be refused (undefined: it may pass). */
function brokenJose(rng: Rng, viewer: string): [string, string | undefined] {
  const claims = { iss: 'bff', ...userClaims(viewer, 'viewer') };
  const signed = ed25519(devKey('bff'));
  const header = { alg: 'EdDSA', typ: 'JWT', kid: 'bff' };
  return rng.weighted<() => [string, string | undefined]>([
    // Key ids no key has, or none.
    [2, () => [rawJws({ ...header, kid: rng.pick(['', 'evil', '__proto__', 'constructor', 'BFF', '../public/bff', 'bff\u0000', 'x'.repeat(500)]) }, claims, signed), 'unknown key id']],
    [1, () => [rawJws({ alg: 'EdDSA', typ: 'JWT' }, claims, signed), 'no key id']],
    [1, () => [rawJws({ ...header, kid: rng.pick([1, null, ['bff'], { bff: true }] as unknown[]) }, claims, signed), 'key id not a string']],
    // Header parameters that change how a JWS is read.
    [1, () => [rawJws({ ...header, crit: ['exp'] }, claims, signed), 'unknown critical header']],
    [1, () => [rawJws({ ...header, b64: false, crit: ['b64'] }, claims, signed), 'unencoded payload']],
    [1, () => [rawJws({ ...header, jku: 'http://127.0.0.1:1/keys', jwk: { kty: 'OKP', crv: 'Ed25519', x: b64(Buffer.alloc(32)) } }, claims, signed), undefined]],
    [1, () => [rawJws({ ...header, typ: rng.pick(['', 'JWE', 'at+jwt', 1] as unknown[]) }, claims, signed), undefined]],
    // Headers and payloads that are not JSON objects.
    [2, () => [rawJws(rng.pick(['', 'null', '[]', '"EdDSA"', '{', '{"alg":"EdDSA","kid":"bff"', '\u00ff\u00fe']), claims, signed), 'header is not a JSON object']],
    [2, () => [rawJws(header, rng.pick(['', 'null', '[]', '42', '"viewer"', '{', '{"sub":"1001"', 'not json']), signed), 'payload is not a JSON object']],
    // Duplicate and prototype keys: the last "role" wins in JSON.parse; "__proto__" must stay data.
    [1, () => [rawJws(header, JSON.stringify(claims).replace('"viewer"', '"viewer","role":"admin"'), signed), undefined]],
    [1, () => [rawJws(header, JSON.stringify(claims).replace(/}$/, ',"__proto__":{"role":"admin","kind":"service"}}'), signed), undefined]],
    // Not even three base64url parts.
    [2, () => [rng.pick(['a.b.c', 'e30.e30.', 'e30.e30.e30', '..', 'a.b', '.....', `${'a'.repeat(9000)}.b.c`, `${b64('{"alg":"EdDSA"}')}.${'!'.repeat(20)}.x`]), 'not a JWS']],
  ])();
}

/** `authorization` values that are not `Bearer <compact JWS>`, some built around a real token. */
function garbageAuthorization(rng: Rng, token: string): string {
  return rng.pick([
    '',
    'Bearer',
    'Bearer ',
    `bearer ${token}`,
    `BEARER ${token}`,
    `Bearer  ${token}`,
    `Bearer ${token} extra`,
    `Bearer ${token}.`,
    `Token ${token}`,
    token,
    'Basic dXNlcjpwYXNz',
    'Bearer a.b.c',
    'Bearer null',
    `Bearer ${'a'.repeat(7000)}.b.c`,
    `Bearer ${printable(wildString(rng))}`,
    printable(wildString(rng)),
  ]);
}

/**
 * More than one credential. grpc-js refuses to send `authorization` twice (the call fails in the
 * client, never reaching a server), and Node's HTTP/2 server keeps only the first of a repeated
 * `authorization` field, so two credentials arrive as one value joined by a comma (as a proxy that
 * merges repeated fields forwards them), or beside a binary `authorization-bin`.
 */
function multipleValues(rng: Rng, token: string): Identity {
  const forged = signJwt(userClaims('1', 'admin'), OPERATOR, foreignKey(rng));
  return rng.weighted<Identity>([
    [2, { metadata: [[AUTH_METADATA_KEY, `Bearer ${token}, Bearer ${forged}`]], refuse: 'two credentials in one value' }],
    [2, { metadata: [[AUTH_METADATA_KEY, `Bearer ${forged},Bearer ${token}`]], refuse: 'two credentials in one value' }],
    [1, { metadata: [[`${AUTH_METADATA_KEY}-bin`, Buffer.from(`Bearer ${token}`)]] }],
    [1, { metadata: [[`${AUTH_METADATA_KEY}-bin`, Buffer.from([0xff, 0, 1])], ...bearer(forged)], refuse: 'signed with a foreign key' }],
  ]);
}

/** The identity metadata of old: a bare claim, which proves nothing. */
function legacy(rng: Rng, known: Known): MetadataEntries {
  const id = rng.pick([...known.admins, ...known.viewers.slice(0, 3), '', '0', 'abc', '9223372036854775808']);
  return rng.weighted<MetadataEntries>([
    [3, [['lm-role', 'admin']]],
    [3, [['lm-user-id', id], ['lm-role', rng.pick(['admin', 'streamer', 'viewer', 'root'])]]],
    [1, [['lm-user-id', id], ['lm-role', 'admin'], ['lm-user-name', printable(wildString(rng), 8000)]]],
    [1, [['lm-user-id-bin', Buffer.from([0xff, 0, 1])], ['lm-role', 'admin']]],
  ]);
}
