import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventPriority, RoomNoticeKind, SendMessageOutcome } from '../gen/ts/livemesh/chat/v1/chat.js';
import { Asset } from '../gen/ts/livemesh/common/v1/common.js';
import { TransferKind } from '../gen/ts/livemesh/ledger/v1/ledger.js';
import { isolate } from '../scripts/isolation.js';
import { chatApi, eventually, follow, natsProbe, refusal, startChat, untilLive, type ChatServer } from './support/chat.js';
import { ledgerApi } from './support/gift.js';
import { startLedger, type LedgerServer } from './support/ledger.js';
import { as, roomApi, startRoom, type RoomServer } from './support/room.js';

const iso = isolate('chatmsg');
let room: RoomServer;
let chat: ChatServer;
let ledger: LedgerServer;
/** A NATS connection of the test's own, for untilLive's probes. */
let nats: Awaited<ReturnType<typeof natsProbe>>;
/** EXP granted through the real Ledger: 401 EXP is level 3, 12,101 is level 12 (services/ledger/levels.ts). */
const EXP = new Map<string, string>([['501', '401'], ['502', '12101']]);
const MERGE_WINDOW_MS = 4000;

beforeAll(async () => {
  room = await startRoom(iso);
  ledger = await startLedger(iso);
  for (const [viewer, amountMinor] of EXP) {
    await ledgerApi(ledger.client).transfer(
      { transferId: `exp:test-${viewer}`, kind: TransferKind.TRANSFER_KIND_EXP_GRANT, payer: { ownerId: '0', asset: Asset.ASSET_EXP }, payee: { ownerId: viewer, asset: Asset.ASSET_EXP }, amountMinor, reference: 'level test' },
      as('1', 'admin'),
    );
  }
  chat = await startChat(iso, {
    ROOM_ADDR: room.address,
    LEDGER_ADDR: ledger.address,
    CHAT_MERGE_WINDOW_MS: String(MERGE_WINDOW_MS),
    CHAT_RATE_BURST: '3',
    CHAT_RATE_PER_MIN: '6',
  });
  nats = await natsProbe(iso);
});

afterAll(async () => {
  await nats?.close();
  await chat?.close();
  await room?.close();
  await ledger?.close();
  await iso.cleanup();
});

const api = () => chatApi(chat.client);
let n = 0;
async function newRoom(streamer = '9001'): Promise<string> {
  const { room: r } = await roomApi(room.client).createRoom({ title: `chat room ${++n}`, requestId: `chat-${n}-${Math.random()}` }, as(streamer, 'streamer'));
  return r?.roomId ?? '';
}
const send = (roomId: string, user: string, text: string, cmid = `m-${++n}`) => api().sendMessage({ roomId, text, clientMessageId: cmid, senderName: `user ${user}` }, as(user, 'viewer'));

describe('flood merge', () => {
  it('a burst of 200 identical messages becomes one merged event with count 200', async () => {
    const roomId = await newRoom();
    const sub = follow(chat.client, { roomId });
    await untilLive(nats, roomId, sub); // the stream's NATS subscription is in place
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => send(roomId, String(10_000 + i), '666')));
    const outcomes = results.map((r) => r.outcome);
    expect(outcomes.filter((o) => o === SendMessageOutcome.SEND_MESSAGE_OUTCOME_PUBLISHED)).toHaveLength(1);
    expect(outcomes.filter((o) => o === SendMessageOutcome.SEND_MESSAGE_OUTCOME_MERGED)).toHaveLength(199);
    expect(new Set(results.map((r) => r.messageId)).size).toBe(1);

    // Published once at once (count 1), then once more when the window closes (count 200).
    const chats = await eventually(() => {
      const c = sub.events().filter((e) => e.chat);
      expect(c.at(-1)?.chat?.mergedCount).toBe(200);
      return c;
    });
    expect(chats.map((e) => e.chat?.mergedCount)).toEqual([1, 200]);
    expect(new Set(chats.map((e) => e.chat?.messageId))).toEqual(new Set([results[0]?.messageId]));
    expect(chats.every((e) => e.priority === EventPriority.EVENT_PRIORITY_NORMAL)).toBe(true);
    sub.stream.cancel();

    const { events } = await api().listRecentMessages({ roomId });
    expect(events.map((e) => [e.chat?.text, e.chat?.mergedCount])).toEqual([['666', 200]]);
  });

  it('different texts are not merged, and ListRecentMessages returns them oldest first, resumable by seq', async () => {
    const roomId = await newRoom();
    await send(roomId, '601', 'hello');
    await send(roomId, '602', 'Hello');
    await send(roomId, '603', 'hello there');
    const { events } = await api().listRecentMessages({ roomId, limit: 2 });
    expect(events.map((e) => e.chat?.text)).toEqual(['Hello', 'hello there']);
    const { events: after } = await api().listRecentMessages({ roomId, afterSeq: events[0]?.seq });
    expect(after.map((e) => e.chat?.text)).toEqual(['hello there']);
  });
});

