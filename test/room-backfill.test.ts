import { spawn } from 'node:child_process';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Room } from '../gen/ts/livemesh/room/v1/room.js';
import { isolate } from '../scripts/isolation.js';
import { fromRoot } from '../kit/paths.js';
import { roomStreamName } from '../services/room/store/nats-events.js';
import { as, failure, roomApi, startRoom, type RoomServer } from './support/room.js';
import { natsServers } from '../kit/nats.js';

const iso = isolate('roombackfill');
const servers: RoomServer[] = [];
const rooms: Room[] = [];

/** Runs `npm run room -- …` the way an operator would (built script, the service's env). */
function roomCli(...args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [fromRoot('dist', 'services', 'room', 'cli.js'), ...args], { env: { ...process.env, ...iso.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

/**
 * What losing Redis looks like: every key of this isolation gone. First the region refresher must
 * have applied every change event: one it applies after the wipe (it lags behind the writes on a
 * loaded machine) puts a room back, and the gap the tests measure is no longer the one they made.
 */
async function wipeRedis(): Promise<void> {
  const nc = await connect({ servers: natsServers(iso.urls.natsUrl) });
  try {
    const jsm = await jetstreamManager(nc);
    await expect
      .poll(async () => {
        const info = await jsm.consumers.info(roomStreamName(iso.natsPrefix), 'room-refresh-local');
        return [info.num_pending, info.num_ack_pending];
      }, { timeout: 20_000, interval: 50 })
      .toEqual([0, 0]);
  } finally {
    await nc.close();
  }
  const redis = new Redis(iso.urls.redisUrl);
  const keys = await redis.keys(`${iso.redisPrefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
}

beforeAll(async () => {
  const first = await startRoom(iso, { ROOM_CACHE_TTL_MS: '1000' });
  servers.push(first);
  const api = roomApi(first.client);
  for (let i = 0; i < 5; i++) rooms.push((await api.createRoom({ title: `room ${i}`, category: 'talk', requestId: `b${i}` }, as('9100', 'streamer'))).room!);
  const live = await api.startLive({ roomId: rooms[0]!.roomId }, as('9100', 'streamer'));
  rooms[0] = live.room!;
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await iso.cleanup();
});

describe('Redis is complete by design, and can be rebuilt from MySQL', () => {
  it('a room missing from Redis is NOT_FOUND for viewers: reads never fall back to MySQL', async () => {
    await wipeRedis();
    await new Promise((r) => setTimeout(r, 1100)); // local caches expire
    expect(await failure(roomApi(servers[0]!.client).getRoom({ roomId: rooms[1]!.roomId }))).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('`room check` reports the gap; `room backfill` closes it with progress lines; check is then clean', async () => {
    const before = await roomCli('check');
    expect(before.code).toBe(1);
    expect(before.out).toContain('INCOMPLETE: MySQL has 5 rooms');

    const fill = await roomCli('backfill', '--batch', '2');
    expect(fill.code).toBe(0);
    expect(fill.out).toContain('backfill: 5 rooms in MySQL');
    expect(fill.out).toMatch(/5 rooms scanned, 5 written .* Redis is complete/);

    const after = await roomCli('check');
    expect(after).toMatchObject({ code: 0 });
    expect(after.out).toContain('Redis is complete (5 rooms');

    await new Promise((r) => setTimeout(r, 1100));
    const api = roomApi(servers[0]!.client);
    expect((await api.getRoom({ roomId: rooms[1]!.roomId })).room).toEqual(rooms[1]);
    expect((await api.listLiveRooms({ category: 'talk' })).rooms.map((r) => r.roomId)).toEqual([rooms[0]!.roomId]);
    expect((await api.listRoomsByStreamer({ streamerId: '9100' })).rooms).toHaveLength(5);
  });

  it('a replica starting against an incomplete Redis backfills it before serving', async () => {
    await wipeRedis();
    const fresh = await startRoom(iso);
    servers.push(fresh);
    expect(fresh.logs.lines.some((l) => l.msg === 'Redis is missing rooms or versions: backfilling from MySQL')).toBe(true);
    expect(fresh.logs.lines.find((l) => l.msg === 'backfill done')).toMatchObject({ scanned: 5, written: 5 });
    expect((await roomApi(fresh.client).batchGetRooms({ roomIds: rooms.map((r) => r.roomId) })).rooms).toEqual(rooms);

    const again = await startRoom(iso);
    servers.push(again);
    expect(again.logs.lines.some((l) => l.msg === 'Redis holds every room at its latest version')).toBe(true);
  });

  it('the CLI explains its usage instead of guessing', async () => {
    const res = await roomCli('refill');
    expect(res.code).toBe(2);
    expect(res.out).toContain('usage: npm run room -- check | backfill');
    expect((await roomCli('backfill', '--batch', 'lots')).code).toBe(2);
  });
});
