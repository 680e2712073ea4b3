/**
 * The OpenAPI 3.1 description served at /openapi.json. Request bodies and query parameters are
 * generated from the same zod schemas the routes validate with, so the document cannot drift from
 * what the BFF accepts; responses are described by example-level schemas.
 */
import { z } from 'zod';
import { SWITCHES } from './switches.js';
import { incomeQuery } from './routes/me.js';
import { stuckQuery, switchBody } from './routes/admin.js';
import { assignGroupBody, giftBody, giftGroupBody } from './routes/admin-catalog.js';
import { consumptionQuery, topupsQuery } from './routes/history.js';
import { chatBody, discoveryQuery, likesBody, rankingQuery, sendGiftBody } from './routes/rooms.js';
import { createBody, patchBody } from './routes/streamer.js';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, topupBody } from './routes/wallet.js';

type Json = Record<string, unknown>;

const schema = (s: z.ZodType): Json => {
  const rest = { ...(z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Json) };
  delete rest.$schema;
  return rest;
};

/** Query parameters from a zod object schema: one entry per property. */
function queryParams(s: z.ZodType): Json[] {
  const js = schema(s) as { properties?: Record<string, Json>; required?: string[] };
  return Object.entries(js.properties ?? {}).map(([name, p]) => ({ name, in: 'query', required: js.required?.includes(name) ?? false, schema: p }));
}

