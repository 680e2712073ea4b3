import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SendMessageOutcome } from '../gen/ts/livemesh/chat/v1/chat.js';
import { isolate } from '../scripts/isolation.js';
import { Policies } from '../services/chat/policies.js';
import { defaultPolicy, type Policy } from '../services/chat/model.js';
import { chatApi, refusal, startChat, type ChatServer } from './support/chat.js';
import { as, roomApi, startRoom, type RoomServer } from './support/room.js';

/**
 * SendMessage reads the room policy through a per-replica cache; SetRoomPolicy puts the new
 * policy into the same cache. With lru-cache's raw fetch, a set landing while a read of the same
 * room was in flight aborted that read ("replaced"), and the SendMessage waiting on it failed
 * with INTERNAL. The read goes through kit/lru-fetch.ts now and sees the new policy instead.
 */
describe('a policy change racing a policy read (unit)', () => {
  it('the read in flight returns the new policy instead of failing', async () => {
    const roomId = '77';
    let releaseRead: (() => void) | undefined;
    let reads = 0;
    const stored: Policy = { ...defaultPolicy(roomId), minLevel: 3, version: '5' };
    const store = {
      policy: async () => {
        if (++reads === 1) await new Promise<void>((resolve) => (releaseRead = resolve));
        return stored;
      },
      setPolicy: () => Promise.resolve({ ok: true as const, policy: { ...stored, chatClosed: true, version: '6' }, version: '6' }),
    } as unknown as ConstructorParameters<typeof Policies>[1];
    const rooms = { get: (id: string) => Promise.resolve({ roomId: id, streamerId: '9', live: true, version: '1' }) } as unknown as ConstructorParameters<typeof Policies>[0];
    const stream = { publish: () => Promise.resolve() } as unknown as ConstructorParameters<typeof Policies>[2];
    const policies = new Policies(rooms, store, stream, { ttlMs: 60_000, max: 10 });

    const reading = policies.get(roomId); // SendMessage's read: Redis has not answered yet
    await new Promise((r) => setImmediate(r));
    await policies.set({ userId: '1', role: 'admin', name: '' }, { roomId, minLevel: 0, slowModeMs: 0, chatClosed: true, paths: ['chat_closed'], expectedVersion: '0' });
    releaseRead?.();
    expect(await reading).toMatchObject({ chatClosed: true, version: '6' });
  });
});

describe('SendMessage while the room policy is being set (service)', () => {
  const iso = isolate('chatpol');
  let room: RoomServer;
  let chat: ChatServer;

  beforeAll(async () => {
    room = await startRoom(iso);
    // A 1 ms policy cache: nearly every SendMessage reads the policy from Redis, so reads and
    // SetRoomPolicy's cache writes overlap as often as they can.
    chat = await startChat(iso, { ROOM_ADDR: room.address, CHAT_POLICY_CACHE_MS: '1' });
  });

  afterAll(async () => {
    await chat?.close();
    await room?.close();
    await iso.cleanup();
  });

  it('many concurrent SendMessage calls beside SetRoomPolicy calls: none is INTERNAL', async () => {
    const api = chatApi(chat.client);
    const { room: r } = await roomApi(room.client).createRoom({ title: 'policy race', requestId: `chatpol-${process.pid}` }, as('9100', 'streamer'));
    const roomId = r?.roomId ?? '';
    let user = 20_000;
    const internal: string[] = [];
    for (let round = 0; round < 5; round++) {
      const sends = Array.from({ length: 200 }, (_, i) =>
        api.sendMessage({ roomId, text: `hello ${round}-${i}`, clientMessageId: `pol-${round}-${i}`, senderName: 'racer' }, as(String(++user), 'viewer')).then(
          (res) => res.outcome,
          async (err: Error) => {
            const f = await refusal(Promise.reject(err));
            if (f.code === 'INTERNAL') internal.push(f.message);
            return f.code;
          },
        ),
      );
      const sets = Array.from({ length: 20 }, () => api.setRoomPolicy({ roomId, policy: { chatClosed: false }, updateMask: ['chat_closed'] }, as('9100', 'streamer')));
      const [outcomes] = await Promise.all([Promise.all(sends), Promise.all(sets)]);
      expect(outcomes.every((o) => o === SendMessageOutcome.SEND_MESSAGE_OUTCOME_PUBLISHED || o === 'INTERNAL')).toBe(true);
    }
    expect(internal).toEqual([]);
  });
});
