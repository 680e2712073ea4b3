/**
 * A real NATS cluster for tests: `size` nats-server processes with JetStream, joined by cluster
 * routes, on free ports, their data under a folder the caller gives (a git-ignored one such as
 * .data/). Started from the binary the way scripts/infra.ts starts a private server, with the same
 * process handling (own process group, log files, killed if the test process dies).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { logTail, spawnServer, stopProcess, type PrivateProcess } from '../../../scripts/infra.js';
import { freePorts } from '../../../scripts/net.js';

export interface NatsNode {
  /** The server_name JetStream reports as a stream's leader or replica, e.g. `n2`. */
  name: string;
  clientUrl: string;
  proc: PrivateProcess;
}

export interface NatsCluster {
  nodes: NatsNode[];
  /** Every node's client URL, comma-separated: what NATS_URL takes. */
  url: string;
  /** SIGKILLs a node, as a crashed machine, and resolves once it is gone. */
  kill(name: string): Promise<void>;
  /** Starts a killed node again on its ports and data, resolving once it accepts clients. */
  restart(name: string): Promise<void>;
  /** Stops every node still running. */
  stop(): Promise<void>;
}

/**
 * Resolves once every node accepts clients and JetStream answers (a meta leader is elected), so a
 * stream created next gets its replicas at once.
 */
export async function startNatsCluster(opts: { bin: string; dataDir: string; size?: number; timeoutMs?: number }): Promise<NatsCluster> {
  const size = opts.size ?? 3;
  const ports = await freePorts(size * 2);
  const specs = Array.from({ length: size }, (_, i) => ({ name: `n${i + 1}`, client: ports[i * 2]!, route: ports[i * 2 + 1]! }));
  const routes = specs.map((s) => `"nats-route://127.0.0.1:${s.route}"`).join(', ');
  const launch = (name: string, dir: string, conf: string, logFile: string) => spawnServer(`nats ${name}`, opts.bin, ['-c', conf], dir, [logFile]);
  const nodes: Array<NatsNode & { relaunch(): PrivateProcess }> = specs.map((s) => {
    const dir = join(opts.dataDir, s.name);
    mkdirSync(dir, { recursive: true });
    const logFile = join(dir, 'nats.log');
    const conf = join(dir, 'nats.conf');
    writeFileSync(
      conf,
      [
        `server_name: "${s.name}"`,
        `listen: "127.0.0.1:${s.client}"`,
        `logfile: "${logFile}"`,
        `jetstream { store_dir: "${join(dir, 'jetstream')}" }`,
        `cluster { name: "livemesh-test", listen: "127.0.0.1:${s.route}", routes: [${routes}] }`,
        '',
      ].join('\n'),
    );
    return { name: s.name, clientUrl: `nats://127.0.0.1:${s.client}`, proc: launch(s.name, dir, conf, logFile), relaunch: () => launch(s.name, dir, conf, logFile) };
  });
  const node = (name: string) => {
    const found = nodes.find((n) => n.name === name);
    if (!found) throw new Error(`no node ${name} (have ${nodes.map((n) => n.name).join(', ')})`);
    return found;
  };
  const cluster: NatsCluster = {
    nodes,
    url: nodes.map((n) => n.clientUrl).join(','),
    async kill(name) {
      const n = node(name);
      n.proc.child.kill('SIGKILL');
      await n.proc.exited;
    },
    async restart(name) {
      const n = node(name);
      if (n.proc.exitDescription === undefined) throw new Error(`node ${name} is still running`);
      n.proc = n.relaunch();
      const until = Date.now() + 30_000;
      for (;;) {
        if (n.proc.exitDescription !== undefined || Date.now() > until) throw new Error(`node ${name} did not come back: ${n.proc.exitDescription ?? 'no answer in 30 s'}\n${logTail(n.proc.logFiles)}`);
        try {
          const nc = await connect({ servers: n.clientUrl, reconnect: false, timeout: 2000 });
          await nc.close();
          return;
        } catch {
          await sleep(250);
        }
      }
    },
    async stop() {
      await Promise.all(nodes.map((n) => stopProcess(n.proc)));
    },
  };
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let lastError: unknown;
  for (const node of nodes) {
    for (;;) {
      const gone = nodes.find((n) => n.proc.exitDescription !== undefined);
      if (gone || Date.now() > deadline) {
        await cluster.stop();
        const why = gone ? `${gone.name} ${gone.proc.exitDescription}` : `JetStream did not answer on ${node.clientUrl} (${lastError instanceof Error ? lastError.message : String(lastError)})`;
        throw new Error(`the NATS cluster failed to start: ${why}\n${logTail(nodes.flatMap((n) => n.proc.logFiles))}`);
      }
      try {
        const nc = await connect({ servers: node.clientUrl, reconnect: false, timeout: 2000 });
        try {
          await (await jetstreamManager(nc)).getAccountInfo();
        } finally {
          await nc.close();
        }
        break;
      } catch (err) {
        lastError = err;
        await sleep(250);
      }
    }
  }
  return cluster;
}
