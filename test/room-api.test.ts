import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { RoomStatus, type Room } from '../gen/ts/livemesh/room/v1/room.js';
import { roomKey } from '../services/room/store/redis-rooms.js';
import { monitorRedis } from './support/redis-monitor.js';
import { as, failure, roomApi, useRoomServer } from './support/room.js';

const server = useRoomServer('roomapi', { HOT_REFRESH_MS: '500', ROOM_CACHE_TTL_MS: '1000' });
const api = () => roomApi(server.current.client);
const viewer = (id = '7') => as(id, 'viewer');
let seq = 0;

async function newRoom(streamer = '2001', fields: Partial<Room> = {}): Promise<Room> {
  const { room } = await api().createRoom({ title: `room ${++seq}`, category: 'music', requestId: `req-${seq}-${Math.random()}`, ...fields }, as(streamer, 'streamer'));
  if (!room) throw new Error('CreateRoom returned no room');
  return room;
}

describe('Room writes', () => {
  it('UpdateRoom changes only the masked fields, bumps the version, and readers see it at once', async () => {
    const room = await newRoom('2001', { notice: 'old notice', coverKey: 'covers/a.jpg' });
    await api().getRoom({ roomId: room.roomId }, viewer()); // now in the local cache
    const { room: updated } = await api().updateRoom(
      { roomId: room.roomId, room: { ...room, title: 'New title', notice: 'ignored: not in the mask' }, updateMask: ['title'] },
      as('2001', 'streamer'),
    );
    expect(updated).toMatchObject({ title: 'New title', notice: 'old notice', coverKey: 'covers/a.jpg', version: '2' });
    const { room: read } = await api().getRoom({ roomId: room.roomId }, viewer());
    expect(read).toMatchObject({ title: 'New title', version: '2' });
  });

  it('FieldMask paths are accepted as JSON names them (lowerCamelCase) as well as in .proto form, in update and read masks', async () => {
    const room = await newRoom('2001', { notice: 'old notice', coverKey: 'covers/a.jpg' });
    const { room: updated } = await api().updateRoom(
      { roomId: room.roomId, room: { ...room, coverKey: 'covers/b.jpg', notice: 'ignored: not in the mask' }, updateMask: ['coverKey'] },
      as('2001', 'streamer'),
    );
    expect(updated).toMatchObject({ coverKey: 'covers/b.jpg', notice: 'old notice', version: '2' });
    // Both spellings of the same path in one mask name one field.
    const { room: both } = await api().updateRoom({ roomId: room.roomId, room: { coverKey: 'covers/c.jpg' }, updateMask: ['cover_key', 'coverKey'] }, as('2001', 'streamer'));
    expect(both).toMatchObject({ coverKey: 'covers/c.jpg', version: '3' });

    const { room: read } = await api().getRoom({ roomId: room.roomId, readMask: ['coverKey', 'streamerId', 'create_time'] }, viewer());
    expect(read).toMatchObject({ roomId: '0', title: '', coverKey: 'covers/c.jpg', streamerId: '2001', version: '0' });
    expect(read?.createTime).toBeInstanceOf(Date);
    const { rooms } = await api().batchGetRooms({ roomIds: [room.roomId], readMask: ['roomId', 'updateTime'] }, viewer());
    expect(rooms[0]).toMatchObject({ roomId: room.roomId, coverKey: '', streamerId: '0' });
    expect(rooms[0]?.updateTime).toBeInstanceOf(Date);

    // An unknown path is still refused, and the message names the valid paths in both spellings.
    const bad = await failure(api().getRoom({ roomId: room.roomId, readMask: ['coverkey'] }, viewer()));
    expect(bad).toMatchObject({ code: 'INVALID_ARGUMENT', fields: ['read_mask'] });
    expect(bad.message).toContain('cover_key (JSON: coverKey)');
    const readOnly = await failure(api().updateRoom({ roomId: room.roomId, room: {}, updateMask: ['giftGroupId'] }, as('2001', 'streamer')));
    expect(readOnly).toMatchObject({ code: 'INVALID_ARGUMENT', fields: ['update_mask'] });
    expect(readOnly.message).toContain('"giftGroupId"');
    // Names inherited from Object.prototype are not paths.
    expect(await failure(api().getRoom({ roomId: room.roomId, readMask: ['constructor'] }, viewer()))).toMatchObject({ code: 'INVALID_ARGUMENT', fields: ['read_mask'] });
  });

  it('expected_version is an optimistic lock: a stale version gets ABORTED with the current one', async () => {
    const room = await newRoom();
    await api().updateRoom({ roomId: room.roomId, room: { ...room, notice: 'first' }, updateMask: ['notice'], expectedVersion: '1' }, as('2001', 'streamer'));
    const err = await failure(api().updateRoom({ roomId: room.roomId, room: { ...room, notice: 'second' }, updateMask: ['notice'], expectedVersion: '1' }, as('2001', 'streamer')));
    expect(err).toMatchObject({ code: 'ABORTED', reason: 'VERSION_CONFLICT' });
    expect(err.message).toContain('version 2');
  });

  it('StartLive and StopLive move the room in and out of ListLiveRooms; repeating one changes nothing', async () => {
    const room = await newRoom('2002', { category: 'dance' });
    const { room: live } = await api().startLive({ roomId: room.roomId }, as('2002', 'streamer'));
    expect(live).toMatchObject({ status: RoomStatus.ROOM_STATUS_LIVE, version: '2' });
    expect(live?.liveStartTime).toBeInstanceOf(Date);
    const again = await api().startLive({ roomId: room.roomId }, as('2002', 'streamer'));
    expect(again.room?.version).toBe('2');

    const dance = await api().listLiveRooms({ category: 'dance' }, viewer());
    expect(dance.rooms.map((r) => r.roomId)).toContain(room.roomId);
    const music = await api().listLiveRooms({ category: 'music' }, viewer());
    expect(music.rooms.map((r) => r.roomId)).not.toContain(room.roomId);

    const { room: off } = await api().stopLive({ roomId: room.roomId }, as('2002', 'streamer'));
    expect(off).toMatchObject({ status: RoomStatus.ROOM_STATUS_OFFLINE, version: '3' });
    const after = await api().listLiveRooms({ category: 'dance' }, viewer());
    expect(after.rooms.map((r) => r.roomId)).not.toContain(room.roomId);
  });

  it('a category change moves a live room between category lists', async () => {
    const room = await newRoom('2003', { category: 'chess' });
    await api().startLive({ roomId: room.roomId }, as('2003', 'streamer'));
    await api().updateRoom({ roomId: room.roomId, room: { category: 'go' }, updateMask: ['category'] }, as('2003', 'streamer'));
    expect((await api().listLiveRooms({ category: 'chess' })).rooms.map((r) => r.roomId)).not.toContain(room.roomId);
    expect((await api().listLiveRooms({ category: 'go' })).rooms.map((r) => r.roomId)).toEqual([room.roomId]);
  });

  it('AssignGiftGroup is for admins; streamers, even the owner, are refused', async () => {
    const room = await newRoom('2004');
    const { room: assigned } = await api().assignGiftGroup({ roomId: room.roomId, giftGroupId: '77' }, as('1', 'admin'));
    expect(assigned).toMatchObject({ giftGroupId: '77', version: '2' });
    expect(await failure(api().assignGiftGroup({ roomId: room.roomId, giftGroupId: '78' }, as('2004', 'streamer')))).toMatchObject({
      code: 'PERMISSION_DENIED',
      reason: 'WRITE_NOT_ALLOWED',
    });
  });

  it("a streamer cannot change another streamer's room; an admin can", async () => {
    const room = await newRoom('2005');
    expect(await failure(api().startLive({ roomId: room.roomId }, as('2006', 'streamer')))).toMatchObject({ code: 'PERMISSION_DENIED', reason: 'NOT_ROOM_OWNER' });
    const { room: live } = await api().startLive({ roomId: room.roomId }, as('1', 'admin'));
    expect(live?.status).toBe(RoomStatus.ROOM_STATUS_LIVE);
  });
});

