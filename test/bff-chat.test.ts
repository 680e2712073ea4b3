/**
 * The BFF with Chat and Ranking behind it (in-process, wired as their processes are), Room and
 * Gift too: chat and likes through the API, the stream fed by Chat, resume from Chat's recent
 * messages, gift barrages and the ranking from a paid-gift event (published as Gift's outbox relay
 * publishes it), and the room screen when Chat is killed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isolate } from '../scripts/isolation.js';
import { json, seedGiftCatalog, send, startBff, until, type BffServer } from './support/bff.js';
import { openStream, type StreamClient } from './support/bff-stream.js';
import { giftPublisher, startChat, startRanking, type ChatServer, type RankingServer } from './support/chat.js';
import { startGift } from './support/gift.js';
import { as, roomApi, startRoom, type RoomServer } from './support/room.js';

const iso = isolate('bffchat');
let room: RoomServer;
let gift: Awaited<ReturnType<typeof startGift>>;
let chat: ChatServer;
let ranking: RankingServer;
let bff: BffServer;
let gifts: Awaited<ReturnType<typeof giftPublisher>>;
let viewer: Record<string, string>;
let seq = 0;
const STREAMER = '5300';

beforeAll(async () => {
  room = await startRoom(iso);
  gift = await startGift(iso, { MYSQL_DATABASE: `${iso.database}_gift`, ROOM_ADDR: room.address, LEDGER_ADDR: '127.0.0.1:1' });
  (await seedGiftCatalog(gift.address)).client.close();
  [chat, ranking] = await Promise.all([
    startChat(iso, { MYSQL_DATABASE: `${iso.database}_chat`, ROOM_ADDR: room.address }),
    startRanking(iso, { MYSQL_DATABASE: `${iso.database}_ranking`, RANKING_SNAPSHOT_MS: '300' }),
  ]);
  bff = await startBff(iso, { ROOM_ADDR: room.address, GIFT_ADDR: gift.address, CHAT_ADDR: chat.address, RANKING_ADDR: ranking.address, RATE_LIMIT_IP_PER_S: '0', RATE_LIMIT_USER_PER_S: '0' });
  gifts = await giftPublisher(iso);
  viewer = await bff.auth('7500', 'viewer', 'Chatty');
});

afterAll(async () => {
  await gifts?.close();
  await bff?.close();
  await ranking?.close();
  await chat?.close();
  await gift?.close();
  await room?.close();
  await iso.cleanup();
});

async function liveRoom(): Promise<string> {
  const rooms = roomApi(room.client);
  const id = (await rooms.createRoom({ title: `chat ${++seq}`, requestId: `chat-room-${seq}` }, as(STREAMER, 'streamer'))).room!.roomId;
  await rooms.startLive({ roomId: id }, as(STREAMER, 'streamer'));
  return id;
}

const close = (c: StreamClient) => (c.ws.close(), c.closed);

describe('chat through the BFF', () => {
  it('a message sent with POST /chat reaches the room stream and the room screen', async () => {
    const roomId = await liveRoom();
    const stream = await openStream(bff.base, roomId);
    const res = await send(bff.base, 'POST', `/v1/rooms/${roomId}/chat`, { text: 'hello room' }, viewer);
    const out = await json(res);
    expect(res.status, JSON.stringify(out)).toBe(201);
    expect(out).toMatchObject({ outcome: 'published' });
    expect(out.messageId).toMatch(/^[1-9][0-9]*$/);
    // Where the app places its own line: the message's offset in the room stream and its time.
    expect(out.seq).toMatch(/^[1-9][0-9]*$/);
    expect(Date.parse(out.sentAt)).toBeGreaterThan(Date.now() - 60_000);
    await until('the message on the stream', () => stream.events, (e) => e.some((x) => x.type === 'chat'));
    expect(stream.events.find((x) => x.type === 'chat')?.seq).toBe(out.seq);

    const screen = await json(await fetch(`${bff.base}/v1/rooms/${roomId}`));
    expect(screen.degraded).toEqual([]);
    expect(screen.ranking).toEqual([]);
    expect(screen.messages).toHaveLength(1);
    expect(screen.messages[0]).toMatchObject({ seq: out.seq, type: 'chat', chat: { text: 'hello room', senderName: 'Chatty', senderId: '7500', senderRole: 'viewer' } });
    expect(screen.likes).toEqual({ total: '0' });
    expect(screen.stream).toEqual({ offset: expect.stringMatching(/^[1-9][0-9]*$/), epoch: expect.stringMatching(/^[0-9a-f]{16}$/) });
    expect(BigInt(screen.stream.offset)).toBeGreaterThanOrEqual(BigInt(out.seq));
    await close(stream);
  });

  it("maps Chat's refusals: an unknown room is a 404 with Chat's reason", async () => {
    const res = await send(bff.base, 'POST', '/v1/rooms/999999999/chat', { text: 'anyone?' }, viewer);
    expect(res.status).toBe(404);
    expect((await json(res)).error).toMatchObject({ code: 'NOT_FOUND', reason: 'ROOM_NOT_FOUND' });
  });

  it("cuts a long display name to what Chat keeps instead of failing on a field the user never sent", async () => {
    const roomId = await liveRoom();
    const longName = await bff.auth('7501', 'viewer', `${'🎤'.repeat(15)} the longest name in the room`);
    const stream = await openStream(bff.base, roomId, 'format=json');
    const res = await send(bff.base, 'POST', `/v1/rooms/${roomId}/chat`, { text: 'hi', clientMessageId: 'long-name-1' }, longName);
    expect(res.status).toBe(201);
    await until('the message', () => stream.events, (e) => e.some((x) => x.type === 'chat'));
    const screen = await json(await fetch(`${bff.base}/v1/rooms/${roomId}`));
    expect(screen.messages[0].chat.senderName).toBe(`${'🎤'.repeat(15)} the `);
    await close(stream);
  });

  it('likes are accepted and counted', async () => {
    const roomId = await liveRoom();
    const res = await send(bff.base, 'POST', `/v1/rooms/${roomId}/likes`, { count: 5 }, viewer);
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ accepted: 5 });
  });

  it('a reconnecting client resumes with the recent messages after its last seq, then live ones', async () => {
    const roomId = await liveRoom();
    for (const text of ['one', 'two', 'three']) expect((await send(bff.base, 'POST', `/v1/rooms/${roomId}/chat`, { text }, viewer)).status).toBe(201);
    // Chat also publishes notices (online counts) on its own schedule: only chat messages are counted here.
    const chats = (c: StreamClient) => c.events.filter((e) => e.type === 'chat');
    const all = await openStream(bff.base, roomId, 'resume=1');
    await until('the replay', () => chats(all).filter((e) => e.frame === 'replay').length, (n) => n === 3);
    const seqs = chats(all).map((e) => e.seq);
    expect(seqs.map(BigInt)).toEqual([...seqs].map(BigInt).sort((a, b) => (a < b ? -1 : 1)));
    const after = await openStream(bff.base, roomId, `after=${seqs[0]}&format=protobuf`);
    await until('the shorter replay', () => chats(after).length, (n) => n === 2);
    expect(chats(after).map((e) => e.seq)).toEqual(seqs.slice(1));
    await send(bff.base, 'POST', `/v1/rooms/${roomId}/chat`, { text: 'four' }, viewer);
    await until('the live message after the replay', () => chats(after).length, (n) => n === 3);
    expect(BigInt(chats(after)[2]!.seq)).toBeGreaterThan(BigInt(seqs[2]!));
    await Promise.all([close(all), close(after)]);
  });
});

describe('paid gifts: barrage on the stream, ranking on the screens', () => {
  it('a paid-gift event shows as a gift on the stream and in the ranking routes', async () => {
    const roomId = await liveRoom();
    const stream = await openStream(bff.base, roomId);
    await gifts.publish({ orderId: `9${roomId}01`, roomId, streamerId: STREAMER, senderId: '7600', senderName: 'Big Fan', giftId: '1', count: 3, amountMinor: '300', comboCount: '3', paidTime: new Date() });
    await until('the barrage', () => stream.events, (e) => e.some((x) => x.type === 'gift'));
    const board = await until(
      'the ranking',
      async () => json(await fetch(`${bff.base}/v1/rooms/${roomId}/ranking?period=day`)),
      (b) => b.entries?.length === 1,
    );
    expect(board).toMatchObject({ roomId, period: 'day', entries: [{ rank: 1, userId: '7600', name: 'Big Fan', scoreMinor: '300' }] });
    await close(stream);
  });
});

describe('a killed non-critical upstream', () => {
  it('the room screen still renders, with messages and likes null and named in degraded', async () => {
    const roomId = await liveRoom();
    await chat.close();
    const res = await fetch(`${bff.base}/v1/rooms/${roomId}`);
    expect(res.status).toBe(200);
    const screen = await json(res);
    expect(screen.room.id).toBe(roomId);
    expect(screen.messages).toBeNull();
    expect(screen.likes).toBeNull();
    expect(screen.stream).toBeNull();
    expect(screen.degraded).toEqual(['messages', 'likes']);
    expect(screen.ranking).toEqual([]);
  });
});
