import { status as Code, type ServiceError } from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { RoomChangedEvent, RoomStatus, type RoomServiceClient } from '../gen/ts/livemesh/room/v1/room.js';
import { errorInfoOf } from '../kit/grpc-errors.js';
import { roomKey } from '../services/room/store/redis-rooms.js';
import { as, call, useRoomServer } from './support/room.js';
import { natsServers } from '../kit/nats.js';

const server = useRoomServer('roomslice');
const iso = server.iso;
const client = () => server.current.client;

const create = (req: Partial<Parameters<RoomServiceClient['createRoom']>[0]>, md = as('1001', 'streamer')) =>
  call(client().createRoom, client(), { streamerId: '0', title: 'Night songs', category: 'music', coverKey: '', notice: '', requestId: `r-${Math.random()}`, ...req }, md);
const get = (roomId: string, readMask?: string[]) => call(client().getRoom, client(), { roomId, readMask }, as('5', 'viewer'));

describe('Room slice: CreateRoom and GetRoom over MySQL and Redis', () => {
  it('creates a room owned by the calling streamer and reads it back', async () => {
    const { room: created } = await create({ title: '  Night songs  ', notice: 'be kind' });
    expect(created?.roomId).toMatch(/^[1-9][0-9]*$/);
    expect(created).toMatchObject({ streamerId: '1001', title: 'Night songs', category: 'music', notice: 'be kind', status: RoomStatus.ROOM_STATUS_OFFLINE, version: '1' });
    const { room: read } = await get(created!.roomId);
    expect(read).toEqual(created);
  });

  it('a retry with the same request_id returns the same room; other fields with that key are refused', async () => {
    const requestId = 'create-once';
    const a = await create({ requestId });
    const b = await create({ requestId });
    expect(b.room?.roomId).toBe(a.room?.roomId);
    const err = (await create({ requestId, title: 'Different' }).catch((e: unknown) => e)) as ServiceError;
    expect(err.code).toBe(Code.ALREADY_EXISTS);
    expect(errorInfoOf(err.metadata)?.reason).toBe('IDEMPOTENCY_KEY_REUSED');
  });

  it('an admin creates rooms for a named streamer', async () => {
    const { room: r } = await create({ streamerId: '4242' }, as('1', 'admin'));
    expect(r?.streamerId).toBe('4242');
  });

  it('keeps 64-bit ids exact', async () => {
    const { room: r } = await create({ streamerId: '9223372036854775807' }, as('1', 'admin'));
    expect(r?.streamerId).toBe('9223372036854775807');
    expect((await get(r!.roomId)).room?.streamerId).toBe('9223372036854775807');
  });

  it('GetRoom returns only the fields in read_mask', async () => {
    const { room: created } = await create({ notice: 'hidden' });
    const { room: masked } = await get(created!.roomId, ['title', 'status']);
    expect(masked?.title).toBe('Night songs');
    expect(masked?.status).toBe(RoomStatus.ROOM_STATUS_OFFLINE);
    expect(masked?.notice).toBe('');
    expect(masked?.roomId).toBe('0');
  });

  it('stores a typical room in Redis compactly, well under 1 KB, with short field names', async () => {
    const { room: created } = await create({ title: 'Friday night karaoke with friends', notice: 'Requests open at 9pm', coverKey: 'covers/2026/11/abc123.jpg' });
    const redis = new Redis(iso.urls.redisUrl, { keyPrefix: iso.redisPrefix });
    try {
      const bytes = Number(await redis.call('MEMORY', 'USAGE', roomKey(created!.roomId)));
      expect(bytes).toBeGreaterThan(0);
      expect(bytes).toBeLessThan(512);
      const hash = await redis.hgetall(roomKey(created!.roomId));
      expect(Object.keys(hash).every((f) => f.length <= 2)).toBe(true);
      expect(Object.entries(hash).reduce((n, [k, v]) => n + k.length + Buffer.byteLength(v), 0)).toBeLessThan(300);
    } finally {
      redis.disconnect();
    }
  });

  it('publishes the whole room on room.changed.<id> after a write', async () => {
    const nc = await connect({ servers: natsServers(iso.urls.natsUrl) });
    try {
      const sub = nc.subscribe(`${iso.natsPrefix}.room.changed.*`, { max: 1 });
      await nc.flush();
      const { room: created } = await create({ title: 'Evented' });
      for await (const msg of sub) {
        const event = RoomChangedEvent.decode(msg.data);
        expect(msg.subject).toBe(`${iso.natsPrefix}.room.changed.${created!.roomId}`);
        expect(event.room).toEqual(created);
        expect(event.originRegion).toBe('local');
      }
    } finally {
      await nc.close();
    }
  });
});
