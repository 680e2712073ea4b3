/**
 * Room replicas as separate processes, for the lb benchmark and the lb failover test: started on
 * a given port, ready once Health/Check("") answers SERVING, stoppable with SIGTERM (drain) or
 * SIGKILL (a crash), and restartable on the same port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { credentials, Metadata } from '@grpc/grpc-js';
import { HealthCheckResponse_ServingStatus as Serving, HealthClient } from '../../gen/ts/grpc/health/v1/health.js';
import { fromRoot } from '../../services/kit/paths.js';

export interface Replica {
  label: string;
  port: number;
  address: string;
  child: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last lines the process printed, for error messages. */
  tail(): string;
}

const live = new Set<ChildProcess>();

/** Kills every replica still running: for exit handlers, so no process outlives its parent. */
export function killAllReplicas(): void {
  for (const child of live) child.kill('SIGKILL');
}

/** Starts dist/services/room/main.js on `port` and resolves once it reports SERVING. */
export async function startReplica(label: string, port: number, env: Record<string, string>, timeoutMs = 60_000): Promise<Replica> {
  const child = spawn(process.execPath, [fromRoot('dist', 'services', 'room', 'main.js')], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), METRICS_PORT: '0', LOG_LEVEL: 'warn', DRAIN_GRACE_MS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Own process group: a Ctrl-C at the terminal reaches only the parent, which stops replicas itself.
    detached: true,
  });
  if (child.pid === undefined) throw new Error(`${label}: could not start the Room process`);
  live.add(child);
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) if (line.trim()) lines.push(line);
    if (lines.length > 30) lines.splice(0, lines.length - 30);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let dead = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      dead = true;
      live.delete(child);
      resolve({ code, signal });
    }),
  );
  const replica: Replica = { label, port, address: `127.0.0.1:${port}`, child, pid: child.pid, exited, tail: () => lines.join('\n') };
  const probe = new HealthClient(replica.address, credentials.createInsecure());
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (dead) throw new Error(`${label} exited before serving:\n${replica.tail()}`);
      if (Date.now() > deadline) throw new Error(`${label} did not report SERVING within ${timeoutMs} ms:\n${replica.tail()}`);
      const status = await new Promise<Serving | undefined>((resolve) =>
        probe.check({ service: '' }, new Metadata(), { deadline: Date.now() + 1000 }, (err, res) => resolve(err ? undefined : res.status)),
      );
      if (status === Serving.SERVING) return replica;
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  } finally {
    probe.close();
  }
}

/** SIGKILL, as a crash or an OOM kill would; resolves once the process is gone. */
export async function crashReplica(replica: Replica): Promise<void> {
  replica.child.kill('SIGKILL');
  await replica.exited;
}

/** SIGTERM and wait for the drain; SIGKILL after `graceMs`. */
export async function stopReplica(replica: Replica, graceMs = 15_000): Promise<void> {
  if (replica.child.exitCode === null && replica.child.signalCode === null) replica.child.kill('SIGTERM');
  const timer = setTimeout(() => replica.child.kill('SIGKILL'), graceMs);
  await replica.exited;
  clearTimeout(timer);
}
