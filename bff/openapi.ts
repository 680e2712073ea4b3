/**
 * The OpenAPI 3.1 description served at /openapi.json, generated from the zod schemas the BFF
 * really uses: request bodies and query parameters from the routes' validation schemas (input
 * side), every response body from responses.ts (output side), both through zod's own
 * z.toJSONSchema. Its draft 2020-12 output is OpenAPI 3.1's schema dialect, so nothing is
 * translated, and no second schema library (or zod extension) is needed.
 *
 * test/bff-openapi.test.ts checks that every route Express serves is documented here, and that
 * every route's real answers (2xx and errors) validate against the schema documented for their
 * status.
 */
import { z } from 'zod';
import { USER_TOKEN_ALGORITHM } from './auth.js';
import {
  apiSchemas,
  assignedRoomResponse,
  catalogGiftResponse,
  chatSentResponse,
  consumptionResponse,
  demoTokenResponse,
  discoveryResponse,
  errorResponse,
  giftGroupResponse,
  healthResponse,
  incomeResponse,
  likesResponse,
  meResponse,
  openApiDocumentResponse,
  orderResponse,
  rankingResponse,
  readyResponse,
  roomEntryResponse,
  roomGiftsResponse,
  roomResponse,
  sendGiftResponse,
  stuckOrdersResponse,
  switchesResponse,
  switchResponse,
  topupCreditedResponse,
  topupsResponse,
} from './responses.js';
import { SWITCHES } from './switches.js';
import { incomeQuery } from './routes/me.js';
import { stuckQuery, switchBody } from './routes/admin.js';
import { assignGroupBody, giftBody, giftGroupBody } from './routes/admin-catalog.js';
import { consumptionQuery, topupsQuery } from './routes/history.js';
import { chatBody, discoveryQuery, likesBody, rankingQuery, sendGiftBody } from './routes/rooms.js';
import { createBody, patchBody } from './routes/streamer.js';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, topupBody } from './routes/wallet.js';
import { tokenBody } from './demo.js';

type Json = Record<string, unknown>;

const COMPONENT = '#/components/schemas/';

/** A schema as JSON Schema without the keys that only make sense at a document's root. */
function bare(js: Json): Json {
  return Object.fromEntries(Object.entries(js).filter(([k]) => k !== '$schema' && k !== '$id'));
}

/** What clients send: the input side of a validation schema (defaults make fields optional). */
const inputSchema = (s: z.ZodType): Json => bare(z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }));

/** Query parameters from a zod object schema: one entry per property. */
function queryParams(s: z.ZodType): Json[] {
  const js = inputSchema(s) as { properties?: Record<string, Json>; required?: string[] };
  return Object.entries(js.properties ?? {}).map(([name, p]) => ({ name, in: 'query', required: js.required?.includes(name) ?? false, schema: p }));
}

/** `$ref` to a response schema's component; every response schema is registered in responses.ts. */
function ref(s: z.ZodType): Json {
  const meta = apiSchemas.get(s);
  if (!meta) throw new Error('response schema without a component id: register it with named() in responses.ts');
  return { $ref: `${COMPONENT}${meta.id}` };
}

const jsonBody = (s: z.ZodType) => ({ required: true, content: { 'application/json': { schema: inputSchema(s) } } });

const int64Path = (name: string, description: string) => ({ name, in: 'path', required: true, schema: { type: 'string', pattern: '^[1-9][0-9]{0,18}$' }, description });
const roomId = int64Path('id', 'Room id (int64 as a string)');
const idempotencyKey = (what: string) => ({
  name: 'Idempotency-Key',
  in: 'header',
  required: true,
  description: `A unique key per ${what}; resend the same key only to retry the same request (the first result is returned, nothing happens twice).`,
  schema: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{8,64}$' },
});
const ifNoneMatch = { name: 'If-None-Match', in: 'header', required: false, description: 'The ETag of the copy the client holds: 304 when unchanged', schema: { type: 'string' } };

// ---- responses ------------------------------------------------------------------------------

const retryAfter = { description: 'Whole seconds to wait before retrying', schema: { type: 'integer', minimum: 1 } };
const errorContent = { 'application/json': { schema: ref(errorResponse) } };

