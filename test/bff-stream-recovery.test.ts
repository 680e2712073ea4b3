/**
 * The room stream end to end, as a mobile app uses it: two Chat replicas (so events cross on the
 * way and the gateway must reorder them), Room, and BFFs whose WebSockets carry what viewers
 * send through the API. Every event's seq is its offset in the room's stream, one counter for
 * every kind, kept in Chat's Redis history.
 *
 * - Below the sampling threshold: every chat message reaches every one of 50 viewers, in offset
 *   order, each sender its own; a viewer away for 30 events (gifts, chat, likes, a room edit)
 *   recovers every one of them with `after=`; one away past the history is told
 *   `recovered: false` and gets the current state.
 * - A room first joined while Chat was down learns its epoch once Chat is back, so viewers
 *   joining then can recover.
 * - Past the threshold: frames carry the dropped count, gifts are never dropped, order holds, and
 *   a sender still sees its own lines.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLOSE_RESET } from '../bff/stream/gateway.js';
import { isolate } from '../scripts/isolation.js';
import { json, send, startBff, until, type BffServer } from './support/bff.js';
import { lastOffset, openStream, type StreamClient, undocumentedMessages } from './support/bff-stream.js';
import { chatApi, giftPublisher, startChat, type ChatServer } from './support/chat.js';
import { as, roomApi, startRoom, type RoomServer } from './support/room.js';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.js';

const iso = isolate('bffwsr');
/** Events of a room Chat keeps for recovery. */
const HISTORY = 60;
const STREAMER = '5400';
let room: RoomServer;
let chats: ChatServer[];
/** Default threshold (2,000 viewers): these rooms are far below it. */
let bff: BffServer;
/** Samples past 5 viewers, at 50 events/s per viewer in 100 ms ticks (5 per frame). */
let crowded: BffServer;
/** Reaches Chat only through a proxy the test cuts: a room joined while Chat is down. */
let cutOff: BffServer;
let chatLink: TcpProxy;
let gifts: Awaited<ReturnType<typeof giftPublisher>>;
let streamer: Record<string, string>;
let seq = 0;

beforeAll(async () => {
  room = await startRoom(iso);
  const chatEnv = {
    MYSQL_DATABASE: `${iso.database}_chat`,
    ROOM_ADDR: room.address,
    CHAT_HISTORY_SIZE: String(HISTORY),
    CHAT_MERGE_WINDOW_MS: '0',
    CHAT_RATE_BURST: '1000',
    CHAT_RATE_PER_MIN: '60000',
    LIKE_FLUSH_MS: '100',
  };
  chats = await Promise.all([startChat(iso, chatEnv), startChat(iso, chatEnv)]);
  const common = { ROOM_ADDR: room.address, CHAT_ADDR: chats.map((c) => c.address).join(','), RATE_LIMIT_IP_PER_S: '0', RATE_LIMIT_USER_PER_S: '0' };
  const [chatHost, chatPort] = chats[0]!.address.split(':') as [string, string];
  chatLink = await startTcpProxy(chatHost, Number(chatPort));
  [bff, crowded, cutOff, gifts] = await Promise.all([
    startBff(iso, { ...common, STREAM_TICK_MS: '50' }),
    startBff(iso, { ...common, STREAM_SAMPLE_ABOVE: '5', STREAM_EVENTS_PER_S: '50', STREAM_TICK_MS: '100' }),
    startBff(iso, { ...common, CHAT_ADDR: `127.0.0.1:${chatLink.port}`, STREAM_TICK_MS: '50', REQUEST_BUDGET_MS: '1000' }),
    giftPublisher(iso),
  ]);
  streamer = await bff.auth(STREAMER, 'streamer', 'Host');
}, 60_000);

// Every JSON message a stream sent matches its documented schema (the OpenAPI Stream* components).
afterEach(() => {
  expect(undocumentedMessages()).toEqual([]);
});

afterAll(async () => {
  await gifts?.close();
  await crowded?.close();
  await cutOff?.close();
  await chatLink?.cut();
  await bff?.close();
  for (const c of chats ?? []) await c.close();
  await room?.close();
  await iso.cleanup();
});

