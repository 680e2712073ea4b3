/**
 * Every JSON body the BFF answers with, as zod schemas: the single source of openapi.ts's response
 * schemas (z.toJSONSchema, draft 2020-12, which is OpenAPI 3.1's dialect) and of the types routes
 * check their bodies against (`satisfies`), so a field added on one side and not the other fails
 * the build or the response-schema test (test/bff-openapi.test.ts).
 *
 * Objects are closed (`additionalProperties: false` in the document): a client generator then
 * emits exact types, and the test catches a route that answers a field nobody documented. Adding a
 * field is one line in the object it belongs to.
 */
import { z } from 'zod';
import type { presentEvent, presentGifts, presentOrder, presentRank, presentRoom, presentWallet } from './present.js';
import { SWITCHES } from './switches.js';

/** Each schema that becomes a named component (`#/components/schemas/<id>`). */
export const apiSchemas = z.registry<{ id: string; description?: string }>();

function named<S extends z.ZodType>(id: string, description: string, schema: S): S {
  apiSchemas.add(schema, { id, description });
  return schema;
}

// ---- scalars -------------------------------------------------------------------------------

/** A positive int64 id, as a decimal string (ids pass int53, so never a JSON number). */
const id = z.string().regex(/^[1-9][0-9]{0,18}$/).describe('a positive 64-bit id, as a decimal string');
/** An int64 where 0 means "none" or "not yet". */
const int64 = z.string().regex(/^-?(0|[1-9][0-9]{0,18})$/).describe('a 64-bit integer, as a decimal string');
/** A non-negative amount in minor units (coins have no fractions on the wire). */
const minor = z.string().regex(/^(0|[1-9][0-9]{0,18})$/).describe('a non-negative amount in minor units, as a decimal string');
const count = z.number().int().min(0);
/** The Ledger's transfer ids are its own strings (`topup:<payment reference>`), not numbers. */
const transferId = z.string().min(1).describe('the Ledger transfer id (opaque)');
const time = z.iso.datetime().describe('an ISO 8601 time in UTC');
const cursor = z.string().min(1).nullable().describe('opaque token of the next page (pass as `cursor`); null on the last page');
const role = z.enum(['viewer', 'streamer', 'admin']);

// ---- errors --------------------------------------------------------------------------------

export const errorResponse = named(
  'Error',
  'Every error the BFF answers, from any route: switch on `code` (gRPC status names), show `message`, highlight `field`.',
  z.strictObject({
    error: z.strictObject({
      code: z.string().describe('gRPC status name: INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND, ABORTED, FAILED_PRECONDITION, RESOURCE_EXHAUSTED, UNAVAILABLE, …'),
      message: z.string().describe('for people; never parse it'),
      reason: z.string().optional().describe('the service’s machine-readable reason (google.rpc.ErrorInfo), e.g. INSUFFICIENT_FUNDS, ROOM_NOT_LIVE, VERSION_CONFLICT'),
      field: z.string().optional().describe('the first offending input, as the client named it (`count`, `Idempotency-Key`, `body`)'),
      fields: z
        .array(z.strictObject({ field: z.string(), description: z.string() }))
        .min(2)
        .optional()
        .describe('every offending input, when there are several'),
      upstream: z.string().optional().describe('the internal service that failed or timed out (5xx only)'),
    }),
  }),
);

// ---- shared parts --------------------------------------------------------------------------

export const roomJson = named(
  'Room',
  'A room as screens show it.',
  z.strictObject({
    id,
    streamerId: id,
    title: z.string(),
    category: z.string(),
    coverKey: z.string(),
    notice: z.string(),
    live: z.boolean(),
    liveSince: time.nullable(),
    version: int64.describe('optimistic-lock version; send it back as expectedVersion when editing'),
  }),
);

export const giftJson = named('Gift', 'A gift on a room’s gift bar (active gifts only).', z.strictObject({ id, name: z.string(), priceMinor: minor, iconKey: z.string(), effectKey: z.string() }));