const body = (s: z.ZodType) => ({ required: true, content: { 'application/json': { schema: schema(s) } } });
const ok = (description: string) => ({ description, content: { 'application/json': { schema: { type: 'object' } } } });
const roomId = { name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[1-9][0-9]{0,18}$' }, description: 'Room id (int64 as a string)' };
const catalogId = (description: string) => ({ name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[1-9][0-9]{0,18}$' }, description });
const idempotencyKey = { name: 'Idempotency-Key', in: 'header', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{8,64}$' } };
const errors = {
  '400': { $ref: '#/components/responses/Error' },
  '401': { $ref: '#/components/responses/Error' },
  '403': { $ref: '#/components/responses/Error' },
  '429': { $ref: '#/components/responses/Error' },
  '503': { $ref: '#/components/responses/Error' },
};
const user = [{ bearer: [] }];

export function openApiDocument(): Json {
  return {
    openapi: '3.1.0',
    info: {
      title: 'livemesh mobile API (BFF)',
      version: '1',
      description:
        'Screen-shaped JSON for the livemesh app. 64-bit ids and amounts are strings. Public screens are micro-cached (X-Cache-Status: HIT, MISS, UPDATING, STALE), compressed (br, gzip) and carry a weak ETag. Non-critical sections that fail or are switched off are null and named in `degraded`. Errors are `{ "error": { "code", "message", "reason"?, "field"?, "upstream"? } }`; 429 and 503 carry Retry-After.',
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT (HS256; sub = user id, name, role = viewer | streamer | admin)' } },
      responses: {
        Error: {
          description: 'An error; `code` follows gRPC status names',
          content: {
            'application/json': {
              schema: {
                type: 'object',
                properties: {
                  error: {
                    type: 'object',
                    required: ['code', 'message'],
                    properties: { code: { type: 'string' }, message: { type: 'string' }, reason: { type: 'string' }, field: { type: 'string' }, upstream: { type: 'string' } },
                  },
                },
              },
            },
          },
        },
      },
    },
    paths: {
      '/v1/rooms/{id}': {
        get: {
          summary: 'Enter a room: room, online count, gift bar; top-3 ranking and last 20 messages (non-critical)',
          parameters: [roomId],
          responses: { '200': ok('The room screen'), '304': { description: 'Not modified (If-None-Match)' }, '404': { $ref: '#/components/responses/Error' }, ...errors },
        },
        patch: { summary: "Edit a room (its streamer or an admin)", security: user, parameters: [roomId], requestBody: body(patchBody), responses: { '200': ok('The room'), '409': { $ref: '#/components/responses/Error' }, ...errors } },
      },
      '/v1/rooms/{id}/gifts': {
        get: { summary: "The room's gift bar", parameters: [roomId], responses: { '200': ok('Gifts'), ...errors } },
        post: {
          summary: 'Send a paid gift',
          security: user,
          parameters: [roomId, idempotencyKey],
          requestBody: body(sendGiftBody),
          responses: { '201': ok('The order'), '200': ok('A replay of an earlier request with the same key'), '409': { $ref: '#/components/responses/Error' }, ...errors },
        },
      },
      '/v1/rooms/{id}/ranking': { get: { summary: "The room's gift ranking", parameters: [roomId, ...queryParams(rankingQuery)], responses: { '200': ok('Ranking'), ...errors } } },
      '/v1/rooms': {
        get: { summary: 'Discovery: live rooms, a page at a time', parameters: queryParams(discoveryQuery), responses: { '200': ok('Rooms and nextCursor'), ...errors } },
        post: { summary: 'Create a room (streamers)', security: user, parameters: [idempotencyKey], requestBody: body(createBody), responses: { '201': ok('The room'), ...errors } },
      },
      '/v1/rooms/{id}/chat': { post: { summary: 'Send a chat message', security: user, parameters: [roomId], requestBody: body(chatBody), responses: { '201': ok('Message id and outcome'), ...errors } } },
      '/v1/rooms/{id}/likes': { post: { summary: 'Send likes (merged on the client)', security: user, parameters: [roomId], requestBody: body(likesBody), responses: { '200': ok('Accepted count'), ...errors } } },
      '/v1/rooms/{id}/live': {
        post: { summary: 'Go live (the room’s streamer)', security: user, parameters: [roomId], responses: { '200': ok('The room'), ...errors } },
        delete: { summary: 'Stop the live show', security: user, parameters: [roomId], responses: { '200': ok('The room'), ...errors } },
      },
      '/v1/rooms/{id}/stream': {
        get: {
          summary: 'WebSocket of room events',
          description:
            'Upgrade to a WebSocket. Query: format=json|protobuf, resume=1 or after=<seq> to replay recent messages first, access_token=<JWT> (optional). JSON frames: {type: hello|events|replay|replay_failed}; protobuf frames: livemesh.chat.v1.ListRecentMessagesResponse. Close 4008: too slow; 1001: server restarting.',
          parameters: [roomId],
          responses: { '101': { description: 'Switching protocols' }, '400': { $ref: '#/components/responses/Error' }, '404': { $ref: '#/components/responses/Error' } },
        },
      },
      '/v1/me': { get: { summary: 'Me: wallet and level, rooms I host; recent and recommended rooms (non-critical)', security: user, responses: { '200': ok('The me screen'), ...errors } } },
      '/v1/me/consumption': {
        get: { summary: 'Gifts I sent (side=sent) or received as a streamer (side=received), most recent first; nextCursor pages', security: user, parameters: queryParams(consumptionQuery), responses: { '200': ok('Records and nextCursor'), ...errors } },
      },
      '/v1/me/topups': { get: { summary: 'My top-ups, newest first; nextCursor pages', security: user, parameters: queryParams(topupsQuery), responses: { '200': ok('Top-ups and nextCursor'), ...errors } } },
      '/v1/orders/{id}': {
        get: {
          summary: "A gift order's state (its sender or receiving streamer), e.g. after PAYMENT_PENDING",
          security: user,
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[1-9][0-9]{0,18}$' }, description: 'Order id (int64 as a string)' }],
          responses: { '200': ok('The order'), '404': { $ref: '#/components/responses/Error' }, ...errors },
        },
      },
      '/v1/me/income': { get: { summary: 'Daily income (streamers)', security: user, parameters: queryParams(incomeQuery), responses: { '200': ok('Income per day'), ...errors } } },
      '/v1/wallet/topups': {
        post: {
          summary: "Payment provider's top-up callback (HMAC-SHA256 over `<timestamp>.<raw body>`)",
          parameters: [
            { name: SIGNATURE_HEADER, in: 'header', required: true, schema: { type: 'string', pattern: '^sha256=[0-9a-f]{64}$' } },
            { name: TIMESTAMP_HEADER, in: 'header', required: true, schema: { type: 'integer' }, description: 'Unix seconds; at most 300 s from now' },
          ],
          requestBody: body(topupBody),
          responses: { '201': ok('Credited'), '200': ok('Already credited for this payment reference'), ...errors },
        },
      },
      '/v1/admin/switches': { get: { summary: 'Degradation switches and upstream breakers (admins)', security: user, responses: { '200': ok('Switches'), ...errors } } },
      '/v1/admin/switches/{name}': {
        put: {
          summary: 'Turn a section off or on, on every replica',
          security: user,
          parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string', enum: Object.keys(SWITCHES) } }],
          requestBody: body(switchBody),
          responses: { '200': ok('The switch'), '404': { $ref: '#/components/responses/Error' }, ...errors },
        },
      },
      '/v1/admin/gift-orders/stuck': { get: { summary: 'Gift orders stuck for a person to look at', security: user, parameters: queryParams(stuckQuery), responses: { '200': ok('Orders'), ...errors } } },
      '/v1/admin/gifts': { post: { summary: 'Create a gift (admins)', security: user, requestBody: body(giftBody), responses: { '201': ok('The gift'), ...errors } } },
      '/v1/admin/gifts/{id}': {
        put: { summary: 'Replace a gift (admins); expectedVersion for an optimistic lock', security: user, parameters: [catalogId('Gift id')], requestBody: body(giftBody), responses: { '200': ok('The gift'), '404': { $ref: '#/components/responses/Error' }, '409': { $ref: '#/components/responses/Error' }, ...errors } },
      },
      '/v1/admin/gift-groups': { post: { summary: 'Create a gift group (admins)', security: user, requestBody: body(giftGroupBody), responses: { '201': ok('The group'), ...errors } } },
      '/v1/admin/gift-groups/{id}': {
        put: { summary: 'Replace a gift group (admins)', security: user, parameters: [catalogId('Gift group id')], requestBody: body(giftGroupBody), responses: { '200': ok('The group'), '404': { $ref: '#/components/responses/Error' }, '409': { $ref: '#/components/responses/Error' }, ...errors } },
      },
      '/v1/admin/rooms/{id}/gift-group': {
        put: { summary: "Assign a room's gift group (admins); giftGroupId null for the default group", security: user, parameters: [roomId], requestBody: body(assignGroupBody), responses: { '200': ok('The room'), '404': { $ref: '#/components/responses/Error' }, ...errors } },
      },
      '/healthz': { get: { summary: 'Liveness', responses: { '200': ok('ok') } } },
      '/readyz': { get: { summary: 'Readiness (503 while draining)', responses: { '200': ok('ok'), '503': ok('draining') } } },
    },
  };
}