async function liveRoom(): Promise<string> {
  const rooms = roomApi(room.client);
  const id = (await rooms.createRoom({ title: `recovery ${++seq}`, requestId: `ws-recovery-${seq}` }, as(STREAMER, 'streamer'))).room!.roomId;
  await rooms.startLive({ roomId: id }, as(STREAMER, 'streamer'));
  return id;
}

async function viewers(base: string, roomId: string, n: number, firstUser: number, format: (i: number) => string = () => 'json') {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const userId = String(firstUser + i);
      const auth = await bff.auth(userId, 'viewer', `fan${userId}`);
      const token = auth.authorization!.slice('Bearer '.length);
      return { userId, auth, stream: await openStream(base, roomId, `access_token=${token}&format=${format(i)}`) };
    }),
  );
}

/** POST /chat; the message's seq (its offset) from the answer. */
async function chat(base: string, roomId: string, auth: Record<string, string>, text: string): Promise<string> {
  const res = await send(base, 'POST', `/v1/rooms/${roomId}/chat`, { text }, auth);
  const out = await json(res);
  expect(res.status, JSON.stringify(out)).toBe(201);
  expect(out.outcome).toBe('published');
  return out.seq as string;
}

let order = 0;
function gift(roomId: string): string {
  const orderId = `8${roomId}${String(++order).padStart(4, '0')}`;
  void gifts.publish({ orderId, roomId, streamerId: STREAMER, senderId: '7990', senderName: 'Patron', giftId: '1', count: 1, amountMinor: '100', comboCount: '1', paidTime: new Date() });
  return orderId;
}

const seqs = (c: StreamClient) => c.events.map((e) => BigInt(e.seq));
const ascending = (xs: bigint[]) => xs.every((x, i) => i === 0 || x > xs[i - 1]!);
const close = (c: StreamClient) => (c.ws.close(), c.closed);

