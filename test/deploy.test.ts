/**
 * Deployment: DNS discovery of replicas (a headless Service's A records) through lb/'s P2C client.
 *
 * grpc-js decides when it loads whether it asks the target's DNS server (GRPC_NODE_USE_ALTERNATIVE_RESOLVER),
 * so the variable is set before anything imports it: this file imports grpc-js only dynamically.
 */
process.env.GRPC_NODE_USE_ALTERNATIVE_RESOLVER = 'true';

import { afterAll, describe, expect, it } from 'vitest';
import { freePorts } from '../scripts/net.js';

describe('DNS discovery (a Kubernetes headless Service, reproduced with a test DNS server)', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  });

  it('dns:// targets balance over every A record; pods that join are found through max connection age, pods that leave cost no call', async () => {
    const { TestDnsServer, startPod, grpcUsesTargetDnsServer } = await import('./support/deploy-dns.js');
    const { createLbClient } = await import('../lb/client.js');
    const { lbSnapshot } = await import('../lb/observe.js');
    const { HealthClient } = await import('../gen/ts/grpc/health/v1/health.js');
    expect(grpcUsesTargetDnsServer(), 'grpc-js was loaded before this file set GRPC_NODE_USE_ALTERNATIVE_RESOLVER').toBe(true);

    const dns = await TestDnsServer.start();
    cleanups.push(() => dns.close());
    const NAME = 'room.livemesh.svc.cluster.test';
    const [port] = await freePorts(1);
    // Short connection age so the test sees the mechanism within seconds (production: 5 min).
    const podEnv = { GRPC_MAX_CONNECTION_AGE_MS: '1000' };
    const pods = new Map<string, Awaited<ReturnType<typeof startPod>>>();
    const addPod = async (ip: string) => {
      const pod = await startPod(ip, port!, podEnv);
      pods.set(ip, pod);
      cleanups.push(() => pod.drain());
    };
    await addPod('127.0.0.1');
    await addPod('127.0.0.2');
    dns.set(NAME, ['127.0.0.1', '127.0.0.2']);

    // Periodic re-resolution off: only connections closing (max age, drain) make the client look
    // again, which is the mechanism under test. Check is retried like a read, as reads are.
    const LABEL = 'deploy-dns-test';
    const client = createLbClient(HealthClient, `dns://127.0.0.1:${dns.port}/${NAME}:${port}`, { name: LABEL, reresolveIntervalMs: 0, idempotent: ['Check'] });
    cleanups.push(async () => client.close());
    const endpoints = () => lbSnapshot().balancers.find((b) => b.name === LABEL)?.endpoints ?? [];
    const picks = (ip: string) => endpoints().find((e) => e.address === `${ip}:${port}`)?.picks ?? 0;

    let ok = 0;
    const failures: string[] = [];
    let running = true;
    const worker = async () => {
      while (running) {
        await new Promise<void>((resolve) =>
          client.check({ service: '' }, (err) => {
            if (err) failures.push(`${err.code} ${err.details}`);
            else ok++;
            resolve();
          }),
        );
      }
    };
    const workers = Array.from({ length: 4 }, () => worker());
    const until = async (what: string, condition: () => boolean) => {
      // Generous: a noisy shared machine may be slow; the condition, not the time, is the assertion.
      const deadline = Date.now() + 25_000;
      while (!condition()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}; endpoints: ${JSON.stringify(endpoints().map((e) => [e.address, e.state, e.picks]))}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };

    try {
      await until('both resolved pods take calls', () => picks('127.0.0.1') >= 20 && picks('127.0.0.2') >= 20);

      // Scale up: a third pod joins the headless Service.
      await addPod('127.0.0.3');
      dns.set(NAME, ['127.0.0.1', '127.0.0.2', '127.0.0.3']);
      await until('the new pod takes calls', () => picks('127.0.0.3') >= 20);

      // Scale down: the first pod leaves DNS and drains (preStop, then SIGTERM).
      dns.set(NAME, ['127.0.0.2', '127.0.0.3']);
      await pods.get('127.0.0.1')!.drain();
      await until('the drained pod is gone from the balancer', () => !endpoints().some((e) => e.address === `127.0.0.1:${port}`));
      const okBefore = ok;
      await until('calls keep succeeding on the remaining pods', () => ok >= okBefore + 100);
    } finally {
      running = false;
      await Promise.all(workers);
    }
    expect(failures).toEqual([]);
    expect(dns.queries).toBeGreaterThanOrEqual(2);
    expect(endpoints().map((e) => e.address).sort()).toEqual([`127.0.0.2:${port}`, `127.0.0.3:${port}`]);
  });
});
