import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP pass-through to a real server (MariaDB) that a test or the chaos run can cut and restore:
 * a cut refuses new connections and drops open ones, which is what a service sees when its
 * database host becomes unreachable — without stopping the shared server other runs use. Resuming
 * listens again on the same port, so the services' configured URL keeps working.
 */
export interface TcpProxy {
  port: number;
  /** whether connections are currently passed through */
  readonly open: boolean;
  cut(): Promise<void>;
  resume(): Promise<void>;
  /** connections currently passed through */
  connections(): number;
}

export async function startTcpProxy(targetHost: string, targetPort: number, listenPort = 0): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const pairs = { count: 0 };
  let server: Server | undefined;
  let port = listenPort;

  const listen = async () => {
    const s = createServer((client) => {
      const upstream = connect(targetPort, targetHost);
      pairs.count++;
      for (const sock of [client, upstream]) {
        sockets.add(sock);
        sock.on('close', () => sockets.delete(sock));
        sock.on('error', () => sock.destroy());
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => {
        upstream.destroy();
        pairs.count--;
      });
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => resolve());
    });
    const address = s.address();
    if (!address || typeof address === 'string') throw new Error('proxy has no port');
    port = address.port;
    server = s;
  };
  await listen();

  return {
    get port() {
      return port;
    },
    get open() {
      return server !== undefined;
    },
    cut: () =>
      new Promise<void>((resolve) => {
        const s = server;
        server = undefined;
        for (const sock of sockets) sock.destroy();
        if (!s) resolve();
        else s.close(() => resolve());
      }),
    async resume() {
      if (!server) await listen();
    },
    connections: () => pairs.count,
  };
}