describe('a room below the sampling threshold', () => {
  it('50 viewers: every chat message reaches every viewer, in offset order, each sender its own', async () => {
    const roomId = await liveRoom();
    const crowd = await viewers(bff.base, roomId, 50, 7000, (i) => (i % 5 === 4 ? 'protobuf' : 'json'));
    // Everyone talks at once, twice: 100 messages through two Chat replicas.
    const sent = (await Promise.all(crowd.flatMap((v) => [1, 2].map((k) => chat(bff.base, roomId, v.auth, `${v.userId} says ${k}`))))).map(BigInt);
    expect(new Set(sent).size).toBe(100);
    await until('every viewer to have every message', () => crowd.filter((v) => v.stream.events.filter((e) => e.type === 'chat').length >= 100).length, (n) => n === 50, 30_000);
    const expected = [...sent].sort((a, b) => (a < b ? -1 : 1));
    for (const v of crowd) {
      const all = seqs(v.stream);
      expect(ascending(all), `viewer ${v.userId} got ${all.join(',')}`).toBe(true);
      expect(v.stream.events.filter((e) => e.type === 'chat').map((e) => BigInt(e.seq))).toEqual(expected);
      expect(v.stream.dropped).toBe(0);
      if (v.stream.hello.format === 'json') {
        const own = v.stream.events.filter((e) => e.body?.chat?.senderId === v.userId);
        expect(own.map((e) => e.body?.chat?.text).sort()).toEqual([`${v.userId} says 1`, `${v.userId} says 2`]);
        expect(own[0]?.body?.chat?.senderRole).toBe('viewer');
      }
    }
    await Promise.all(crowd.map((v) => close(v.stream)));
  }, 90_000);

  it('a viewer away for 30 events of every kind reconnects with after= and gets all of them, in order', async () => {
    const roomId = await liveRoom();
    const [watcher, away] = await viewers(bff.base, roomId, 2, 7100);
    const talker = await bff.auth('7150', 'viewer', 'Talker');
    await chat(bff.base, roomId, talker, 'before the tunnel');
    await until('the first message', () => away!.stream.events.length, (n) => n >= 1);
    const { epoch } = away!.stream.hello as { epoch: string };
    expect(epoch).toMatch(/^[0-9a-f]{16}$/);
    const after = lastOffset(away!.stream);
    await close(away!.stream);

    // 30 events while it is away: 12 chats, 12 gifts, likes (one burst per flush), a room edit; the rest chats.
    const orderIds: string[] = [];
    const chatSeqs: string[] = [];
    for (let i = 0; i < 12; i++) {
      chatSeqs.push(await chat(bff.base, roomId, talker, `in the tunnel ${i}`));
      orderIds.push(gift(roomId));
    }
    await gifts.flush();
    await until('the gifts', () => watcher!.stream.events.filter((e) => e.type === 'gift').length, (n) => n === 12);
    expect((await send(bff.base, 'POST', `/v1/rooms/${roomId}/likes`, { count: 7 }, talker)).status).toBe(200);
    await until('the like burst', () => watcher!.stream.events.some((e) => e.type === 'likes'), Boolean);
    const patched = await send(bff.base, 'PATCH', `/v1/rooms/${roomId}`, { title: 'After the tunnel', notice: 'Welcome back' }, streamer);
    expect(patched.status, JSON.stringify(await json(patched))).toBe(200);
    await until('the room edit', () => watcher!.stream.events.some((e) => e.type === 'room'), Boolean);
    const missedSoFar = () => watcher!.stream.events.filter((e) => BigInt(e.seq) > BigInt(after)).length;
    for (let i = 0; missedSoFar() < 30; i++) chatSeqs.push(await chat(bff.base, roomId, talker, `still away ${i}`));
    await until('the watcher to see the last one', () => watcher!.stream.events.map((e) => e.seq), (s) => s.includes(chatSeqs[chatSeqs.length - 1]!));
    const missed = watcher!.stream.events.filter((e) => BigInt(e.seq) > BigInt(after));

    const back = await openStream(bff.base, roomId, `after=${after}&epoch=${epoch}`);
    expect(back.hello).toMatchObject({ type: 'hello', recovered: true, epoch });
    await until('the replay', () => back.events.filter((e) => e.frame === 'replay').length, (n) => n >= missed.length);
    const replay = back.events.filter((e) => e.frame === 'replay');
    // Every offset after the one it had, none twice, none missing: the history holds every kind.
    const top = BigInt(back.hello.offset as string);
    expect(replay.map((e) => BigInt(e.seq))).toEqual(Array.from({ length: Number(top - BigInt(after)) }, (_, i) => BigInt(after) + 1n + BigInt(i)));
    expect(replay.map((e) => e.seq).slice(0, missed.length)).toEqual(missed.map((e) => e.seq));
    expect(replay.filter((e) => e.type === 'gift').map((e) => e.body?.gift?.orderId).sort()).toEqual([...orderIds].sort());
    expect(replay.filter((e) => e.type === 'chat').map((e) => e.seq)).toEqual(chatSeqs);
    expect(replay.filter((e) => e.type === 'likes').reduce((n, e) => n + Number(e.body?.likes?.count), 0)).toBe(7);
    expect(replay.find((e) => e.type === 'room')?.body).toMatchObject({ type: 'room', priority: 'critical', room: { title: 'After the tunnel', notice: 'Welcome back' } });

    // Live events follow the replay without a seam.
    const next = await chat(bff.base, roomId, talker, 'out of the tunnel');
    await until('the live message', () => back.events.map((e) => e.seq), (s) => s.includes(next));
    expect(ascending(seqs(back))).toBe(true);
    await Promise.all([close(back), close(watcher!.stream)]);
  }, 90_000);

  it('a viewer away past the history is told recovered: false and gets the current state', async () => {
    const roomId = await liveRoom();
    const [away] = await viewers(bff.base, roomId, 1, 7200);
    const talker = await bff.auth('7250', 'viewer', 'Talker');
    await chat(bff.base, roomId, talker, 'hello');
    await until('the first message', () => away!.stream.events.length, (n) => n >= 1);
    const { epoch } = away!.stream.hello as { epoch: string };
    const after = lastOffset(away!.stream);
    await close(away!.stream);
    expect((await send(bff.base, 'POST', `/v1/rooms/${roomId}/likes`, { count: 3 }, talker)).status).toBe(200);
    let last = '';
    for (let i = 0; i < HISTORY + 5; i++) last = await chat(bff.base, roomId, talker, `while away ${i}`);
    await until('the like total', async () => (await chatApi(chats[0]!.client).getLikeCount({ roomId })).likeCount, (n) => n === '3');

    const back = await openStream(bff.base, roomId, `after=${after}&epoch=${epoch}`);
    expect(back.hello).toMatchObject({ type: 'hello', recovered: false, epoch });
    expect(BigInt(back.hello.offset as string)).toBeGreaterThanOrEqual(BigInt(last));
    await until('the state', () => back.control.find((m) => m.type === 'state'), Boolean);
    expect(back.control.find((m) => m.type === 'state')).toMatchObject({
      type: 'state',
      recovered: false,
      epoch,
      offset: back.hello.offset,
      room: { id: roomId, live: true },
      likes: { total: '3' },
    });
    // The recent messages (the room screen's), ending with the last one sent.
    await until('the recent messages', () => back.events.filter((e) => e.frame === 'replay').length, (n) => n > 0);
    const recent = back.events.filter((e) => e.frame === 'replay');
    expect(recent.every((e) => e.type === 'chat')).toBe(true);
    expect(recent[recent.length - 1]?.seq).toBe(last);

    // A wrong epoch (a reset history) is not recovered either, even for an offset the history has.
    const stale = await openStream(bff.base, roomId, `after=${last}&epoch=0000000000000000`);
    expect(stale.hello).toMatchObject({ recovered: false });
    await Promise.all([close(back), close(stale)]);
  }, 90_000);
});

