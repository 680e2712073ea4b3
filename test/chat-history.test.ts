/**
 * A room's stream in Chat: one offset counter per room for every kind of event, a capped history
 * in Redis, GetRoomHistory's recovery (every missed event, or `recovered: false` with the
 * position) and its refusals of bad input. Real Room, Chat and Redis.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SendMessageOutcome } from '../gen/ts/livemesh/chat/v1/chat.js';
import { isolate } from '../scripts/isolation.js';
import { chatApi, refusal, startChat, type ChatServer } from './support/chat.js';
import { as, roomApi, startRoom, type RoomServer } from './support/room.js';

const iso = isolate('chathist');
const HISTORY = 10;
let room: RoomServer;
let chat: ChatServer;

beforeAll(async () => {
  room = await startRoom(iso);
  chat = await startChat(iso, { ROOM_ADDR: room.address, CHAT_HISTORY_SIZE: String(HISTORY), CHAT_MERGE_WINDOW_MS: '0', CHAT_RATE_BURST: '1000', CHAT_RATE_PER_MIN: '60000', LIKE_FLUSH_MS: '100' });
});

afterAll(async () => {
  await chat?.close();
  await room?.close();
  await iso.cleanup();
});

const api = () => chatApi(chat.client);
let n = 0;
async function newRoom(): Promise<string> {
  const { room: r } = await roomApi(room.client).createRoom({ title: `history ${++n}`, requestId: `history-${n}-${Date.now()}` }, as('9201', 'streamer'));
  return r!.roomId;
}
const say = (roomId: string, text: string) => api().sendMessage({ roomId, text, clientMessageId: `h-${++n}`, senderName: 'fan' }, as('9202', 'viewer'));

describe('GetRoomHistory', () => {
  it('gives every event after an offset, of every kind, at consecutive offsets; a gap past the history is not recovered', async () => {
    const roomId = await newRoom();
    const first = await say(roomId, 'one');
    expect(first.outcome).toBe(SendMessageOutcome.SEND_MESSAGE_OUTCOME_PUBLISHED);
    expect(first.seq).toBe('1');
    expect(first.sendTime).toBeInstanceOf(Date);
    await api().sendLikes({ roomId, count: 4 }, as('9202', 'viewer'));
    // The like burst takes the next offset when the replica flushes.
    const afterLikes = await (async () => {
      for (let i = 0; i < 100; i++) {
        const h = await api().getRoomHistory({ roomId, afterOffset: '1' });
        if (h.events.some((e) => e.likes)) return h;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('no like burst in the history');
    })();
    expect(afterLikes).toMatchObject({ recovered: true, position: { offset: '2', epoch: expect.stringMatching(/^[0-9a-f]{16}$/) } });
    expect(afterLikes.events.map((e) => [e.seq, e.likes?.likeCount])).toEqual([['2', '4']]);
    const epoch = afterLikes.position!.epoch;
    const third = await say(roomId, 'three');
    expect(third.seq).toBe('3');

    const all = await api().getRoomHistory({ roomId, afterOffset: '0', epoch });
    expect(all.recovered).toBe(true);
    expect(all.events.map((e) => [e.seq, e.chat?.text ?? 'likes'])).toEqual([['1', 'one'], ['2', 'likes'], ['3', 'three']]);
    expect(await api().getRoomHistory({ roomId, afterOffset: '3', epoch })).toMatchObject({ recovered: true, events: [], position: { offset: '3', epoch } });
    // A limit below the gap, another epoch, an offset never handed out: not recovered, position only.
    for (const req of [{ afterOffset: '0', limit: 2, epoch }, { afterOffset: '1', epoch: 'ffffffffffffffff' }, { afterOffset: '9', epoch }]) {
      expect(await api().getRoomHistory({ roomId, ...req })).toMatchObject({ recovered: false, events: [], position: { offset: '3', epoch } });
    }

    // Past the capped history: the oldest are gone, so a client that far behind gets the position.
    for (let i = 0; i < HISTORY; i++) await say(roomId, `more ${i}`);
    expect(await api().getRoomHistory({ roomId, afterOffset: '1', epoch })).toMatchObject({ recovered: false, position: { offset: String(3 + HISTORY) } });
    const tail = await api().getRoomHistory({ roomId, afterOffset: '3', epoch });
    expect(tail.recovered).toBe(true);
    expect(tail.events.map((e) => e.seq)).toEqual(Array.from({ length: HISTORY }, (_, i) => String(4 + i)));

    // The recent messages come with the position they were read at.
    const recent = await api().listRecentMessages({ roomId, limit: 3 });
    expect(recent.position).toEqual({ offset: String(3 + HISTORY), epoch });
    expect(recent.events.map((e) => e.seq)).toEqual([String(1 + HISTORY), String(2 + HISTORY), String(3 + HISTORY)]);
  });

  it('keeps its keys under the room hash tag; a lost stream hash starts a new epoch at offset 1', async () => {
    const roomId = await newRoom();
    await say(roomId, 'hello');
    const redis = new Redis(iso.urls.redisUrl, { keyPrefix: iso.redisPrefix });
    try {
      const keys = (await redis.keys(`${iso.redisPrefix}{c:${roomId}}:*`)).map((k) => k.slice(iso.redisPrefix.length));
      expect(keys).toEqual(expect.arrayContaining([`{c:${roomId}}:m`, `{c:${roomId}}:r`, `{c:${roomId}}:x`]));
      const before = (await api().getRoomHistory({ roomId })).position!;
      await redis.del(`{c:${roomId}}:m`);
      const again = await say(roomId, 'again');
      expect(again.seq).toBe('1');
      const after = await api().getRoomHistory({ roomId, afterOffset: '0' });
      expect(after.position!.epoch).not.toBe(before.epoch);
      // The old history went with the old epoch: only the new event is there.
      expect(after.events.map((e) => e.chat?.text)).toEqual(['again']);
    } finally {
      redis.disconnect();
    }
  });

  it('refuses bad input naming the field, and an unknown room with NOT_FOUND', async () => {
    const roomId = await newRoom();
    expect(await refusal(api().getRoomHistory({ roomId, afterOffset: '-1' }))).toMatchObject({ code: 'INVALID_ARGUMENT', fields: ['after_offset'] });
    expect(await refusal(api().getRoomHistory({ roomId, epoch: 'not an epoch!' }))).toMatchObject({ code: 'INVALID_ARGUMENT', fields: ['epoch'] });
    expect(await refusal(api().getRoomHistory({ roomId, limit: 10_001 }))).toMatchObject({ code: 'INVALID_ARGUMENT', fields: ['limit'] });
    expect(await refusal(api().getRoomHistory({ roomId: '0' }))).toMatchObject({ code: 'INVALID_ARGUMENT', fields: ['room_id'] });
    expect(await refusal(api().getRoomHistory({ roomId: '999999999' }))).toMatchObject({ code: 'NOT_FOUND', reason: 'ROOM_NOT_FOUND' });
  });
});
