import { credentials, type Client } from '@grpc/grpc-js';
import { pino } from 'pino';
import { kitConfigShape, parseConfig, resolveKitDefaults, type Shape } from '../../kit/config.js';
import { ServiceHost, type KitConfigValues, type ServiceConfig } from '../../kit/server.js';
import type { Isolation } from '../../scripts/isolation.js';
import { LogCapture } from './log-capture.js';

/**
 * Any service in-process on a free port, wired exactly as its process wires it (the service's
 * `wire` function on a real ServiceHost), with its log lines captured for assertions.
 */
export async function startInProcess<S extends Shape, C extends Client, U>(
  name: string,
  shape: S,
  wire: (host: ServiceHost, config: ServiceConfig<S>) => Promise<U>,
  Ctor: new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => C,
  iso: Isolation,
  env: Record<string, string>,
) {
  const logs = new LogCapture();
  const config = resolveKitDefaults(
    parseConfig({ ...kitConfigShape, ...shape }, { PORT: '0', METRICS_PORT: '-1', HOST: '127.0.0.1', DRAIN_GRACE_MS: '0', ...iso.env, ...env }) as KitConfigValues,
  ) as ServiceConfig<S>;
  const host = new ServiceHost(name, config, pino({ level: 'info', base: { service: name } }, logs.stream));
  const useCases = await wire(host, config);
  const port = await host.listen();
  const address = `127.0.0.1:${port}`;
  const client = new Ctor(address, credentials.createInsecure());
  return {
    host,
    useCases,
    client,
    logs,
    port,
    address,
    async close() {
      client.close();
      await host.drain();
    },
  };
}
