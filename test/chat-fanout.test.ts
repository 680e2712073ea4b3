import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentials } from '@grpc/grpc-js';
import { ChatServiceClient, EventPriority, RoomEvent, RoomNoticeKind } from '../gen/ts/livemesh/chat/v1/chat.js';
import { isolate } from '../scripts/isolation.js';
import { chatApi, eventually, follow, giftConsumerIdle, giftPublisher, startChat, untilLive, type ChatServer } from './support/chat.js';
import { startGift } from './support/gift.js';
import { as, roomApi, startRoom, type RoomServer } from './support/room.js';

const iso = isolate('chatfan');
/** Gift's own database and prefixes: only its AckOrderEffect is exercised here. */
const giftIso = isolate('chatfangift');
let room: RoomServer;
let gift: Awaited<ReturnType<typeof startGift>>;
const replicas: ChatServer[] = [];
let gifts: Awaited<ReturnType<typeof giftPublisher>>;

beforeAll(async () => {
  room = await startRoom(iso, { HOT_REFRESH_MS: '500' });
  // The real Gift service receives Chat's AckOrderEffect(BARRAGE) calls. Orders it can pay need
  // the Ledger (not on main yet), so the events here are for orders Gift does not have: it must
  // accept the call (identity, effect) and answer ORDER_NOT_FOUND, which Chat logs and acks.
  gift = await startGift(giftIso, { ROOM_ADDR: room.address, LEDGER_ADDR: '127.0.0.1:9' });
  const env = { ROOM_ADDR: room.address, GIFT_ADDR: gift.address, LIKE_FLUSH_MS: '300', SUBSCRIBE_BUFFER: '300', GIFT_CONSUMER_ACK_WAIT_MS: '2000', CHAT_ONLINE_NOTICE_MS: '500' };
  for (let i = 0; i < 3; i++) replicas.push(await startChat(iso, env));
  gifts = await giftPublisher(iso);
});

afterAll(async () => {
  await gifts?.close();
  await Promise.all(replicas.map((r) => r.close()));
  await gift?.close();
  await room?.close();
  await iso.cleanup();
  await giftIso.cleanup();
});

let n = 0;
async function newRoom(streamer = '9101'): Promise<string> {
  const { room: r } = await roomApi(room.client).createRoom({ title: `fan room ${++n}`, requestId: `fan-${n}-${Math.random()}` }, as(streamer, 'streamer'));
  return r?.roomId ?? '';
}

describe('likes', () => {
  it('likes sent through 3 replicas sum exactly, and arrive as bursts, not one event per like', async () => {
    const roomId = await newRoom();
    const sub = follow(replicas[0]!.client, { roomId, minPriority: EventPriority.EVENT_PRIORITY_LOW });
    // Every burst must reach the stream, so it has to be live before the first like.
    await untilLive(gifts, roomId, sub);
    let expected = 0;
    const sends: Array<Promise<unknown>> = [];
    for (let i = 0; i < 300; i++) {
      const count = (i % 7) + 1;
      expected += count;
      const replica = replicas[i % 3] as ChatServer;
      sends.push(chatApi(replica.client).sendLikes({ roomId, count }, as(String(20_000 + (i % 50)), 'viewer')));
    }
    const accepted = (await Promise.all(sends)) as Array<{ acceptedCount: number }>;
    expect(accepted.reduce((a, r) => a + r.acceptedCount, 0)).toBe(expected);

    await eventually(async () => {
      const { likeCount, updateTime } = await chatApi(replicas[2]!.client).getLikeCount({ roomId });
      expect(likeCount).toBe(String(expected));
      expect(updateTime).toBeInstanceOf(Date);
    });
    const bursts = await eventually(() => {
      const b = sub.events().filter((e) => e.likes);
      expect(b.reduce((a, e) => a + Number(e.likes?.likeCount), 0)).toBe(expected);
      return b;
    });
    expect(bursts.length).toBeLessThan(300);
    expect(bursts.every((e) => e.priority === EventPriority.EVENT_PRIORITY_LOW)).toBe(true);
    expect(Math.max(...bursts.map((e) => Number(e.likes?.totalLikeCount)))).toBe(expected);
    sub.stream.cancel();
  });
});

