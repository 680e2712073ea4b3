/**
 * What a Kubernetes headless Service looks like to a client, reproduced on one machine: a DNS
 * server whose A records for a name are the "pods" (loopback addresses 127.0.0.x, all on one port,
 * as pods share a container port), and real livemesh ServiceHosts listening on those addresses.
 *
 * grpc-js looks names up with getaddrinfo unless GRPC_NODE_USE_ALTERNATIVE_RESOLVER=true, in which
 * case it asks the DNS server named in the target's authority (`dns://127.0.0.1:5353/name:port`);
 * that is the only way to point it at a server a test controls without editing /etc/hosts. Everything
 * after the lookup (endpoints, the P2C policy, re-resolution) is the code path production uses.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { createRequire } from 'node:module';
import { pino } from 'pino';
import dnsPacket from 'dns-packet';
import { kitConfigShape, parseConfig, resolveKitDefaults } from '../../kit/config.js';
import { ServiceHost } from '../../kit/server.js';

/** Whether grpc-js in this process asks the target's DNS server (read once, when grpc-js loads). */
export function grpcUsesTargetDnsServer(): boolean {
  const env = createRequire(import.meta.url)('@grpc/grpc-js/build/src/environment.js') as { GRPC_NODE_USE_ALTERNATIVE_RESOLVER: boolean };
  return env.GRPC_NODE_USE_ALTERNATIVE_RESOLVER;
}

/** A tiny authoritative DNS server over UDP: A records from a table the test edits; no AAAA. */
export class TestDnsServer {
  private readonly records = new Map<string, string[]>();
  /** How many A queries it has answered: each is one re-resolution by a client. */
  queries = 0;

  private constructor(
    private readonly socket: Socket,
    readonly port: number,
  ) {
    socket.on('message', (msg, peer) => this.answer(msg, peer));
  }

  static async start(): Promise<TestDnsServer> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      // Port 0: the kernel picks a free UDP port, nothing fixed.
      socket.bind(0, '127.0.0.1', () => resolve());
    });
    return new TestDnsServer(socket, socket.address().port);
  }

  /** Sets the addresses `name` resolves to, as the cluster DNS does when pods come and go. */
  set(name: string, addresses: string[]): void {
    this.records.set(name.toLowerCase(), addresses);
  }

  private answer(msg: Buffer, peer: RemoteInfo): void {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const question = query.questions?.[0];
    if (!question) return;
    const addresses = this.records.get(question.name.toLowerCase());
    if (question.type === 'A' && addresses) this.queries++;
    const answers: dnsPacket.Answer[] =
      question.type === 'A' && addresses ? addresses.map((data) => ({ type: 'A', name: question.name, ttl: 1, class: 'IN', data })) : [];
    const response = dnsPacket.encode({
      id: query.id,
      type: 'response',
      // Authoritative answer; NXDOMAIN (rcode 3) for names it does not know.
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (addresses ? 0 : 3),
      questions: [question],
      answers,
    });
    this.socket.send(response, peer.port, peer.address);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/**
 * A "pod": a real ServiceHost (health, reflection, load reports, drain) on `address:port`, with no
 * business service, configured from `env` like a service process is.
 */
export async function startPod(address: string, port: number, env: Record<string, string> = {}): Promise<ServiceHost> {
  const config = resolveKitDefaults(parseConfig(kitConfigShape, { HOST: address, PORT: String(port), METRICS_PORT: '-1', DRAIN_GRACE_MS: '0', ...env }));
  const host = new ServiceHost('dns-pod', config, pino({ level: 'silent' }));
  await host.listen();
  return host;
}
