import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { probeTcp } from './infra.js';

/**
 * The ports to pick listeners from: below the kernel's ephemeral range. A port taken from that
 * range (what binding port 0 gives) is free only until the next outgoing connection: every
 * connection to MariaDB, Redis or NATS gets its local port from the same range, so a server
 * started a moment later on a port picked that way can find it taken (EADDRINUSE; it happened in
 * a full test run). Ports below the range are never handed to outgoing connections.
 */
function listenerRange(): { from: number; to: number } | undefined {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low !== undefined && Number.isInteger(low) && low > 12_000) return { from: 10_000, to: low - 1 };
  } catch {
    // not Linux: fall back to the kernel's choice
  }
  return undefined;
}

function listenOn(port: number): Promise<Server | undefined> {
  const server = createServer();
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' || err.code === 'EACCES' ? resolve(undefined) : reject(err)));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

/**
 * Distinct free ports for servers a test or tool is about to start: all listeners are held open
 * together so no port is handed out twice, chosen at random below the ephemeral range where
 * outgoing connections cannot take them in the meantime.
 */
export async function freePorts(count: number): Promise<number[]> {
  const range = listenerRange();
  const held: Server[] = [];
  try {
    for (let attempts = 0; held.length < count; attempts++) {
      if (attempts > count * 50) throw new Error(`no ${count} free ports found between ${range?.from} and ${range?.to}`);
      const port = range ? range.from + Math.floor(Math.random() * (range.to - range.from + 1)) : 0;
      const server = await listenOn(port);
      if (server) held.push(server);
    }
    return held.map((s) => {
      const addr = s.address();
      if (addr === null || typeof addr === 'string') throw new Error('no port');
      return addr.port;
    });
  } finally {
    await Promise.all(held.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

/** Whether anything still listens on a local port. */
export function answers(port: number, host = '127.0.0.1'): Promise<boolean> {
  return probeTcp(host, port, 1000);
}