describe('a history that is lost', () => {
  it('gives the room a new epoch: open streams are closed with 4009 and a reconnect gets the current state', async () => {
    const roomId = await liveRoom();
    const [viewer] = await viewers(bff.base, roomId, 1, 7400);
    const talker = await bff.auth('7450', 'viewer', 'Talker');
    await chat(bff.base, roomId, talker, 'before the loss');
    await until('the message', () => viewer!.stream.events.length, (n) => n >= 1);
    const { epoch } = viewer!.stream.hello as { epoch: string };
    const after = lastOffset(viewer!.stream);
    // What a Redis failover without persistence (or an eviction) does to the room's stream state.
    const redis = new Redis(iso.urls.redisUrl, { keyPrefix: iso.redisPrefix });
    try {
      await redis.del(`{c:${roomId}}:m`);
    } finally {
      redis.disconnect();
    }
    const restarted = await chat(bff.base, roomId, talker, 'after the loss');
    expect(BigInt(restarted)).toBeLessThanOrEqual(BigInt(after));
    expect((await viewer!.stream.closed).code).toBe(CLOSE_RESET);
    const back = await openStream(bff.base, roomId, `after=${after}&epoch=${epoch}`);
    expect(back.hello).toMatchObject({ recovered: false, offset: restarted });
    expect(back.hello.epoch).not.toBe(epoch);
    await until('the recent messages', () => back.events.filter((e) => e.frame === 'replay').map((e) => e.body?.chat?.text), (t) => t.includes('after the loss'));
    await close(back);
  }, 60_000);
});