describe('Room reads', () => {
  it('BatchGetRooms answers in request order, once per id, listing the unknown ones', async () => {
    const a = await newRoom();
    const b = await newRoom();
    const res = await api().batchGetRooms({ roomIds: [b.roomId, '999999999', a.roomId, b.roomId] }, viewer());
    expect(res.rooms.map((r) => r.roomId)).toEqual([b.roomId, a.roomId]);
    expect(res.missingRoomIds).toEqual(['999999999']);
    expect(res.rooms[0]).toEqual(b);
  });

  it('BatchGetRooms with a mask fetches only those fields from Redis, in one pipeline', async () => {
    const rooms = await Promise.all([newRoom(), newRoom(), newRoom()]);
    const ids = rooms.map((r) => r.roomId);
    // Past the local cache's TTL, so the batch has to go to Redis.
    await new Promise((r) => setTimeout(r, 1100));
    const commands: string[][] = [];
    const monitor = await monitorRedis(server.iso.urls.redisUrl, ({ args }) => {
      // Reads only: the region refresher may still be applying the creations (EVALSHA) under load.
      const read = ['hmget', 'hgetall', 'hget'].includes(args[0]?.toLowerCase() ?? '');
      if (read && args.some((a) => ids.some((id) => a === `${server.iso.redisPrefix}${roomKey(id)}`))) commands.push(args);
    });
    try {
      const res = await api().batchGetRooms({ roomIds: ids, readMask: ['title', 'status'] }, viewer());
      expect(res.rooms.map((r) => r.title)).toEqual(rooms.map((r) => r.title));
      expect(res.rooms[0]).toMatchObject({ roomId: '0', streamerId: '0', notice: '', createTime: undefined });
      // MONITOR's copy of the reads travels on its own connection: wait for it, then a little
      // longer for any read beyond the three expected.
      await expect.poll(() => commands.length, { timeout: 10_000, interval: 20 }).toBeGreaterThanOrEqual(3);
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      monitor.stop();
    }
    expect(commands).toHaveLength(3);
    for (const c of commands) expect([c[0]?.toLowerCase(), ...c.slice(2)]).toEqual(['hmget', 'v', 't', 'st']);
  });

  it('ListLiveRooms pages through every live room exactly once, newest first', async () => {
    const streamer = '3001';
    const started: string[] = [];
    for (let i = 0; i < 7; i++) {
      const room = await newRoom(streamer, { category: 'paging' });
      await api().startLive({ roomId: room.roomId }, as(streamer, 'streamer'));
      started.push(room.roomId);
    }
    const seen: string[] = [];
    let pageToken = '';
    let pages = 0;
    do {
      const res = await api().listLiveRooms({ category: 'paging', page: { pageSize: 3, pageToken } }, viewer());
      seen.push(...res.rooms.map((r) => r.roomId));
      pageToken = res.page?.nextPageToken ?? '';
      pages++;
    } while (pageToken !== '');
    expect(pages).toBe(3);
    expect(seen).toEqual([...started].reverse());
  });

  it('ListRoomsByStreamer pages through one streamer’s rooms, newest first', async () => {
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await newRoom('3002')).roomId);
    const first = await api().listRoomsByStreamer({ streamerId: '3002', page: { pageSize: 4 } });
    const second = await api().listRoomsByStreamer({ streamerId: '3002', page: { pageSize: 4, pageToken: first.page?.nextPageToken } });
    expect([...first.rooms, ...second.rooms].map((r) => r.roomId)).toEqual(ids.reverse());
    expect(second.page?.nextPageToken).toBe('');
  });
});