describe('Subscribe', () => {
  it('a slow consumer is cut off with RESOURCE_EXHAUSTED / SUBSCRIBER_TOO_SLOW; a fast one in the same room gets everything', async () => {
    const roomId = await newRoom();
    // Separate connections, as separate consumers have: streams sharing one HTTP/2 connection
    // also share its flow-control window.
    const slowClient = new ChatServiceClient(replicas[1]!.address, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
    const fast = follow(replicas[1]!.client, { roomId });
    const slow = follow(slowClient, { roomId });
    const announce = (i: number) =>
      gifts.raw(
        `chat.room.${roomId}`,
        RoomEvent.encode({
          seq: String(i),
          priority: EventPriority.EVENT_PRIORITY_CRITICAL,
          eventTime: new Date(),
          roomId,
          notice: { kind: RoomNoticeKind.ROOM_NOTICE_KIND_ANNOUNCEMENT, onlineCount: '0', text: `announcement ${i} ${'x'.repeat(180)}`, policy: undefined },
        }).finish(),
      );
    // Both streams are live once each has its first event; then the slow reader stops reading.
    await eventually(async () => {
      announce(1);
      await gifts.flush();
      expect(fast.got.length > 0 && slow.got.length > 0).toBe(true);
    });
    slow.stream.pause();
    // Events from seq 2 on (late copies of the seq 1 probe may still arrive).
    const measured = () => fast.events().filter((e) => Number(e.seq) >= 2);
    const fastSeen = () => measured().length;
    // Batches the fast reader keeps up with, until the slow one has fallen 300 events behind
    // (its transport windows fill first, then the server-side buffer).
    const total = 4000;
    for (let i = 1; i <= total; i++) {
      announce(i + 1);
      if (i % 100 === 0) await eventually(() => expect(fastSeen()).toBeGreaterThanOrEqual(i));
    }
    await eventually(() => expect(fastSeen()).toBe(total));
    expect(measured().map((e) => Number(e.seq))).toEqual(Array.from({ length: total }, (_, i) => i + 2));
    expect(fast.state.ended).toBeUndefined();

    slow.stream.resume();
    await eventually(() => expect(slow.state.ended).toEqual({ code: 'RESOURCE_EXHAUSTED', reason: 'SUBSCRIBER_TOO_SLOW' }), 30_000);
    expect(slow.got.length).toBeLessThan(total);
    expect(replicas[1]!.useCases.subscriptions.cut).toBeGreaterThanOrEqual(1);
    // The fast stream is still open and still served.
    await chatApi(replicas[0]!.client).sendMessage({ roomId, text: 'still there?', clientMessageId: 'after-cut' }, as('3001', 'viewer'));
    await eventually(() => expect(fast.events().at(-1)?.chat?.text).toBe('still there?'));
    expect(fast.state.ended).toBeUndefined();
    fast.stream.cancel();
    slowClient.close();
  });

  it('replays recent messages first (marked replayed), then live events; min_priority filters', async () => {
    const roomId = await newRoom();
    for (const text of ['one', 'two', 'three']) await chatApi(replicas[0]!.client).sendMessage({ roomId, text, clientMessageId: `rp-${text}` }, as(`31${text.length}${text.charCodeAt(0)}`, 'viewer'));
    const sub = follow(replicas[2]!.client, { roomId, replayRecent: 2 });
    const high = follow(replicas[2]!.client, { roomId, minPriority: EventPriority.EVENT_PRIORITY_HIGH });
    await eventually(() => expect(sub.got).toHaveLength(2));
    // Both live before 'four' is sent: the filtered stream then really had the chance to get it.
    await untilLive(gifts, roomId, sub, high);
    await chatApi(replicas[1]!.client).sendMessage({ roomId, text: 'four', clientMessageId: 'rp-four' }, as('3199', 'viewer'));
    await eventually(() => expect(sub.got).toHaveLength(3));
    expect(sub.got.map((r) => [r.event?.chat?.text, r.replayed])).toEqual([['two', true], ['three', true], ['four', false]]);
    expect(high.got).toHaveLength(0);
    sub.stream.cancel();
    high.stream.cancel();
  });

  it('a drained replica ends its streams with UNAVAILABLE / DRAINING, not OK, and the consumer resubscribes on another replica', async () => {
    const roomId = await newRoom();
    // A replica of its own, so the other tests keep their three.
    const leaving = await startChat(iso, { ROOM_ADDR: room.address, GIFT_ADDR: gift.address, SUBSCRIBE_BUFFER: '300' });
    try {
      const subs = [follow(leaving.client, { roomId }), follow(leaving.client, { roomId, minPriority: EventPriority.EVENT_PRIORITY_HIGH })];
      await untilLive(gifts, roomId, ...subs);
      await leaving.host.drain();
      for (const sub of subs) await eventually(() => expect(sub.state.ended).toEqual({ code: 'UNAVAILABLE', reason: 'DRAINING' }));
      expect(leaving.useCases.subscriptions.active).toBe(0);

      // What a client does on DRAINING: subscribe again (here, to a replica still serving) and
      // pick up what it missed with replay_recent.
      await chatApi(replicas[0]!.client).sendMessage({ roomId, text: 'while you were away', clientMessageId: 'drain-gap' }, as('3301', 'viewer'));
      const again = follow(replicas[1]!.client, { roomId, replayRecent: 5 });
      await eventually(() => expect(again.got.map((r) => [r.event?.chat?.text, r.replayed])).toEqual([['while you were away', true]]));
      again.stream.cancel();
    } finally {
      await leaving.close();
    }
  });

  it('an unknown room is NOT_FOUND and a bad replay count INVALID_ARGUMENT, on the stream', async () => {
    const missing = follow(replicas[0]!.client, { roomId: '99999999' });
    await eventually(() => expect(missing.state.ended).toEqual({ code: 'NOT_FOUND', reason: 'ROOM_NOT_FOUND' }));
    const bad = follow(replicas[0]!.client, { roomId: await newRoom(), replayRecent: 101 });
    await eventually(() => expect(bad.state.ended).toEqual({ code: 'INVALID_ARGUMENT', reason: 'FIELD_INVALID' }));
  });
});

describe('gift barrages and notices', () => {
  it('a paid gift becomes one HIGH barrage under 300 bytes, however often the event is redelivered', async () => {
    const roomId = await newRoom('9102');
    const sub = follow(replicas[0]!.client, { roomId, minPriority: EventPriority.EVENT_PRIORITY_HIGH });
    await untilLive(gifts, roomId, sub);
    const gift = {
      orderId: '4611686018427387904',
      roomId,
      streamerId: '9102',
      senderId: '4611686018427387905',
      senderName: '😀'.repeat(20),
      giftId: '4611686018427387906',
      count: 99,
      amountMinor: '4611686018427387907',
      comboCount: '4611686018427387908',
      paidTime: new Date(),
    };
    await gifts.publish(gift);
    await gifts.publish(gift); // the relay re-publishing: dropped by the stream's duplicate window
    await gifts.publish({ ...gift, attempt: 1 }); // RetryOrder: a new message id, Chat's own dedupe
    await gifts.publish({ ...gift, orderId: '77', amountMinor: '100', senderName: 'second' });
    const barrages = await eventually(() => {
      const b = sub.events().filter((e) => e.gift);
      expect(b.map((e) => e.gift?.orderId)).toContain('77');
      return b;
    });
    // Every delivery reported to Gift and acknowledged: none is left pending or redelivered forever.
    // Chat publishes a barrage before it acknowledges the event, so once the consumer is idle every
    // barrage there will be is on its way: only then is "one per order" checked.
    await eventually(() => giftConsumerIdle(iso, 'chat-barrage'));
    await new Promise((r) => setTimeout(r, 300));
    expect(sub.events().filter((e) => e.gift).map((e) => e.gift?.orderId).sort()).toEqual(['4611686018427387904', '77']);
    const big = barrages.find((e) => e.gift?.orderId === gift.orderId) as RoomEvent;
    expect(big.priority).toBe(EventPriority.EVENT_PRIORITY_HIGH);
    expect(big.gift).toMatchObject({ senderId: gift.senderId, senderName: gift.senderName, count: 99, comboCount: gift.comboCount, amountMinor: gift.amountMinor });
    expect(RoomEvent.encode(big).finish().length).toBeLessThan(300);
    sub.stream.cancel();
    const refusals = replicas.flatMap((r) => r.logs.lines.filter((l) => l.msg === 'Gift refused AckOrderEffect for good; not retried'));
    expect(refusals.map((l) => l.orderId)).toEqual(expect.arrayContaining(['4611686018427387904', '77']));
  });

  it('a gift paid long ago (a consumer catching up) is acknowledged without a barrage', async () => {
    const roomId = await newRoom('9103');
    const sub = follow(replicas[1]!.client, { roomId, minPriority: EventPriority.EVENT_PRIORITY_HIGH });
    await untilLive(gifts, roomId, sub);
    await gifts.publish({ orderId: '88', roomId, streamerId: '9103', senderId: '5', amountMinor: '10', paidTime: new Date(Date.now() - 3600_000) });
    await gifts.publish({ orderId: '89', roomId, streamerId: '9103', senderId: '5', amountMinor: '10', paidTime: new Date() });
    await eventually(() => expect(sub.events().map((e) => e.gift?.orderId)).toEqual(['89']));
    sub.stream.cancel();
  });

  it('going live, a title edit and going offline are each announced once, in order, whichever replicas hear them', async () => {
    const roomId = await newRoom('9104');
    const subs = replicas.map((r) => follow(r.client, { roomId, minPriority: EventPriority.EVENT_PRIORITY_CRITICAL }));
    await untilLive(gifts, roomId, ...subs);
    await roomApi(room.client).startLive({ roomId }, as('9104', 'streamer'));
    await roomApi(room.client).updateRoom({ roomId, room: { title: 'renamed' }, updateMask: ['title'] }, as('9104', 'streamer'));
    await roomApi(room.client).stopLive({ roomId }, as('9104', 'streamer'));
    for (const sub of subs) {
      await eventually(() =>
        expect(sub.events().map((e) => e.notice?.kind ?? e.room?.title)).toEqual([RoomNoticeKind.ROOM_NOTICE_KIND_LIVE_STARTED, 'renamed', RoomNoticeKind.ROOM_NOTICE_KIND_LIVE_STOPPED]),
      );
      // One offset counter per room for every kind: consecutive events, consecutive offsets.
      const offsets = sub.events().map((e) => BigInt(e.seq));
      expect(offsets.every((o, i) => i === 0 || o === offsets[i - 1]! + 1n)).toBe(true);
      sub.stream.cancel();
    }
  });

  it('online counts are announced throttled, once per change across replicas, never per enter or leave', async () => {
    const roomId = await newRoom('9105');
    await roomApi(room.client).startLive({ roomId }, as('9105', 'streamer'));
    const sub = follow(replicas[2]!.client, { roomId, minPriority: EventPriority.EVENT_PRIORITY_LOW });
    await untilLive(gifts, roomId, sub);
    const counts = () => sub.events().filter((e) => e.notice?.kind === RoomNoticeKind.ROOM_NOTICE_KIND_ONLINE_COUNT).map((e) => e.notice?.onlineCount);
    for (const session of ['a', 'b', 'c']) await roomApi(room.client).enterRoom({ roomId, sessionId: session }, as('3300', 'viewer'));
    await eventually(() => expect(counts().at(-1)).toBe('3'));
    await roomApi(room.client).enterRoom({ roomId, sessionId: 'd' }, as('3301', 'viewer'));
    await eventually(() => expect(counts().at(-1)).toBe('4'));
    // Each count once, though three replicas run the announcer; no notice per enter. Checked after
    // two more announcer intervals, so a second replica's copy would have had its chance to arrive.
    await new Promise((r) => setTimeout(r, 2 * 500 + 100));
    expect(counts().filter((c) => c === '4')).toHaveLength(1);
    const onlineNotices = sub.events().filter((e) => e.notice?.kind === RoomNoticeKind.ROOM_NOTICE_KIND_ONLINE_COUNT);
    expect(new Set(onlineNotices.map((e) => e.priority))).toEqual(new Set([EventPriority.EVENT_PRIORITY_LOW]));
    sub.stream.cancel();
  });
});
