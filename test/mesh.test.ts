import { credentials, Metadata } from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { HealthCheckResponse_ServingStatus as Serving, HealthClient } from '../gen/ts/grpc/health/v1/health.js';
import { isolate } from '../scripts/isolation.js';
import { startMesh, type Mesh } from '../scripts/mesh.js';

/**
 * The programmatic mesh that chaos, fuzz and soak runs are built on: if it miscounted a crash as
 * an intended kill, or restarted a replica somewhere else, those suites would prove nothing.
 */
const iso = isolate('mesh');
let mesh: Mesh | undefined;
afterAll(async () => {
  await mesh?.stop();
  await iso.cleanup();
});

function health(address: string): Promise<Serving> {
  const client = new HealthClient(address, credentials.createInsecure());
  return new Promise<Serving>((resolve, reject) => {
    client.check({ service: '' }, new Metadata(), { deadline: Date.now() + 5_000 }, (err, res) => (err ? reject(err) : resolve(res.status)));
  }).finally(() => client.close());
}

describe('startMesh (scripts/mesh.ts)', () => {
  it('runs replicas as processes, tells an intended kill from a crash, and restarts a replica on its own port', async () => {
    mesh = await startMesh({ services: ['room'], replicas: 2, bff: false, env: { ...iso.env, LOG_LEVEL: 'warn' } });
    const [first, second] = mesh.addresses('room') as [string, string];
    expect(mesh.processes.map((p) => p.name)).toEqual(['room-1', 'room-2']);
    expect(mesh.peerEnv.ROOM_ADDR).toBe(`${first},${second}`);
    expect(await health(first)).toBe(Serving.SERVING);

    await mesh.kill('room-1');
    expect(mesh.get('room-1').alive).toBe(false);
    expect(mesh.get('room-1').exits).toEqual([expect.objectContaining({ signal: 'SIGKILL', expected: true })]);
    expect(mesh.crashed()).toEqual([]);

    await mesh.restart('room-1');
    expect(mesh.get('room-1').alive).toBe(true);
    expect(await health(first)).toBe(Serving.SERVING);

    // Killed from outside, as an OOM killer would: that is a crash.
    process.kill(mesh.get('room-2').pid as number, 'SIGKILL');
    await expect.poll(() => mesh?.crashed().map((p) => p.name), { timeout: 10_000 }).toEqual(['room-2']);

    await mesh.stop();
    expect(mesh.processes.every((p) => !p.alive)).toBe(true);
    expect(mesh.get('room-1').exits.at(-1)).toMatchObject({ code: 0, expected: true });
  }, 60_000);

  it('rejects start-up with the failing process named when one cannot start', async () => {
    await expect(startMesh({ services: ['room'], replicas: 1, bff: false, env: { ...iso.env, LOG_LEVEL: 'chatty' } })).rejects.toThrow(
      /room-1 exited with code 78 before it was ready/,
    );
  }, 30_000);
});