describe('Entering and leaving', () => {
  it('counts a viewer once per session, however often they re-enter, and LeaveRoom takes them out', async () => {
    const room = await newRoom('4001');
    const first = await api().enterRoom({ roomId: room.roomId, sessionId: 'phone' }, viewer('11'));
    expect(first.room).toMatchObject({ roomId: room.roomId, title: room.title });
    expect(first.onlineCount).toBe('1');
    expect((await api().enterRoom({ roomId: room.roomId, sessionId: 'phone' }, viewer('11'))).onlineCount).toBe('1');
    expect((await api().enterRoom({ roomId: room.roomId, sessionId: 'tablet' }, viewer('11'))).onlineCount).toBe('2');
    expect((await api().enterRoom({ roomId: room.roomId, sessionId: 'phone' }, viewer('12'))).onlineCount).toBe('3');
    expect((await api().leaveRoom({ roomId: room.roomId, sessionId: 'tablet' }, viewer('11'))).onlineCount).toBe('2');
    expect((await api().getOnlineCount({ roomId: room.roomId })).onlineCount).toBe('2');
  });

  it('ListHotRooms ranks live rooms by viewers, from a list computed in the background', async () => {
    const quiet = await newRoom('4002');
    const busy = await newRoom('4003');
    const offline = await newRoom('4004');
    await api().startLive({ roomId: quiet.roomId }, as('4002', 'streamer'));
    await api().startLive({ roomId: busy.roomId }, as('4003', 'streamer'));
    for (let i = 0; i < 5; i++) await api().enterRoom({ roomId: busy.roomId, sessionId: `s${i}` }, viewer(String(100 + i)));
    await api().enterRoom({ roomId: quiet.roomId, sessionId: 's' }, viewer('200'));
    for (let i = 0; i < 9; i++) await api().enterRoom({ roomId: offline.roomId, sessionId: `s${i}` }, viewer(String(300 + i)));

    let hot: Array<{ id: string; online: string }> = [];
    // Until a refresh after the last enter: one computed between StartLive and the enters would show
    // 0 viewers. The refresh runs every 500 ms on a timer, which a loaded machine delays, so the
    // wait is bounded by time (generously), not by a count of 100 ms polls.
    const until = performance.now() + 20_000;
    while (!hot.some((h) => h.id === quiet.roomId && h.online === '1') && performance.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      const res = await api().listHotRooms({ limit: 100 }, viewer());
      hot = res.rooms.map((h) => ({ id: h.room?.roomId ?? '', online: h.onlineCount }));
    }
    const ours = hot.filter((h) => [quiet.roomId, busy.roomId, offline.roomId].includes(h.id));
    expect(ours).toEqual([
      { id: busy.roomId, online: '5' },
      { id: quiet.roomId, online: '1' },
    ]);
  });
});