export const rankEntryJson = named('RankEntry', 'One line of a ranking.', z.strictObject({ rank: z.number().int().min(1), userId: id, name: z.string(), scoreMinor: minor }));

export const orderJson = named(
  'Order',
  'A gift order. `paid` and `done` mean the coins were taken; `failed` means they never were (or were returned).',
  z.strictObject({
    id,
    state: z.enum(['created', 'paid', 'done', 'failed', 'unknown']),
    roomId: id,
    senderId: id,
    giftId: id,
    count: z.number().int().min(1),
    amountMinor: minor,
    comboCount: int64,
    createdAt: time.nullable(),
    paidAt: time.nullable(),
  }),
);

const eventBase = { seq: int64, at: time.nullable(), priority: z.enum(['low', 'normal', 'high', 'critical']) };
export const roomEventJson = named(
  'RoomEvent',
  'A room event (chat line, gift, likes, notice, room edit); the same JSON as the WebSocket stream’s `events` frames. `seq` is its offset in the room’s stream (one counter per room for every kind).',
  z.discriminatedUnion('type', [
    z.strictObject({
      ...eventBase,
      type: z.literal('chat'),
      chat: z.strictObject({
        id: z.string(),
        senderId: id,
        senderName: z.string(),
        senderLevel: count,
        senderRole: z.enum(['viewer', 'streamer', 'admin']).nullable().describe('badge the streamer; null when not known'),
        text: z.string(),
        mergedCount: count,
      }),
    }),
    z.strictObject({
      ...eventBase,
      type: z.literal('gift'),
      gift: z.strictObject({ orderId: id, senderId: id, senderName: z.string(), senderLevel: count, giftId: id, count: z.number().int().min(1), comboCount: int64, amountMinor: minor }),
    }),
    z.strictObject({ ...eventBase, type: z.literal('likes'), likes: z.strictObject({ count: int64, total: int64 }) }),
    z.strictObject({
      ...eventBase,
      type: z.literal('notice'),
      notice: z.strictObject({ kind: z.enum(['live_started', 'live_stopped', 'online_count', 'policy_changed', 'announcement', 'unknown']), onlineCount: int64, text: z.string() }),
    }),
    z.strictObject({ ...eventBase, type: z.literal('room'), room: z.strictObject({ title: z.string(), notice: z.string(), version: int64 }).describe('the streamer edited the room') }),
    z.strictObject({ ...eventBase, type: z.literal('unknown').describe('an event kind this API version does not know yet: skip it') }),
  ]),
);

const walletJson = z.strictObject({
  coinMinor: minor,
  level: z.strictObject({ level: count, expMinor: minor, levelStartExpMinor: minor, nextLevelExpMinor: minor }).nullable(),
});

// ---- public screens ------------------------------------------------------------------------

export const roomEntryResponse = named(
  'RoomEntry',
  'Entering a room. `ranking` (live top 3), `messages` (last 20) and `likes` are null when degraded, and then named in `degraded`. `stream` is where the room stream continues from `messages` (connect with `?after=<offset>&epoch=<epoch>`); null with `messages`.',
  z.strictObject({
    room: roomJson,
    onlineCount: int64,
    gifts: z.array(giftJson),
    ranking: z.array(rankEntryJson).nullable(),
    messages: z.array(roomEventJson).nullable(),
    likes: z.strictObject({ total: int64 }).nullable(),
    stream: z.strictObject({ offset: int64, epoch: z.string() }).nullable(),
    degraded: z.array(z.enum(['ranking', 'messages', 'likes'])),
  }),
);

export const roomGiftsResponse = named('RoomGifts', 'A room’s gift bar.', z.strictObject({ roomId: id, giftGroupId: int64.describe('0: the default group'), gifts: z.array(giftJson) }));

export const rankingResponse = named(
  'Ranking',
  'A room’s gift ranking for a period.',
  z.strictObject({ roomId: id, period: z.enum(['live', 'day', 'week']), entries: z.array(rankEntryJson), total: int64, asOf: time.nullable().describe('when the board was computed') }),
);

