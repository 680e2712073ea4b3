import { status as Code, type Server, type ServerWritableStream } from '@grpc/grpc-js';
import {
  HealthCheckResponse_ServingStatus as Serving,
  HealthService,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from '../gen/ts/grpc/health/v1/health.js';

export { Serving };

/**
 * grpc.health.v1 with a status per service ("" is the whole server).
 *
 * Written here rather than taken from grpc-health-check because a drain must be able to end open
 * Watch streams: the library keeps them open forever, and an open stream holds grpc-js's
 * tryShutdown until the drain deadline, turning every restart into a forced one.
 */
export class HealthRegistry {
  private readonly statuses = new Map<string, Serving>();
  private readonly watchers = new Map<string, Set<ServerWritableStream<HealthCheckRequest, HealthCheckResponse>>>();

  set(service: string, status: Serving): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const w of this.watchers.get(service) ?? []) w.write({ status });
  }

  /** Sets every known service (and the server as a whole) at once: start-up and drain. */
  setAll(status: Serving): void {
    for (const service of new Set(['', ...this.statuses.keys()])) this.set(service, status);
  }

  get(service: string): Serving | undefined {
    return this.statuses.get(service);
  }

  /** Ends every Watch stream so the server can close; called once the server stops accepting calls. */
  endWatches(): void {
    for (const set of this.watchers.values()) for (const w of set) w.end();
    this.watchers.clear();
  }

  addToServer(server: Server): void {
    const impl = {
      check: (call: { request: HealthCheckRequest }, callback: (err: { code: Code; details: string } | null, res?: HealthCheckResponse) => void) => {
        const status = this.statuses.get(call.request.service);
        if (status === undefined) callback({ code: Code.NOT_FOUND, details: `unknown service ${JSON.stringify(call.request.service)}` });
        else callback(null, { status });
      },
      watch: (call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
        const service = call.request.service;
        let set = this.watchers.get(service);
        if (!set) this.watchers.set(service, (set = new Set()));
        set.add(call);
        call.write({ status: this.statuses.get(service) ?? Serving.SERVICE_UNKNOWN });
        call.on('cancelled', () => set.delete(call));
      },
      list: (_call: unknown, callback: (err: null, res: { statuses: Record<string, HealthCheckResponse> }) => void) => {
        callback(null, { statuses: Object.fromEntries([...this.statuses].map(([name, status]) => [name, { status }])) });
      },
    };
    server.addService(HealthService, impl);
  }
}