describe('retries', () => {
  it('the same client_message_id is a DUPLICATE of the first; with other text it is IDEMPOTENCY_KEY_REUSED', async () => {
    const roomId = await newRoom();
    const first = await send(roomId, '701', 'once only', 'retry-1');
    const again = await send(roomId, '701', 'once only', 'retry-1');
    // The retry of a send whose answer was lost tells the app where its line is, as the first answer did.
    expect(first.seq).not.toBe('0');
    expect(again).toEqual({ messageId: first.messageId, outcome: SendMessageOutcome.SEND_MESSAGE_OUTCOME_DUPLICATE, seq: first.seq, sendTime: first.sendTime });
    expect(await refusal(send(roomId, '701', 'something else', 'retry-1'))).toMatchObject({ code: 'ALREADY_EXISTS', reason: 'IDEMPOTENCY_KEY_REUSED', metadata: { field: 'client_message_id' } });
    const { events } = await api().listRecentMessages({ roomId });
    expect(events).toHaveLength(1);
  });
});

describe('refusals carry their reasons', () => {
  it('a muted user is refused with MUTED and the end time; lifting the mute lets them speak', async () => {
    const roomId = await newRoom('9002');
    const { mute } = await api().muteUser({ roomId, userId: '801', duration: { seconds: '600' }, reason: 'spam' }, as('9002', 'streamer'));
    expect(mute).toMatchObject({ roomId, userId: '801', mutedBy: '9002', reason: 'spam' });
    const err = await refusal(send(roomId, '801', 'let me talk'));
    expect(err).toMatchObject({ code: 'PERMISSION_DENIED', reason: 'MUTED' });
    expect(new Date(err.metadata.mute_end_time ?? '').getTime()).toBe(mute?.endTime?.getTime());
    await api().muteUser({ roomId, userId: '801' }, as('9002', 'streamer'));
    expect((await send(roomId, '801', 'thanks')).outcome).toBe(SendMessageOutcome.SEND_MESSAGE_OUTCOME_PUBLISHED);
  });

  it('a platform-wide mute (room 0) is admin-only and applies in every room', async () => {
    const roomId = await newRoom();
    expect(await refusal(api().muteUser({ roomId: '0', userId: '802', duration: { seconds: '60' } }, as('9001', 'streamer')))).toMatchObject({ code: 'PERMISSION_DENIED', reason: 'NOT_ROOM_OWNER' });
    await api().muteUser({ roomId: '0', userId: '802', duration: { seconds: '60' } }, as('1', 'admin'));
    expect(await refusal(send(roomId, '802', 'hi'))).toMatchObject({ code: 'PERMISSION_DENIED', reason: 'MUTED' });
  });

  it("only the room's streamer or an admin mutes, and the streamer cannot be muted", async () => {
    const roomId = await newRoom('9003');
    expect(await refusal(api().muteUser({ roomId, userId: '803', duration: { seconds: '60' } }, as('9004', 'streamer')))).toMatchObject({ code: 'PERMISSION_DENIED', reason: 'NOT_ROOM_OWNER' });
    expect(await refusal(api().muteUser({ roomId, userId: '9003', duration: { seconds: '60' } }, as('1', 'admin')))).toMatchObject({ code: 'FAILED_PRECONDITION', reason: 'CANNOT_MUTE' });
  });

  it('a user below the room level is refused with LEVEL_TOO_LOW and both levels; one above it speaks; the streamer is exempt', async () => {
    const roomId = await newRoom('9005');
    const { policy } = await api().setRoomPolicy({ roomId, policy: { minLevel: 10 }, updateMask: ['min_level'] }, as('9005', 'streamer'));
    expect(policy).toMatchObject({ minLevel: 10, version: '1', updatedBy: '9005' });
    expect(await refusal(send(roomId, '501', 'hello'))).toMatchObject({ code: 'PERMISSION_DENIED', reason: 'LEVEL_TOO_LOW', metadata: { min_level: '10', level: '3' } });
    expect((await send(roomId, '502', 'hello')).outcome).toBe(SendMessageOutcome.SEND_MESSAGE_OUTCOME_PUBLISHED);
    const streamer = await api().sendMessage({ roomId, text: 'welcome', clientMessageId: 's-1' }, as('9005', 'streamer'));
    expect(streamer.outcome).toBe(SendMessageOutcome.SEND_MESSAGE_OUTCOME_PUBLISHED);
    const { events } = await api().listRecentMessages({ roomId });
    expect(events.map((e) => [e.chat?.text, e.chat?.senderLevel])).toEqual([['hello', 12], ['welcome', 0]]);
  });

  it('the per-user rate limit is RESOURCE_EXHAUSTED / RATE_LIMITED with retry_after_ms in the ErrorInfo metadata', async () => {
    const roomId = await newRoom();
    for (let i = 0; i < 3; i++) await send(roomId, '901', `burst ${i}`);
    const err = await refusal(send(roomId, '901', 'one too many'));
    expect(err).toMatchObject({ code: 'RESOURCE_EXHAUSTED', reason: 'RATE_LIMITED' });
    const retryAfter = Number(err.metadata.retry_after_ms);
    // 6 per minute: a token every 10 s.
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(10_000);
    // Another user is not affected.
    expect((await send(roomId, '902', 'me too')).outcome).toBe(SendMessageOutcome.SEND_MESSAGE_OUTCOME_PUBLISHED);
  });

  it('slow mode refuses a second message with SLOW_MODE and retry_after_ms; closed chat refuses viewers', async () => {
    const roomId = await newRoom('9006');
    await api().setRoomPolicy({ roomId, policy: { slowMode: { seconds: '30' } }, updateMask: ['slow_mode'] }, as('9006', 'streamer'));
    await send(roomId, '903', 'first');
    const err = await refusal(send(roomId, '903', 'second'));
    expect(err).toMatchObject({ code: 'RESOURCE_EXHAUSTED', reason: 'SLOW_MODE' });
    expect(Number(err.metadata.retry_after_ms)).toBeGreaterThan(20_000);

    await api().setRoomPolicy({ roomId, policy: { chatClosed: true }, updateMask: ['chat_closed'] }, as('1', 'admin'));
    expect(await refusal(send(roomId, '904', 'anyone?'))).toMatchObject({ code: 'FAILED_PRECONDITION', reason: 'CHAT_CLOSED' });
    const { policy } = await api().getRoomPolicy({ roomId });
    expect(policy).toMatchObject({ chatClosed: true, slowMode: { seconds: '30' }, version: '2', updatedBy: '1' });
  });

  it('SetRoomPolicy takes update_mask paths as JSON names them (lowerCamelCase) as well as in .proto form', async () => {
    const roomId = await newRoom('9008');
    const { policy } = await api().setRoomPolicy({ roomId, policy: { minLevel: 4, slowMode: { seconds: '10' }, chatClosed: true }, updateMask: ['minLevel', 'slowMode', 'chat_closed'] }, as('9008', 'streamer'));
    expect(policy).toMatchObject({ minLevel: 4, slowMode: { seconds: '10' }, chatClosed: true, version: '1' });
    const err = await refusal(api().setRoomPolicy({ roomId, policy: { minLevel: 5 }, updateMask: ['minlevel'] }, as('9008', 'streamer')));
    expect(err).toMatchObject({ code: 'INVALID_ARGUMENT', reason: 'FIELD_INVALID' });
    expect(err.message).toContain('min_level (JSON: minLevel)');
  });

  it('SetRoomPolicy is for the owner or an admin, honours expected_version, and announces the change', async () => {
    const roomId = await newRoom('9007');
    const sub = follow(chat.client, { roomId, minPriority: EventPriority.EVENT_PRIORITY_CRITICAL });
    await untilLive(nats, roomId, sub);
    expect(await refusal(api().setRoomPolicy({ roomId, policy: { minLevel: 1 }, updateMask: ['min_level'] }, as('501', 'viewer')))).toMatchObject({ code: 'PERMISSION_DENIED', reason: 'NOT_ROOM_OWNER' });
    await api().setRoomPolicy({ roomId, policy: { minLevel: 5 }, updateMask: ['min_level'], expectedVersion: '0' }, as('9007', 'streamer'));
    expect(await refusal(api().setRoomPolicy({ roomId, policy: { minLevel: 6 }, updateMask: ['min_level'], expectedVersion: '7' }, as('9007', 'streamer')))).toMatchObject({
      code: 'ABORTED',
      reason: 'VERSION_CONFLICT',
      metadata: { current_version: '1' },
    });
    const notice = await eventually(() => {
      const e = sub.events().find((x) => x.notice);
      expect(e).toBeDefined();
      return e;
    });
    expect(notice?.notice).toMatchObject({ kind: RoomNoticeKind.ROOM_NOTICE_KIND_POLICY_CHANGED, policy: { minLevel: 5, version: '1' } });
    sub.stream.cancel();
  });

  it('an unknown room is NOT_FOUND / ROOM_NOT_FOUND', async () => {
    expect(await refusal(send('987654321', '905', 'hello?'))).toMatchObject({ code: 'NOT_FOUND', reason: 'ROOM_NOT_FOUND' });
  });
});

