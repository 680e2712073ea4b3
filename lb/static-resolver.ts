/**
 * `static:host:port,host:port,...` targets: a fixed list of replicas for local runs, where
 * grpc-js's own `ipv4:` scheme would do except that it refuses host names (`localhost:50051`).
 * Each host is looked up when grpc-js asks for a resolution, so a name is followed if it moves;
 * `dns:` targets (one name, many A records, as a Kubernetes headless service gives) need nothing
 * from here: grpc-js resolves those itself and the policy asks it to re-resolve.
 */
import { promises as dns } from 'node:dns';
import { isIP } from 'node:net';
import { experimental, status as Status, Metadata } from '@grpc/grpc-js';

const STATIC_SCHEME = 'static';

type Listener = experimental.ResolverListener;
type Endpoint = experimental.Endpoint;

/** Splits `a:1,[::1]:2,b:3` into host/port pairs; throws naming the bad entry. */
export function parseStaticTarget(path: string): Array<{ host: string; port: number }> {
  const entries = path
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (entries.length === 0) throw new Error('static target lists no address');
  return entries.map((entry) => {
    const hp = experimental.splitHostPort(entry);
    if (!hp || hp.port === undefined || !hp.host) throw new Error(`static target entry ${JSON.stringify(entry)} must be host:port`);
    return { host: hp.host, port: hp.port };
  });
}

/** Host names are looked up again at most this often, however often grpc-js asks. */
const MIN_LOOKUP_INTERVAL_MS = 5000;

class StaticResolver implements experimental.Resolver {
  private generation = 0;
  private lastResult: string | undefined;
  private lastLookupAt = -Infinity;

  constructor(
    private readonly target: experimental.GrpcUri,
    private readonly listener: Listener,
  ) {}

  /**
   * Reports the list the first time, and afterwards only when a lookup gives a different answer:
   * grpc-js asks again whenever a connection fails, and handing the same list back each time
   * would make every child reconnect, fail and ask again, in a tight loop.
   */
  updateResolution(): void {
    const now = performance.now();
    if (this.lastResult !== undefined && now - this.lastLookupAt < MIN_LOOKUP_INTERVAL_MS) return;
    this.lastLookupAt = now;
    const generation = ++this.generation;
    void this.resolve().then(
      (endpoints) => {
        const key = JSON.stringify(endpoints);
        if (generation !== this.generation || key === this.lastResult) return;
        this.lastResult = key;
        this.listener(experimental.statusOrFromValue(endpoints), {}, null, '');
      },
      (err: unknown) => {
        if (generation !== this.generation) return;
        const details = `cannot resolve ${this.target.path}: ${err instanceof Error ? err.message : String(err)}`;
        this.listener(experimental.statusOrFromError({ code: Status.UNAVAILABLE, details, metadata: new Metadata() }), {}, null, '');
      },
    );
  }

  /** Always asynchronous: grpc-js forbids calling the listener from updateResolution itself. */
  private async resolve(): Promise<Endpoint[]> {
    const endpoints: Endpoint[] = [];
    for (const { host, port } of parseStaticTarget(this.target.path)) {
      const addresses = isIP(host) ? [host] : (await dns.lookup(host, { all: true })).map((a) => a.address);
      // One endpoint per address, as grpc-js's DNS resolver does: each is balanced separately.
      for (const address of addresses) endpoints.push({ addresses: [{ host: address, port }] });
    }
    return endpoints;
  }

  destroy(): void {
    this.generation++;
    this.lastResult = undefined;
    this.lastLookupAt = -Infinity;
  }

  static getDefaultAuthority(target: experimental.GrpcUri): string {
    return target.path.split(',')[0]?.trim() ?? target.path;
  }
}

let registered = false;

/** Registers the `static:` scheme with grpc-js (idempotent). */
export function registerStaticResolver(): void {
  if (registered) return;
  registered = true;
  experimental.registerResolver(STATIC_SCHEME, StaticResolver);
}

/**
 * The target to dial for an address spec as configured (for example ROOM_ADDR): a spec with a
 * scheme (`dns:`, `ipv4:`, `static:`, or any registered with grpc-js) is used as is; a comma-separated list becomes `static:`;
 * a single `host:port` becomes `dns:host:port`, which re-resolves to every A record.
 */
export function lbTarget(spec: string): string {
  const s = spec.trim();
  // `name:` followed by anything but a port number is a scheme (dns:, ipv4:, static:, ...).
  const scheme = /^[a-z][a-z0-9+.-]*:(.*)$/i.exec(s);
  if (scheme && !/^\d+(,|$)/.test(scheme[1] ?? '')) return s;
  if (s.includes(',')) return `${STATIC_SCHEME}:${s}`;
  return `dns:${s}`;
}
