/**
 * Room replicas as separate processes, for bench:lb and the lb failover test: started on a given
 * port (so a killed one can come back where its clients expect it), ready once Health/Check("")
 * answers SERVING, stopped with SIGTERM (a drain) or SIGKILL (a crash).
 */
import { fromRoot } from '../kit/paths.js';
import { killAllChildren, startServer, stopServer, type Server } from './mesh.js';

export type Replica = Server & { port: number };

/** Starts dist/services/room/main.js on `port` with `env` (isolation, faults) on top of quiet defaults. */
export async function startReplica(label: string, port: number, env: Record<string, string>, signal = new AbortController().signal): Promise<Replica> {
  const server = await startServer(
    label,
    fromRoot('dist', 'services', 'room', 'main.js'),
    { METRICS_PORT: '0', LOG_LEVEL: 'warn', DRAIN_GRACE_MS: '0', ...env },
    false,
    signal,
    port,
  );
  return { ...server, port };
}

/** SIGKILL, as a crash or an OOM kill would; resolves once the process is gone. */
export async function crashReplica(replica: Replica): Promise<void> {
  replica.child.kill('SIGKILL');
  await replica.exited;
}

/** SIGTERM and wait for the drain (SIGKILL after 20 s). */
export const stopReplica = (replica: Replica): Promise<void> => stopServer(replica);

/** Kills every server process still running: for exit paths, so none outlives its parent. */
export function killAllReplicas(): void {
  killAllChildren();
}