describe('Bad input', () => {
  it('unknown ids are NOT_FOUND for every RPC that names a room', async () => {
    const id = '888888888';
    // Each promise gets its handler at once: none may reject unobserved while an earlier one is awaited.
    const refusals = await Promise.all(
      [
        api().getRoom({ roomId: id }, viewer()),
        api().enterRoom({ roomId: id, sessionId: 's' }, viewer()),
        api().leaveRoom({ roomId: id, sessionId: 's' }, viewer()),
        api().getOnlineCount({ roomId: id }),
        api().startLive({ roomId: id }, as('1', 'admin')),
        api().updateRoom({ roomId: id, room: { title: 'x' }, updateMask: ['title'] }, as('1', 'admin')),
      ].map(failure),
    );
    for (const refusal of refusals) expect(refusal).toMatchObject({ code: 'NOT_FOUND', reason: 'ROOM_NOT_FOUND' });
  });

  it('empty and oversized batches, unknown mask paths and overlong titles name the field', async () => {
    expect(await failure(api().batchGetRooms({ roomIds: [] }))).toMatchObject({ code: 'INVALID_ARGUMENT', fields: ['room_ids'] });
    const tooMany = Array.from({ length: 501 }, (_, i) => String(i + 1));
    expect(await failure(api().batchGetRooms({ roomIds: tooMany }))).toMatchObject({ code: 'INVALID_ARGUMENT', fields: ['room_ids'] });
    expect(await failure(api().batchGetRooms({ roomIds: ['1', '0', '-5'] }))).toMatchObject({ code: 'INVALID_ARGUMENT', fields: ['room_ids[1]', 'room_ids[2]'] });
    expect(await failure(api().batchGetRooms({ roomIds: ['1'], readMask: ['titel'] }))).toMatchObject({ code: 'INVALID_ARGUMENT', fields: ['read_mask'] });
    expect(await failure(api().getRoom({ roomId: '1', readMask: ['password'] }))).toMatchObject({ code: 'INVALID_ARGUMENT', fields: ['read_mask'] });

    const room = await newRoom('5001');
    const long = 'x'.repeat(101);
    expect(await failure(api().createRoom({ title: long, requestId: 'long' }, as('5001', 'streamer')))).toMatchObject({ code: 'INVALID_ARGUMENT', fields: ['title'] });
    expect(await failure(api().updateRoom({ roomId: room.roomId, room: { title: long }, updateMask: ['title'] }, as('5001', 'streamer')))).toMatchObject({
      code: 'INVALID_ARGUMENT',
      fields: ['room.title'],
    });
    expect(await failure(api().updateRoom({ roomId: room.roomId, room: { title: 'ok' }, updateMask: ['status'] }, as('5001', 'streamer')))).toMatchObject({
      code: 'INVALID_ARGUMENT',
      fields: ['update_mask'],
    });
    expect(await failure(api().listLiveRooms({ page: { pageSize: 101 } }))).toMatchObject({ code: 'INVALID_ARGUMENT', fields: ['page.page_size'] });
    expect(await failure(api().listLiveRooms({ page: { pageToken: 'not-a-token' } }))).toMatchObject({ code: 'INVALID_ARGUMENT', fields: ['page.page_token'] });
    expect(await failure(api().listHotRooms({ limit: 1000 }))).toMatchObject({ code: 'INVALID_ARGUMENT', fields: ['limit'] });
    expect(await failure(api().enterRoom({ roomId: room.roomId, sessionId: '' }, viewer()))).toMatchObject({ code: 'INVALID_ARGUMENT', fields: ['session_id'] });
    expect(await failure(api().enterRoom({ roomId: room.roomId, sessionId: 's' }))).toMatchObject({ code: 'UNAUTHENTICATED' });
  });

  it('a viewer calling any write gets PERMISSION_DENIED, and nothing changes', async () => {
    const room = await newRoom('5002');
    const v = viewer('5003');
    // Each promise gets its handler at once: none may reject unobserved while an earlier one is awaited.
    const refusals = await Promise.all(
      [
        api().createRoom({ title: 't', requestId: 'v' }, v),
        api().updateRoom({ roomId: room.roomId, room: { title: 'hijacked' }, updateMask: ['title'] }, v),
        api().startLive({ roomId: room.roomId }, v),
        api().stopLive({ roomId: room.roomId }, v),
        api().assignGiftGroup({ roomId: room.roomId, giftGroupId: '5' }, v),
      ].map(failure),
    );
    for (const refusal of refusals) expect(refusal).toMatchObject({ code: 'PERMISSION_DENIED', reason: 'WRITE_NOT_ALLOWED' });
    expect((await api().getRoom({ roomId: room.roomId })).room).toEqual(room);
  });
});

