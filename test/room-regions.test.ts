import { jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RoomChangedEvent, type Room } from '../gen/ts/livemesh/room/v1/room.js';
import { isolate } from '../scripts/isolation.js';
import { roomChangedSubject } from '../services/room/client.js';
import { roomKey } from '../services/room/store/redis-rooms.js';
import { as, roomApi, startRoom, type RoomServer } from './support/room.js';
import { natsServers } from '../kit/nats.js';

/**
 * Two regions on one machine: "east" (primary, where writes go) and "west", each with its own
 * Redis database, sharing MySQL and NATS as they would share the primary database and a NATS
 * supercluster.
 */
const iso = isolate('roomregions');
const WEST_DB = 3;
const westRedisUrl = (() => {
  const u = new URL(iso.urls.redisUrl);
  u.pathname = `/${WEST_DB}`;
  return u.toString();
})();

let east: RoomServer;
let west: RoomServer;
let eastRedis: Redis;
let westRedis: Redis;
let nc: NatsConnection;

beforeAll(async () => {
  east = await startRoom(iso, { REGION: 'east' });
  west = await startRoom(iso, { REGION: 'west', REDIS_URL: westRedisUrl, ROOM_CACHE_TTL_MS: '1000' });
  eastRedis = new Redis(iso.urls.redisUrl, { keyPrefix: iso.redisPrefix });
  westRedis = new Redis(westRedisUrl, { keyPrefix: iso.redisPrefix });
  nc = await connect({ servers: natsServers(iso.urls.natsUrl) });
});

afterAll(async () => {
  await Promise.all([east?.close(), west?.close()]);
  await nc?.close();
  // The west database is not covered by the isolation's cleanup.
  const raw = new Redis(westRedisUrl);
  const keys = await raw.keys(`${iso.redisPrefix}*`);
  if (keys.length > 0) await raw.del(...keys);
  raw.disconnect();
  eastRedis?.disconnect();
  westRedis?.disconnect();
  await iso.cleanup();
});

const streamer = as('9001', 'streamer');

async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('two regions', () => {
  let room: Room;

  it('a room created in the primary region reaches the other region’s Redis and readers', async () => {
    room = (await roomApi(east.client).createRoom({ title: 'made in the east', requestId: 'x1' }, streamer)).room!;
    await until('west Redis to hold the room', () => westRedis.hget(roomKey(room.roomId), 'v'), (v) => v === '1');
    expect((await roomApi(west.client).getRoom({ roomId: room.roomId })).room).toEqual(room);
  });

  it('after a write in the primary, the secondary serves the new version, even with the old one cached', async () => {
    expect((await roomApi(west.client).getRoom({ roomId: room.roomId })).room?.version).toBe('1');
    const { room: updated } = await roomApi(east.client).updateRoom({ roomId: room.roomId, room: { title: 'renamed' }, updateMask: ['title'] }, streamer);
    expect(updated?.version).toBe('2');
    const seen = await until('west to serve version 2', () => roomApi(west.client).getRoom({ roomId: room.roomId }), (r) => r.room?.version === '2');
    expect(seen.room?.title).toBe('renamed');
    await until('west Redis at version 2', () => westRedis.hget(roomKey(room.roomId), 't'), (t) => t === 'renamed');
  });

  it('change events arriving out of order never move a version back, in Redis or in the local caches', async () => {
    const js = jetstream(nc);
    const at = (version: string, title: string) =>
      RoomChangedEvent.encode({ room: { ...room, version, title, updateTime: new Date() }, originRegion: 'east' }).finish();
    // Version 12 is published before version 11, as two racing writers could.
    await js.publish(roomChangedSubject(iso.natsPrefix, room.roomId), at('12', 'twelve'), { msgID: `${room.roomId}:12` });
    await js.publish(roomChangedSubject(iso.natsPrefix, room.roomId), at('11', 'eleven'), { msgID: `${room.roomId}:11` });
    // A marker event for another room: once the west refresher has applied it, it has seen both.
    const marker = (await roomApi(east.client).createRoom({ title: 'marker', requestId: 'x2' }, streamer)).room!;
    await until('west Redis to apply the marker', () => westRedis.hget(roomKey(marker.roomId), 'v'), (v) => v === '1');

    for (const redis of [eastRedis, westRedis]) {
      expect(await redis.hmget(roomKey(room.roomId), 'v', 't')).toEqual(['12', 'twelve']);
    }
    for (const server of [east, west]) {
      expect((await roomApi(server.client).getRoom({ roomId: room.roomId })).room).toMatchObject({ version: '12', title: 'twelve' });
    }
    // And after the local caches expire, Redis still answers with 12.
    await new Promise((r) => setTimeout(r, 1100));
    expect((await roomApi(west.client).getRoom({ roomId: room.roomId })).room?.version).toBe('12');
  });
});
