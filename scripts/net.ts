import { createServer } from 'node:net';
import { probeTcp } from './infra.js';

/** Distinct free ports: all listeners are held open together so the kernel cannot hand out one port twice. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => {
      const server = createServer();
      return new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve(server));
      });
    }),
  );
  const ports = servers.map((s) => {
    const addr = s.address();
    if (addr === null || typeof addr === 'string') throw new Error('no port');
    return addr.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

/** Whether anything still listens on a local port. */
export function answers(port: number, host = '127.0.0.1'): Promise<boolean> {
  return probeTcp(host, port, 1000);
}