export const discoveryResponse = named(
  'LiveRooms',
  'A page of live rooms, newest first. `onlineCount` is null when it could not be read in time.',
  z.strictObject({ rooms: z.array(roomJson.extend({ onlineCount: int64.nullable() })), nextCursor: cursor }),
);

// ---- viewers' actions ----------------------------------------------------------------------

export const sendGiftResponse = named(
  'GiftSent',
  'A gift order after sending (201) or its replay under the same Idempotency-Key (200, `replayed`).',
  z.strictObject({ order: orderJson.nullable(), comboCount: int64, balanceMinor: minor.nullable().describe('the sender’s coins after paying; null when not known yet'), replayed: z.boolean() }),
);

export const chatSentResponse = named(
  'ChatSent',
  'A chat message accepted: published, merged into an identical recent line, or a duplicate of a retried clientMessageId.',
  z.strictObject({
    messageId: z.string(),
    outcome: z.enum(['published', 'merged', 'duplicate']),
    seq: int64.nullable().describe('the message’s offset in the room stream; null when merged, and for a duplicate whose line is no longer among the room’s last 200 messages'),
    sentAt: time.nullable().describe('when the line was published; null when seq is'),
  }),
);

export const likesResponse = named('LikesAccepted', 'How many likes counted (a burst past the per-user cap counts in part).', z.strictObject({ accepted: count }));

// ---- streamers -----------------------------------------------------------------------------

export const roomResponse = named('RoomResult', 'A room after a create, edit, go-live or stop.', z.strictObject({ room: roomJson.nullable() }));

// ---- me ------------------------------------------------------------------------------------

export const meResponse = named(
  'Me',
  'The me screen. `recent` and `recommended` are null when degraded, and then named in `degraded`.',
  z.strictObject({
    user: z.strictObject({ id, name: z.string(), role }),
    wallet: walletJson.extend({ incomeMinor: minor.nullable().describe('a streamer’s INCOME balance (gifts received); null for viewers') }),
    hostedRooms: z.array(roomJson),
    recent: z.array(roomJson).nullable(),
    recommended: z.array(roomJson.extend({ onlineCount: int64 })).nullable(),
    degraded: z.array(z.enum(['recent', 'recommended'])),
  }),
);

const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/);
export const incomeResponse = named(
  'Income',
  'A streamer’s income per day, in the Ledger’s reporting time zone.',
  z.strictObject({
    from: day,
    to: day,
    timeZone: z.string(),
    totalMinor: minor,
    days: z.array(z.strictObject({ day, incomeMinor: minor, transfers: int64, reconciled: z.boolean() })),
    asOf: time.nullable(),
  }),
);

export const consumptionRecordJson = named(
  'ConsumptionRecord',
  'Gifts of one combo (same sender, room and gift in a burst).',
  z.strictObject({
    comboId: z.string(),
    senderId: id,
    senderName: z.string(),
    streamerId: id,
    roomId: id,
    giftId: id,
    count: int64,
    sends: int64,
    amountMinor: minor,
    firstSentAt: time.nullable(),
    lastSentAt: time.nullable(),
  }),
);

export const consumptionResponse = named('Consumption', 'A page of gifts sent or received, most recent first.', z.strictObject({ side: z.enum(['sent', 'received']), records: z.array(consumptionRecordJson), nextCursor: cursor }));

export const topupJson = named(
  'Topup',
  'One top-up: coins bought with money.',
  z.strictObject({ id: transferId, paymentReference: z.string(), amountMinor: minor, settled: z.boolean(), createdAt: time.nullable(), settledAt: time.nullable() }),
);

export const topupsResponse = named('Topups', 'A page of top-ups, newest first.', z.strictObject({ topups: z.array(topupJson), nextCursor: cursor }));

export const orderResponse = named('OrderResult', 'A gift order’s current state.', z.strictObject({ order: orderJson }));