/** One reusable response per error status, all with the Error body. */
const ERROR_RESPONSES: Record<string, Json> = {
  BadRequest: { description: 'Invalid input: `field` names the first bad one, `fields` all of them when there are several (also malformed JSON and refused HTTP)', content: errorContent },
  Unauthenticated: {
    description: 'No token on a signed-in route, or a bad or expired token on any route (never downgraded to anonymous)',
    headers: { 'WWW-Authenticate': { description: 'Bearer realm="livemesh"', schema: { type: 'string' } } },
    content: errorContent,
  },
  PermissionDenied: { description: 'The token’s role (or the caller) may not do this', content: errorContent },
  NotFound: { description: 'No such resource (`reason` says which, e.g. ROOM_NOT_FOUND)', content: errorContent },
  Conflict: { description: 'The state does not allow this now (`reason`: VERSION_CONFLICT, ROOM_NOT_LIVE, INSUFFICIENT_FUNDS, PRICE_CHANGED, …)', content: errorContent },
  PayloadTooLarge: { description: 'The body is larger than the BFF accepts', content: errorContent },
  RateLimited: { description: 'Too many requests (`reason` RATE_LIMITED, or the service’s own, e.g. slow mode)', headers: { 'Retry-After': retryAfter }, content: errorContent },
  Unavailable: { description: 'An upstream is down or too slow (`upstream` names it); retry after Retry-After', headers: { 'Retry-After': retryAfter }, content: errorContent },
  Error: { description: 'Any other error (502 upstream failure, 504 upstream timeout, …), same shape', content: errorContent },
};
const STATUS_RESPONSE: Record<number, string> = { 400: 'BadRequest', 401: 'Unauthenticated', 403: 'PermissionDenied', 404: 'NotFound', 409: 'Conflict', 413: 'PayloadTooLarge', 429: 'RateLimited', 503: 'Unavailable' };

type Access = 'public' | 'user' | 'provider' | 'operations' | 'development';

interface Operation {
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  access: Access;
  /** Roles allowed, when not every signed-in user. */
  roles?: string[];
  parameters?: Json[];
  body?: z.ZodType;
  /** Success statuses: [schema, description]. */
  ok: Record<number, [z.ZodType, string]>;
  /** Error statuses beyond the ones every operation of its access has. */
  errors?: number[];
  /** A micro-cached public screen: ETag, If-None-Match, 304. */
  cached?: boolean;
}

/** Error statuses every operation of an access kind can answer (bad tokens are refused on every /v1 route). */
const BASE_ERRORS: Record<Access, number[]> = {
  public: [400, 401, 429, 503],
  user: [400, 401, 403, 429, 503],
  provider: [400, 401, 413, 503],
  operations: [],
  development: [400, 413],
};

const USER = [{ bearer: [] }];
/** The token is optional: without one the screen is the same; with a bad one it is a 401. */
const OPTIONAL_USER = [{}, { bearer: [] }];

function operation(op: Operation): Json {
  const responses: Json = {};
  for (const [status, [schema, description]] of Object.entries(op.ok)) {
    responses[status] = {
      description,
      ...(op.cached
        ? {
            headers: {
              ETag: { description: 'Weak validator of this body; send it back in If-None-Match', schema: { type: 'string' } },
              'X-Cache-Status': { description: 'The micro-cache’s answer', schema: { type: 'string', enum: ['HIT', 'MISS', 'UPDATING', 'STALE'] } },
            },
          }
        : {}),
      content: { 'application/json': { schema: ref(schema) } },
    };
  }
  if (op.cached) responses['304'] = { description: 'Not modified (If-None-Match names the current ETag)' };
  const statuses = [...new Set([...BASE_ERRORS[op.access], ...(op.body ? [400, 413] : []), ...(op.errors ?? [])])].sort((a, b) => a - b);
  for (const status of statuses) responses[String(status)] = { $ref: `#/components/responses/${STATUS_RESPONSE[status] ?? 'Error'}` };
  if (op.access !== 'operations') responses.default = { $ref: '#/components/responses/Error' };
  const who = op.access === 'user' ? (op.roles ? `Roles: ${op.roles.join(', ')}.` : 'Any signed-in user.') : '';
  const description = [op.description, who].filter(Boolean).join(' ');
  return {
    operationId: op.operationId,
    summary: op.summary,
    ...(description ? { description } : {}),
    tags: op.tags,
    security: op.access === 'user' ? USER : op.access === 'public' ? OPTIONAL_USER : [],
    ...(op.parameters?.length || op.cached ? { parameters: [...(op.parameters ?? []), ...(op.cached ? [ifNoneMatch] : [])] } : {}),
    ...(op.body ? { requestBody: jsonBody(op.body) } : {}),
    responses,
  };
}