describe('Redis layout', () => {
  const redis = new Redis(server.iso.urls.redisUrl, { keyPrefix: server.iso.redisPrefix });
  afterAll(() => redis.disconnect());

  it('a typical room takes a few hundred bytes; the worst case allowed by the limits stays below 3 KB', async () => {
    const typical = await newRoom('6001', { title: '周五晚上的卡拉OK 一起唱', notice: '九点开始点歌，欢迎大家', coverKey: 'covers/2026/11/abc123.jpg' });
    const worst = await newRoom('6002', { title: '😀'.repeat(100), notice: '😀'.repeat(200), coverKey: 'k'.repeat(200), category: 'c'.repeat(32) });
    await api().startLive({ roomId: worst.roomId }, as('6002', 'streamer'));
    // SAMPLES 0 counts every field: the default samples 5 of a hashtable-encoded hash (the worst
    // room's long values force that encoding) and extrapolates, and which 5 depends on the Redis
    // process's hash seed, so the estimate changed from one Redis restart to the next.
    const typicalBytes = Number(await redis.memory('USAGE', roomKey(typical.roomId), 'SAMPLES', 0));
    const worstBytes = Number(await redis.memory('USAGE', roomKey(worst.roomId), 'SAMPLES', 0));
    expect(typicalBytes).toBeLessThan(400);
    expect(worstBytes).toBeLessThan(3072);
  });
});