// ---- payment provider ----------------------------------------------------------------------

export const topupCreditedResponse = named(
  'TopupCredited',
  'The credit of a top-up (201), or the earlier credit of the same paymentReference (200, `replayed`).',
  z.strictObject({ transferId: transferId.nullable(), balanceMinor: minor.nullable(), replayed: z.boolean() }),
);

// ---- admins --------------------------------------------------------------------------------

const switchName = z.enum(Object.keys(SWITCHES) as [keyof typeof SWITCHES, ...Array<keyof typeof SWITCHES>]);
const switchState = { off: z.boolean(), reason: z.string(), by: id.describe('the admin who set it'), at: time };

export const switchesResponse = named(
  'Switches',
  'Degradation switches (reason, by and at once someone has set one) and each upstream’s breaker.',
  z.strictObject({
    switches: z.array(z.strictObject({ name: switchName, description: z.string(), off: z.boolean(), reason: switchState.reason.optional(), by: switchState.by.optional(), at: switchState.at.optional() })),
    breakers: z.array(z.strictObject({ upstream: z.string(), open: z.boolean() })),
  }),
);

export const switchResponse = named('Switch', 'A switch as just set.', z.strictObject({ name: switchName, ...switchState }));

export const stuckOrdersResponse = named('StuckOrders', 'Gift orders stuck for a person to look at.', z.strictObject({ orders: z.array(orderJson), total: int64, nextCursor: cursor }));

export const catalogGiftJson = named(
  'CatalogGift',
  'A gift as the catalog holds it.',
  z.strictObject({ id, name: z.string(), priceMinor: minor, iconKey: z.string(), effectKey: z.string(), status: z.enum(['active', 'disabled']), version: int64, updatedAt: time.nullable() }),
);

export const catalogGiftResponse = named('CatalogGiftResult', 'A gift after a write; `created` when it did not exist.', z.strictObject({ gift: catalogGiftJson.nullable(), created: z.boolean() }));

export const giftGroupJson = named('GiftGroup', 'A gift group.', z.strictObject({ id, name: z.string(), giftIds: z.array(id), isDefault: z.boolean(), version: int64, updatedAt: time.nullable() }));

export const giftGroupResponse = named('GiftGroupResult', 'A gift group after a write; `created` when it did not exist.', z.strictObject({ giftGroup: giftGroupJson.nullable(), created: z.boolean() }));

export const assignedRoomResponse = named(
  'RoomGiftGroup',
  'A room after its gift group changed; `giftGroupId` null: the default group.',
  z.strictObject({ room: roomJson.extend({ giftGroupId: id.nullable() }).nullable() }),
);

// ---- operations and development -----------------------------------------------------------

export const healthResponse = named('Health', 'The process answers.', z.strictObject({ status: z.literal('ok'), service: z.literal('bff') }));
export const readyResponse = named('Ready', 'Whether to send new requests here.', z.strictObject({ status: z.enum(['ok', 'draining']) }));
/** /openapi.json's own body, loosely: the OpenAPI 3.1 specification defines the rest. */
export const openApiDocumentResponse = named(
  'OpenApiDocument',
  'An OpenAPI 3.1 document (this one).',
  z.looseObject({ openapi: z.literal('3.1.0'), info: z.looseObject({ title: z.string(), version: z.string() }), paths: z.record(z.string(), z.unknown()) }),
);
export const demoTokenResponse = named('DemoToken', 'A development user token (12 h).', z.strictObject({ token: z.string() }));

// ---- the room stream's WebSocket messages (GET /v1/rooms/{id}/stream) -------------------------

const streamPosition = {
  epoch: z.string().nullable().describe('the room stream’s epoch: reconnect with `epoch=`; it changes when the room’s history was lost; null when not known yet'),
  offset: int64.nullable().describe('the last offset this client has (or will have, once it has read the frames that follow): reconnect with `after=`'),
};