const TOKEN_DESCRIPTION = [
  `A user token: a JWT signed with ${USER_TOKEN_ALGORITHM} by the identity provider, with \`sub\` = the user id (a positive int64 as a string), \`name\`, \`role\` (viewer, streamer or admin), \`exp\`, and \`iss\` when the deployment sets one.`,
  'How to get one: in production, from the app’s login (the identity provider); in development, `POST /demo/token` mints one (served only with DEMO=on, never an admin token with NODE_ENV=production).',
  'Send it as `Authorization: Bearer <token>`; WebSocket clients that cannot set headers pass it as `access_token` in the stream URL.',
  'A missing token on a signed-in route is a 401 with WWW-Authenticate; a bad or expired token is a 401 on every route; a role the route does not allow is a 403.',
].join(' ');

export function openApiDocument(): Json {
  const ops: Array<[string, string, Operation]> = [
    // ---- rooms: public screens ----
    [
      '/v1/rooms/{id}',
      'get',
      {
        operationId: 'getRoomEntry',
        summary: 'Enter a room',
        description: 'Room, online count and gift bar; the live top-3 ranking and last 20 messages are non-critical (null and named in `degraded` when they fail). With a token, the visit is remembered for /v1/me.',
        tags: ['rooms'],
        access: 'public',
        parameters: [roomId],
        ok: { 200: [roomEntryResponse, 'The room screen'] },
        errors: [404],
        cached: true,
      },
    ],
    ['/v1/rooms/{id}/gifts', 'get', { operationId: 'getRoomGifts', summary: 'A room’s gift bar', tags: ['rooms'], access: 'public', parameters: [roomId], ok: { 200: [roomGiftsResponse, 'Gifts'] }, errors: [404], cached: true }],
    [
      '/v1/rooms/{id}/ranking',
      'get',
      { operationId: 'getRoomRanking', summary: 'A room’s gift ranking', tags: ['rooms'], access: 'public', parameters: [roomId, ...queryParams(rankingQuery)], ok: { 200: [rankingResponse, 'Ranking'] }, cached: true },
    ],
    [
      '/v1/rooms',
      'get',
      { operationId: 'listLiveRooms', summary: 'Discovery: live rooms, newest first, a page at a time', tags: ['rooms'], access: 'public', parameters: queryParams(discoveryQuery), ok: { 200: [discoveryResponse, 'Rooms and nextCursor'] }, cached: true },
    ],
    [
      '/v1/rooms/{id}/stream',
      'get',
      {
        operationId: 'openRoomStream',
        summary: 'WebSocket of room events',
        description:
          'Upgrade to a WebSocket (this operation documents the handshake; refusals are JSON errors). Messages, all JSON text unless format=protobuf: first a StreamHello, then StreamEvents frames (`events`, in offset order; `dropped` counts what sampling in a big room left out; gifts are never left out). Every event carries `seq`, its offset in the room stream (one counter per room for all kinds). To reconnect, pass the last offset and the epoch as `after` and `epoch`: every missed event comes in a `replay` frame (hello `recovered: true`), or, when the room history no longer covers the gap or the epoch changed, a StreamState and a `replay` frame of recent messages (`recovered: false`); `resume=1` asks for the current state. StreamReplayFailed: missed events unavailable, live ones follow. With format=protobuf, event frames are binary livemesh.chat.v1.ListRecentMessagesResponse (field 3: dropped). Close 4008: too slow; 4009: the room history was reset (reconnect with after=); 1001: server restarting. Schemas: #/components/schemas/StreamHello, StreamEvents, StreamState, StreamReplayFailed.',
        tags: ['rooms'],
        access: 'public',
        parameters: [
          roomId,
          { name: 'format', in: 'query', required: false, schema: { type: 'string', enum: ['json', 'protobuf'], default: 'json' } },
          { name: 'after', in: 'query', required: false, schema: { type: 'string', pattern: '^(0|[1-9][0-9]{0,18})$' }, description: 'The last offset (event `seq`, or the hello’s `offset`) the client has' },
          { name: 'epoch', in: 'query', required: false, schema: { type: 'string', pattern: '^[A-Za-z0-9]{0,32}$' }, description: 'The epoch of the stream that offset belongs to (from the hello or the room screen’s `stream`)' },
          { name: 'resume', in: 'query', required: false, schema: { type: 'string', enum: ['1'] } },
          { name: 'access_token', in: 'query', required: false, schema: { type: 'string' }, description: 'The user token, for clients that cannot set headers' },
        ],
        ok: {},
        errors: [404, 405],
      },
    ],
    // ---- rooms: viewers' actions ----
    [
      '/v1/rooms/{id}/gifts',
      'post',
      {
        operationId: 'sendGift',
        summary: 'Send a paid gift',
        description: 'Retry with the same Idempotency-Key after a network failure: the gift is charged once. 409 with reason INSUFFICIENT_FUNDS, PRICE_CHANGED (expectedUnitPriceMinor no longer the price) or ROOM_NOT_LIVE.',
        tags: ['rooms'],
        access: 'user',
        parameters: [roomId, idempotencyKey('gift')],
        body: sendGiftBody,
        ok: { 201: [sendGiftResponse, 'The order'], 200: [sendGiftResponse, 'A replay of an earlier request with the same key'] },
        errors: [404, 409],
      },
    ],
    ['/v1/rooms/{id}/chat', 'post', { operationId: 'sendChat', summary: 'Send a chat message', description: 'clientMessageId makes a retried send count once.', tags: ['rooms'], access: 'user', parameters: [roomId], body: chatBody, ok: { 201: [chatSentResponse, 'Message id and outcome'] }, errors: [404, 409] }],
    ['/v1/rooms/{id}/likes', 'post', { operationId: 'sendLikes', summary: 'Send likes (merged on the client)', tags: ['rooms'], access: 'user', parameters: [roomId], body: likesBody, ok: { 200: [likesResponse, 'Accepted count'] }, errors: [404, 409] }],
    // ---- streamers ----
    [
      '/v1/rooms',
      'post',
      { operationId: 'createRoom', summary: 'Create a room', tags: ['streamer'], access: 'user', roles: ['streamer', 'admin'], parameters: [idempotencyKey('new room')], body: createBody, ok: { 201: [roomResponse, 'The room (the same room for a retried key)'] } },
    ],
    [
      '/v1/rooms/{id}',
      'patch',
      {
        operationId: 'updateRoom',
        summary: 'Edit a room (its streamer or an admin)',
        description: 'Send expectedVersion (the room’s `version`) to refuse a stale edit with 409 VERSION_CONFLICT.',
        tags: ['streamer'],
        access: 'user',
        roles: ['streamer', 'admin'],
        parameters: [roomId],
        body: patchBody,
        ok: { 200: [roomResponse, 'The room'] },
        errors: [404, 409],
      },
    ],
    ['/v1/rooms/{id}/live', 'post', { operationId: 'startLive', summary: 'Go live', tags: ['streamer'], access: 'user', roles: ['streamer', 'admin'], parameters: [roomId], ok: { 200: [roomResponse, 'The room'] }, errors: [404, 409] }],
    ['/v1/rooms/{id}/live', 'delete', { operationId: 'stopLive', summary: 'Stop the live show', tags: ['streamer'], access: 'user', roles: ['streamer', 'admin'], parameters: [roomId], ok: { 200: [roomResponse, 'The room'] }, errors: [404, 409] }],
    // ---- me ----
    [
      '/v1/me',
      'get',
      { operationId: 'getMe', summary: 'Me: wallet and level, rooms I host; recent and recommended rooms (non-critical)', tags: ['me'], access: 'user', ok: { 200: [meResponse, 'The me screen'] } },
    ],
    [
      '/v1/me/income',
      'get',
      { operationId: 'getIncome', summary: 'Daily income', tags: ['me'], access: 'user', roles: ['streamer', 'admin'], parameters: queryParams(incomeQuery), ok: { 200: [incomeResponse, 'Income per day'] } },
    ],
    [
      '/v1/me/consumption',
      'get',
      {
        operationId: 'listConsumption',
        summary: 'Gifts I sent (side=sent) or received as a streamer (side=received), most recent first',
        tags: ['me'],
        access: 'user',
        parameters: queryParams(consumptionQuery),
        ok: { 200: [consumptionResponse, 'Records and nextCursor'] },
      },
    ],
    ['/v1/me/topups', 'get', { operationId: 'listTopups', summary: 'My top-ups, newest first', tags: ['me'], access: 'user', parameters: queryParams(topupsQuery), ok: { 200: [topupsResponse, 'Top-ups and nextCursor'] } }],
    [
      '/v1/orders/{id}',
      'get',
      {
        operationId: 'getOrder',
        summary: 'A gift order’s state, e.g. after PAYMENT_PENDING',
        description: 'Its sender’s or receiving streamer’s; anyone else’s order is a 404.',
        tags: ['me'],
        access: 'user',
        parameters: [int64Path('id', 'Order id (int64 as a string)')],
        ok: { 200: [orderResponse, 'The order'] },
        errors: [404],
      },
    ],
    // ---- payment provider ----
    [
      '/v1/wallet/topups',
      'post',
      {
        operationId: 'creditTopup',
        summary: 'Payment provider’s top-up callback',
        description: `Not for the app: the payment provider signs each call (HMAC-SHA256 with the shared secret over \`<${TIMESTAMP_HEADER}>.<raw body>\`). Idempotent on paymentReference.`,
        tags: ['payment provider'],
        access: 'provider',
        parameters: [
          { name: SIGNATURE_HEADER, in: 'header', required: true, schema: { type: 'string', pattern: '^sha256=[0-9a-f]{64}$' } },
          { name: TIMESTAMP_HEADER, in: 'header', required: true, schema: { type: 'integer' }, description: 'Unix seconds; at most 300 s from now' },
        ],
        body: topupBody,
        ok: { 201: [topupCreditedResponse, 'Credited'], 200: [topupCreditedResponse, 'Already credited for this payment reference'] },
      },
    ],
    // ---- admins ----
    ['/v1/admin/switches', 'get', { operationId: 'listSwitches', summary: 'Degradation switches and upstream breakers', tags: ['admin'], access: 'user', roles: ['admin'], ok: { 200: [switchesResponse, 'Switches'] } }],
    [
      '/v1/admin/switches/{name}',
      'put',
      {
        operationId: 'setSwitch',
        summary: 'Turn a section off or on, on every replica',
        tags: ['admin'],
        access: 'user',
        roles: ['admin'],
        parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string', enum: Object.keys(SWITCHES) } }],
        body: switchBody,
        ok: { 200: [switchResponse, 'The switch'] },
        errors: [404],
      },
    ],
    [
      '/v1/admin/gift-orders/stuck',
      'get',
      { operationId: 'listStuckOrders', summary: 'Gift orders stuck for a person to look at', tags: ['admin'], access: 'user', roles: ['admin'], parameters: queryParams(stuckQuery), ok: { 200: [stuckOrdersResponse, 'Orders'] } },
    ],
    ['/v1/admin/gifts', 'post', { operationId: 'createGift', summary: 'Create a gift', tags: ['admin'], access: 'user', roles: ['admin'], body: giftBody, ok: { 201: [catalogGiftResponse, 'The gift'] }, errors: [409] }],
    [
      '/v1/admin/gifts/{id}',
      'put',
      {
        operationId: 'putGift',
        summary: 'Replace a gift; expectedVersion for an optimistic lock',
        tags: ['admin'],
        access: 'user',
        roles: ['admin'],
        parameters: [int64Path('id', 'Gift id')],
        body: giftBody,
        ok: { 200: [catalogGiftResponse, 'The gift'], 201: [catalogGiftResponse, 'The gift, created under this id'] },
        errors: [404, 409],
      },
    ],
    ['/v1/admin/gift-groups', 'post', { operationId: 'createGiftGroup', summary: 'Create a gift group', tags: ['admin'], access: 'user', roles: ['admin'], body: giftGroupBody, ok: { 201: [giftGroupResponse, 'The group'] }, errors: [409] }],
    [
      '/v1/admin/gift-groups/{id}',
      'put',
      {
        operationId: 'putGiftGroup',
        summary: 'Replace a gift group; expectedVersion for an optimistic lock',
        tags: ['admin'],
        access: 'user',
        roles: ['admin'],
        parameters: [int64Path('id', 'Gift group id')],
        body: giftGroupBody,
        ok: { 200: [giftGroupResponse, 'The group'], 201: [giftGroupResponse, 'The group, created under this id'] },
        errors: [404, 409],
      },
    ],
    [
      '/v1/admin/rooms/{id}/gift-group',
      'put',
      { operationId: 'assignGiftGroup', summary: "Assign a room's gift group; giftGroupId null for the default group", tags: ['admin'], access: 'user', roles: ['admin'], parameters: [roomId], body: assignGroupBody, ok: { 200: [assignedRoomResponse, 'The room'] }, errors: [404] },
    ],
    // ---- operations and development ----
    ['/healthz', 'get', { operationId: 'health', summary: 'Liveness: the process answers (independent of upstreams)', tags: ['operations'], access: 'operations', ok: { 200: [healthResponse, 'ok'] } }],
    ['/readyz', 'get', { operationId: 'ready', summary: 'Readiness: 503 while draining', tags: ['operations'], access: 'operations', ok: { 200: [readyResponse, 'ok'], 503: [readyResponse, 'draining'] } }],
    ['/openapi.json', 'get', { operationId: 'openApi', summary: 'This document', tags: ['operations'], access: 'operations', ok: { 200: [openApiDocumentResponse, 'OpenAPI 3.1'] } }],
    [
      '/demo/token',
      'post',
      {
        operationId: 'mintDemoToken',
        summary: 'Development sign-in: a user token for anyone (served only with DEMO=on)',
        description: 'Never mounted with DEMO=off (the default); with NODE_ENV=production it refuses role admin (403).',
        tags: ['development'],
        access: 'development',
        body: tokenBody,
        ok: { 200: [demoTokenResponse, 'The token'] },
        errors: [403],
      },
    ],
  ];

  const paths: Record<string, Record<string, Json>> = {};
  for (const [path, method, op] of ops) (paths[path] ??= {})[method] = operation(op);
  // The handshake's success is a protocol switch, not a JSON body.
  const stream = paths['/v1/rooms/{id}/stream']?.get as { responses: Json } | undefined;
  if (stream) stream.responses = { '101': { description: 'Switching protocols: the WebSocket is open' }, ...stream.responses };

  const schemas = (z.toJSONSchema(apiSchemas, { io: 'output', uri: (id) => `${COMPONENT}${id}` }) as { schemas: Record<string, Json> }).schemas;
  return {
    openapi: '3.1.0',
    info: {
      title: 'livemesh mobile API (BFF)',
      version: '1',
      description:
        'Screen-shaped JSON for the livemesh app. 64-bit ids and amounts are decimal strings. Public screens are micro-cached (X-Cache-Status), compressed (br, gzip) and carry a weak ETag. Non-critical sections that fail or are switched off are null and named in `degraded`. Every error is the `Error` schema (`code`, `message`, and `reason`, `field`, `fields`, `upstream` when they apply); 429 and 503 carry Retry-After. Response objects are closed: a field added later is announced by a new version of this document.',
    },
    tags: [
      { name: 'rooms', description: 'Room screens and what viewers do in a room' },
      { name: 'streamer', description: 'A streamer’s rooms' },
      { name: 'me', description: 'The signed-in user: wallet, history, orders' },
      { name: 'payment provider', description: 'Server-to-server callbacks, signed' },
      { name: 'admin', description: 'Operators (role admin)' },
      { name: 'operations', description: 'Probes and this document' },
      { name: 'development', description: 'Only with DEMO=on' },
    ],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: `JWT (${USER_TOKEN_ALGORITHM})`, description: TOKEN_DESCRIPTION } },
      schemas: Object.fromEntries(Object.entries(schemas).map(([id, s]) => [id, bare(s)])),
      responses: ERROR_RESPONSES,
    },
    paths,
  };
}

