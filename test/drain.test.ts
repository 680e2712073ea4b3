import { once } from 'node:events';
import { credentials } from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { HealthCheckResponse_ServingStatus as Serving, HealthClient } from '../gen/ts/grpc/health/v1/health.js';
import { RoomServiceClient } from '../gen/ts/livemesh/room/v1/room.js';
import { isolate } from '../scripts/isolation.js';
import { freePorts } from '../scripts/net.js';
import { as, call, spawnRoom } from './support/room.js';

const iso = isolate('drain');
afterAll(() => iso.cleanup());

describe('graceful drain of a real service process', () => {
  it('on SIGTERM: health goes NOT_SERVING, in-flight calls all succeed, and the process exits 0', async () => {
    const [port] = (await freePorts(1)) as [number];
    // GetRoom is held 2 s by the fault interceptor, so calls are still in flight when the 1 s
    // grace ends and the server stops accepting: tryShutdown must wait for them. The grace is also
    // the window in which the test must get NOT_SERVING from a health check; a short one (it was
    // 300 ms, polled from the SIGTERM on) can pass entirely while a loaded machine has the process
    // or the test descheduled, and every check after it is refused instead.
    const graceMs = 1000;
    const child = spawnRoom(iso, { PORT: String(port), METRICS_PORT: '0', FAULT_LATENCY_MS: '2000', FAULT_METHODS: 'GetRoom', DRAIN_GRACE_MS: String(graceMs) });
    const logs: Array<Record<string, unknown>> = [];
    let buffered = '';
    child.stdout?.on('data', (d: Buffer) => {
      buffered += d.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const l of lines) if (l.trim()) logs.push(JSON.parse(l) as Record<string, unknown>);
    });
    const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
    await expect.poll(() => logs.some((l) => String(l.msg).includes('serving on')), { timeout: 20_000 }).toBe(true);

    const address = `127.0.0.1:${port}`;
    const rooms = new RoomServiceClient(address, credentials.createInsecure());
    const health = new HealthClient(address, credentials.createInsecure());
    const check = () => new Promise<Serving>((resolve, reject) => health.check({ service: 'livemesh.room.v1.RoomService' }, (e, r) => (e ? reject(e) : resolve(r.status))));
    try {
      const watched: Serving[] = [];
      const watch = health.watch({ service: '' });
      watch.on('data', (r: { status: Serving }) => watched.push(r.status));
      watch.on('error', () => {});
      expect(await check()).toBe(Serving.SERVING);
      await expect.poll(() => watched).toEqual([Serving.SERVING]);

      const { room } = await call(rooms.createRoom, rooms, { streamerId: '0', title: 'drain', category: '', coverKey: '', notice: '', requestId: 'drain' }, as('9', 'streamer'));
      const endedAt: number[] = [];
      const inFlight = Array.from({ length: 40 }, () => call(rooms.getRoom, rooms, { roomId: room!.roomId, readMask: undefined }).finally(() => endedAt.push(Date.now())));
      await new Promise((r) => setTimeout(r, 100));
      child.kill('SIGTERM');

      // During the grace period the server still answers, and says it is going away: asked as soon
      // as the process says it is draining (it sets NOT_SERVING right after that line).
      await expect.poll(() => logs.some((l) => l.msg === 'draining'), { timeout: 10_000, interval: 20 }).toBe(true);
      expect(await check()).toBe(Serving.NOT_SERVING);
      const results = await Promise.allSettled(inFlight);
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
      expect(results.every((r) => r.status === 'fulfilled' && r.value.room?.title === 'drain')).toBe(true);
      // They were still in flight when the grace ended (by the server's own log clock), so the
      // stop really had to wait for them.
      const drainingAt = Date.parse(String(logs.find((l) => l.msg === 'draining')!.time));
      expect(Math.min(...endedAt)).toBeGreaterThanOrEqual(drainingAt + graceMs);
      expect(watched).toEqual([Serving.SERVING, Serving.NOT_SERVING]);

      const [code, signal] = await exited;
      expect({ code, signal }).toEqual({ code: 0, signal: null });
      expect(logs.find((l) => l.msg === 'drained')).toMatchObject({ clean: true });
    } finally {
      rooms.close();
      health.close();
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