export const streamHello = named(
  'StreamHello',
  'The first message on every stream: where the client stands, and the stream’s limits. After a reconnect with `after=`, `recovered` says whether every missed event follows (true, in a `replay` frame) or the current state does instead (false, a `StreamState` and a `replay` frame of recent messages).',
  z.strictObject({
    type: z.literal('hello'),
    roomId: id,
    format: z.enum(['json', 'protobuf']),
    ...streamPosition,
    recovered: z.boolean().optional(),
    sampleAbove: count.describe('viewers of this room on one server above which chat is sampled (frames then say how many they left out)'),
    eventsPerS: count.describe('chat events per second a viewer receives once sampling applies'),
    heartbeatMs: count.describe('the server pings this often; a client that misses a pong is dropped'),
  }),
);

export const streamEvents = named(
  'StreamEvents',
  'A frame of events in offset order (`events`: live; `replay`: missed or recent ones). `dropped`: events this frame left out (sampling in a big room, or gone from the history); gifts are never left out. Binary clients get the same as livemesh.chat.v1.ListRecentMessagesResponse.',
  z.strictObject({ type: z.enum(['events', 'replay']), events: z.array(roomEventJson), dropped: count }),
);

export const streamState = named(
  'StreamState',
  'The current state, sent when a reconnect could not be recovered: the room and its like total (null when their service failed); recent messages follow in a `replay` frame.',
  z.strictObject({ type: z.literal('state'), recovered: z.literal(false), ...streamPosition, room: roomJson.nullable(), likes: z.strictObject({ total: int64 }).nullable() }),
);

export const streamReplayFailed = named(
  'StreamReplayFailed',
  'Missed events could not be fetched (Chat unavailable): live events follow; reconnect later to recover.',
  z.strictObject({ type: z.literal('replay_failed'), error: errorResponse.shape.error }),
);

/** Any JSON message the stream sends. */
export const streamMessage = z.union([streamHello, streamEvents, streamState, streamReplayFailed]);

/**
 * The JSON a route answers with, as the schema describes it, for `satisfies` in the routes: every
 * field present, none extra, right types. Enum values are checked as strings (the presenters map
 * proto enums through lookup tables); the response-schema test checks the values themselves.
 */
export type Body<S extends z.ZodType> = Loose<z.input<S>>;

/**
 * The presenters' results must match their schemas both ways, or the build fails here: a field
 * a presenter adds without its schema line (or the reverse) is named in the compiler's message.
 * String unions are compared as strings, because the presenters map enums through lookup tables.
 */
type Loose<T> = T extends string ? string : T extends readonly (infer E)[] ? Loose<E>[] : T extends object ? { [K in keyof T]: Loose<T[K]> } : T;
type Fits<A extends B, B> = [A, B];
export type PresentersMatchSchemas = [
  Fits<z.output<typeof roomJson>, ReturnType<typeof presentRoom>>,
  Fits<ReturnType<typeof presentRoom>, Loose<z.output<typeof roomJson>>>,
  Fits<z.output<typeof giftJson>[], ReturnType<typeof presentGifts>>,
  Fits<ReturnType<typeof presentGifts>, Loose<z.output<typeof giftJson>>[]>,
  Fits<z.output<typeof rankEntryJson>, ReturnType<typeof presentRank>>,
  Fits<ReturnType<typeof presentRank>, Loose<z.output<typeof rankEntryJson>>>,
  Fits<z.output<typeof orderJson>, ReturnType<typeof presentOrder>>,
  Fits<ReturnType<typeof presentOrder>, Loose<z.output<typeof orderJson>>>,
  Fits<z.output<typeof roomEventJson>, ReturnType<typeof presentEvent>>,
  Fits<ReturnType<typeof presentEvent>, Loose<z.output<typeof roomEventJson>>>,
  Fits<z.output<typeof walletJson>, ReturnType<typeof presentWallet>>,
  Fits<ReturnType<typeof presentWallet>, Loose<z.output<typeof walletJson>>>,
];