describe('bad input is INVALID_ARGUMENT naming the field', () => {
  let roomId = '';
  beforeAll(async () => {
    roomId = await newRoom();
  });
  const bad = async (p: Promise<unknown>) => {
    const f = await refusal(p);
    expect(f.code).toBe('INVALID_ARGUMENT');
    return f.fields;
  };

  it('empty or blank text, text over 200 characters, control characters', async () => {
    expect(await bad(send(roomId, '906', ''))).toEqual(['text']);
    expect(await bad(send(roomId, '906', '   '))).toEqual(['text']);
    expect(await bad(send(roomId, '906', 'x'.repeat(201)))).toEqual(['text']);
    expect(await bad(send(roomId, '906', 'two\nlines'))).toEqual(['text']);
    // 200 characters, counted as characters (emoji are one each), pass.
    expect((await send(roomId, '907', '🎉'.repeat(200))).outcome).toBe(SendMessageOutcome.SEND_MESSAGE_OUTCOME_PUBLISHED);
  });

  it('client_message_id, room_id, sender_name', async () => {
    expect(await bad(send(roomId, '906', 'hi', ''))).toEqual(['client_message_id']);
    expect(await bad(send(roomId, '906', 'hi', 'has space'))).toEqual(['client_message_id']);
    expect(await bad(send('0', '906', 'hi'))).toEqual(['room_id']);
    expect(await bad(api().sendMessage({ roomId, text: 'hi', clientMessageId: 'x1', senderName: 'n'.repeat(21) }, as('906', 'viewer')))).toEqual(['sender_name']);
  });

  it('a like count of 0, below 0 or over 1,000', async () => {
    for (const count of [0, -1, 1001]) expect(await bad(api().sendLikes({ roomId, count }, as('906', 'viewer')))).toEqual(['count']);
  });

  it('a recent-message limit over 100; policy values out of range; unknown mask paths', async () => {
    expect(await bad(api().listRecentMessages({ roomId, limit: 101 }))).toEqual(['limit']);
    expect(await bad(api().setRoomPolicy({ roomId, policy: { minLevel: 201 }, updateMask: ['min_level'] }, as('1', 'admin')))).toEqual(['policy.min_level']);
    expect(await bad(api().setRoomPolicy({ roomId, policy: { slowMode: { seconds: '1', nanos: 500_000_000 } }, updateMask: ['slow_mode'] }, as('1', 'admin')))).toEqual(['policy.slow_mode']);
    expect(await bad(api().setRoomPolicy({ roomId, updateMask: ['title'] }, as('1', 'admin')))).toEqual(['update_mask']);
    expect(await bad(api().muteUser({ roomId, userId: '906', duration: { seconds: String(31 * 86400) } }, as('1', 'admin')))).toEqual(['duration']);
  });

  it('no identity on a write is UNAUTHENTICATED', async () => {
    expect(await refusal(api().sendMessage({ roomId, text: 'hi', clientMessageId: 'anon' }))).toMatchObject({ code: 'UNAUTHENTICATED' });
  });
});

describe('Redis layout', () => {
  it('dedupe, slow-mode and mute keys expire; the merge count is removed when its window closes', async () => {
    const redis = new Redis(iso.urls.redisUrl, { keyPrefix: iso.redisPrefix });
    try {
      // Dedupe records ({u:<user>}:c:d:<cmid>), slow-mode markers ({c:<room>}:s:<user>) and mutes ({c:<room>}:u:<user>, {u:<user>}:c:u).
      const patterns = ['{u:*}:c:d:*', '{c:*}:s:*', '{c:*}:u:*', '{u:*}:c:u'];
      const keys = (await Promise.all(patterns.map((p) => redis.keys(`${iso.redisPrefix}${p}`)))).flat();
      expect(keys.length).toBeGreaterThan(0);
      for (const key of keys) expect(await redis.pttl(key.slice(iso.redisPrefix.length))).toBeGreaterThan(0);
      await eventually(async () => expect(await redis.keys(`${iso.redisPrefix}{c:*}:n:*`)).toEqual([]), MERGE_WINDOW_MS + 5000);
    } finally {
      redis.disconnect();
    }
  });
});