describe('a room first joined while Chat was down', () => {
  it('learns its epoch once Chat is back, so viewers joining then can recover', async () => {
    const roomId = await liveRoom();
    await chatLink.cut();
    const early = await openStream(cutOff.base, roomId);
    try {
      // No position: the room follows from its first event, and the hello has no epoch to recover with.
      expect(early.hello).toMatchObject({ type: 'hello', epoch: null });
      const first = gift(roomId);
      await gifts.flush();
      await until('the gift', () => early.events.map((e) => e.body?.gift?.orderId), (ids) => ids.includes(first));
    } finally {
      await chatLink.resume();
    }
    const chatEpoch = (await chatApi(chats[0]!.client).getRoomHistory({ roomId, afterOffset: '0', limit: 1 })).position!.epoch;
    expect(chatEpoch).toMatch(/^[0-9a-f]{16}$/);
    // The BFF's channel to Chat may still be backing off: a viewer joining a little later gets the epoch.
    let late: StreamClient | undefined;
    await until('a hello with the epoch', async () => {
      if (late) await close(late);
      late = await openStream(cutOff.base, roomId);
      return late.hello.epoch;
    }, (epoch) => epoch === chatEpoch, 30_000);
    const after = String(late!.hello.offset);
    await close(late!);

    const missed = [gift(roomId), gift(roomId), gift(roomId)];
    await gifts.flush();
    await until('the gifts on the early stream', () => early.events.filter((e) => e.type === 'gift').length, (n) => n === 1 + missed.length);
    const back = await openStream(cutOff.base, roomId, `after=${after}&epoch=${chatEpoch}`);
    expect(back.hello).toMatchObject({ recovered: true, epoch: chatEpoch });
    await until('the replay', () => back.events.filter((e) => e.frame === 'replay').length, (n) => n >= missed.length);
    expect(back.events.filter((e) => e.frame === 'replay').map((e) => e.body?.gift?.orderId).sort()).toEqual([...missed].sort());
    await Promise.all([close(back), close(early)]);
  }, 60_000);
});

describe('a room past the sampling threshold', () => {
  it('frames carry the dropped count, gifts are never dropped, order holds, a sender sees its own lines', async () => {
    const roomId = await liveRoom();
    const crowd = await viewers(crowded.base, roomId, 8, 7300, (i) => (i === 7 ? 'protobuf' : 'json'));
    expect(crowd[0]!.stream.hello).toMatchObject({ sampleAbove: 5, eventsPerS: 50 });
    const sender = crowd[0]!;
    // A burst far above 5 events per 100 ms frame: 120 chats from one viewer, 15 gifts among them.
    const orderIds: string[] = [];
    const sent: string[] = [];
    for (let i = 0; i < 6; i++) {
      sent.push(...(await Promise.all(Array.from({ length: 20 }, (_, j) => chat(crowded.base, roomId, sender.auth, `burst ${i}-${j}`)))));
      for (let k = 0; k < 3; k++) orderIds.push(gift(roomId));
    }
    await gifts.flush();
    await until('every gift everywhere', () => crowd.filter((v) => v.stream.events.filter((e) => e.type === 'gift').length === orderIds.length).length, (n) => n === crowd.length, 30_000);
    await until('every chat delivered or counted as dropped', () => Math.min(...crowd.map((v) => v.stream.events.filter((e) => e.type === 'chat').length + v.stream.dropped)), (n) => n >= sent.length, 30_000);
    for (const v of crowd) {
      expect(ascending(seqs(v.stream)), `viewer ${v.userId}`).toBe(true);
      // Two Chat replicas consume the paid-gift stream: gifts are in offset order, which is not order-id order.
      if (v.stream.hello.format === 'json') expect(v.stream.events.filter((e) => e.type === 'gift').map((e) => e.body?.gift?.orderId).sort()).toEqual([...orderIds].sort());
      if (v === sender) continue;
      expect(v.stream.dropped).toBeGreaterThan(0);
      expect(v.stream.frameDrops.some((d) => d > 0)).toBe(true);
      expect(v.stream.events.filter((e) => e.type === 'chat').length).toBeLessThan(sent.length);
    }
    // The sender's frames carry every one of its own lines, the sample notwithstanding.
    await until('the sender to have all its lines', () => sender.stream.events.filter((e) => e.type === 'chat').length, (n) => n === sent.length, 30_000);
    expect(sender.stream.events.filter((e) => e.type === 'chat').map((e) => e.seq)).toEqual([...sent].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1)));
    await Promise.all(crowd.map((v) => close(v.stream)));
  }, 90_000);
});
