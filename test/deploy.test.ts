/**
 * Deployment: the image (deploy/Dockerfile), Compose, the Kubernetes manifests, all checked offline,
 * and DNS discovery of replicas (a headless Service's A records) through lb/'s P2C client.
 *
 * grpc-js decides when it loads whether it asks the target's DNS server (GRPC_NODE_USE_ALTERNATIVE_RESOLVER),
 * so the variable is set before anything imports it: this file and its static imports never load
 * grpc-js; what needs it (lb/, the services' config shapes) is imported dynamically.
 */
process.env.GRPC_NODE_USE_ALTERNATIVE_RESOLVER = 'true';

import { existsSync, readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { parseBffConfig } from '../bff/config.js';
import { ConfigError, kitConfigShape, parseConfig, type Shape } from '../services/kit/config.js';
import { fromRoot } from '../services/kit/paths.js';
import { freePorts } from '../scripts/net.js';
import {
  composeSchemaErrors,
  containerEnv,
  interpolate,
  k8sSchemaError,
  kustomize,
  parseYamlDocuments,
  readObjects,
  yamlFilesUnder,
  type K8sObject,
} from './support/deploy-manifests.js';
import { kubectlGate } from './support/tools.js';

/** The five gRPC services: port, and their config shape (loaded lazily: service modules load grpc-js). */
const SERVICES = [
  { name: 'room', port: 50051, shape: async () => (await import('../services/room/service.js')).roomConfigShape as Shape },
  { name: 'gift', port: 50052, shape: async () => (await import('../services/gift/service.js')).giftConfigShape as Shape },
  { name: 'ledger', port: 50053, shape: async () => (await import('../services/ledger/service.js')).ledgerConfigShape as Shape },
  { name: 'chat', port: 50054, shape: async () => (await import('../services/chat/service.js')).chatConfigShape as Shape },
  { name: 'ranking', port: 50055, shape: async () => (await import('../services/ranking/service.js')).rankingConfigShape as Shape },
] as const;
const INFRA = ['mysql', 'redis', 'nats'];

/** A script a container runs (`dist/services/room/main.js`) must come out of `npm run build`: its source exists and dist has it. */
function expectBuiltScript(script: string, where: string): void {
  expect(script, where).toMatch(/^dist\/.+\.js$/);
  const source = script.replace(/^dist\//, '').replace(/\.js$/, '.ts');
  expect(existsSync(fromRoot(source)), `${where}: ${script} has no source ${source}`).toBe(true);
  expect(existsSync(fromRoot(script)), `${where}: ${script} is not in dist/ after the build`).toBe(true);
}

/** Whether .dockerignore leaves `path` out of the build context (last matching line wins, `!` re-includes). */
function dockerIgnored(path: string): boolean {
  let ignored = false;
  for (const raw of readFileSync(fromRoot('.dockerignore'), 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const negate = line.startsWith('!');
    const pattern = negate ? line.slice(1) : line;
    const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}(/.*)?$`);
    if (re.test(path) || re.test(path.split('/').pop() ?? '')) ignored = !negate;
  }
  return ignored;
}

describe('deploy/Dockerfile', () => {
  const text = readFileSync(fromRoot('deploy/Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const stages = lines.filter((l) => /^FROM\s/i.test(l)).map((l) => /\sAS\s+(\S+)/i.exec(l)?.[1]);

  it('is multi-stage, and the last stage runs as a non-root user', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(stages.every(Boolean), 'every stage is named').toBe(true);
    const lastFrom = lines.findLastIndex((l) => /^FROM\s/i.test(l));
    const users = lines.slice(lastFrom).filter((l) => /^USER\s/i.test(l)).map((l) => l.split(/\s+/)[1]!.split(':')[0]!);
    expect(users.length, 'the runtime stage sets USER').toBeGreaterThan(0);
    const user = users.at(-1)!;
    expect(user === 'root' || user === '0', `USER ${user}`).toBe(false);
  });

  it('copies only sources that exist in the build context, from stages that exist, and runs a built script', () => {
    for (const line of lines.filter((l) => /^COPY\s/i.test(l))) {
      const parts = line.split(/\s+/).slice(1);
      const from = parts.find((p) => p.startsWith('--from='))?.slice('--from='.length);
      const paths = parts.filter((p) => !p.startsWith('--'));
      const sources = paths.slice(0, -1);
      expect(sources.length, line).toBeGreaterThan(0);
      if (from) {
        expect(stages, `${line}: unknown stage`).toContain(from);
        continue;
      }
      for (const source of sources) {
        expect(existsSync(fromRoot(source)), `${line}: ${source} does not exist`).toBe(true);
        expect(dockerIgnored(source), `${line}: ${source} is excluded by .dockerignore`).toBe(false);
      }
    }
    const cmd = lines.filter((l) => /^CMD\s/i.test(l)).at(-1)!;
    expectBuiltScript((JSON.parse(cmd.replace(/^CMD\s+/i, '')) as string[])[0]!, 'Dockerfile CMD');
  });

  it('the runtime stage carries what services read from the repository root at run time', () => {
    const runtime = lines.slice(lines.findLastIndex((l) => /^FROM\s/i.test(l))).join('\n');
    expect(runtime).toContain('gen/descriptor.binpb');
    for (const { name } of SERVICES) {
      if (existsSync(fromRoot('services', name, 'migrations'))) expect(runtime, `${name}'s migrations`).toContain(`services/${name}/migrations`);
    }
    expect(dockerIgnored('node_modules') && dockerIgnored('dist') && dockerIgnored('.git'), 'heavy or generated folders stay out of the context').toBe(true);
  });
});

describe('deploy/docker-compose.yml', () => {
  const [compose] = parseYamlDocuments(readFileSync(fromRoot('deploy/docker-compose.yml'), 'utf8'), 'docker-compose.yml') as any[];
  const services = compose.services as Record<string, any>;

  it('validates against the compose-spec schema, and the validator does reject a broken file', () => {
    expect(composeSchemaErrors(compose)).toEqual([]);
    const broken = structuredClone(compose);
    broken.services.room.helthcheck = broken.services.room.healthcheck;
    broken.services.bff.depends_on.room.condition = 'service_ready';
    expect(composeSchemaErrors(broken)).toEqual(expect.arrayContaining([expect.stringContaining('/services/room must NOT have additional properties')]));
  });

  it('plain `up` starts the infrastructure only; the mesh profile adds five services x 2 replicas and the BFF', () => {
    expect(Object.keys(services).filter((s) => !services[s].profiles).sort()).toEqual([...INFRA].sort());
    expect(services.mysql.image).toMatch(/^mysql:8/);
    expect(services.nats.command).toContain('-js');
    for (const { name } of SERVICES) expect(services[name]?.deploy?.replicas, name).toBe(2);
    expect(services.bff.profiles).toEqual(['mesh']);
  });

  it('every application container: a built script, a health check, healthy infrastructure first, peers that exist, and an environment its config accepts', async () => {
    const dockerfile = readFileSync(fromRoot('deploy/Dockerfile'), 'utf8');
    for (const name of [...SERVICES.map((s) => s.name), 'bff']) {
      const svc = services[name];
      expectBuiltScript(svc.command[0], `compose ${name}`);
      const check = svc.healthcheck.test as string[];
      expect(check[0]).toBe('CMD');
      expect(existsSync(fromRoot(check[2]!)) && dockerfile.includes(check[2]!), `${name}: health check script ${check[2]} exists and is in the image`).toBe(true);
      for (const infra of INFRA) expect(svc.depends_on[infra]?.condition, `${name} waits for ${infra}`).toBe('service_healthy');
      const env = Object.fromEntries(Object.entries(svc.environment as Record<string, string>).map(([k, v]) => [k, interpolate(String(v))]));
      expect(env.PORT, name).toBe(String(name === 'bff' ? 8080 : SERVICES.find((s) => s.name === name)!.port));
      for (const [key, value] of Object.entries(env).filter(([k]) => k.endsWith('_ADDR'))) {
        const [host, port] = value.split(':');
        expect(services[host!]?.environment?.PORT, `${name} ${key}=${value} names a compose service listening there`).toBe(port);
      }
      if (name === 'bff') expect(() => parseBffConfig(env), 'bff env').not.toThrow();
      else {
        const shape = await SERVICES.find((s) => s.name === name)!.shape();
        expect(() => parseConfig({ ...kitConfigShape, ...shape }, env), `${name} env`).not.toThrow();
      }
    }
  });
});

describe('deploy/k8s (kustomize base and dev overlay)', () => {
  // Without kubectl: outside CI the base files are checked as they are, unrendered; under CI=true
  // a test fails, naming what to install.
  const kubectlTool = kubectlGate(import.meta.filename, 'the kustomize renders of deploy/k8s (base and overlays/dev)');
  const kubectl = kubectlTool.found;
  const files = yamlFilesUnder('deploy/k8s').filter((f) => !f.endsWith('kustomization.yaml'));

  it('every manifest file validates against the Kubernetes schemas, and the validator does reject a broken object', async () => {
    expect(files.length).toBeGreaterThan(5);
    const errors = (await Promise.all(files.flatMap(readObjects).map(k8sSchemaError))).filter(Boolean);
    expect(errors).toEqual([]);
    const deployment = readObjects('deploy/k8s/base/room.yaml').find((o) => o.kind === 'Deployment')!;
    const broken = structuredClone(deployment);
    broken.spec.template.spec.containers[0].readinessProbe.grpc.port = 'grpc';
    expect(await k8sSchemaError(broken)).toMatch(/port must be integer/);
  });

  const renders: Array<{ name: string; objects: () => K8sObject[] }> = kubectl
    ? [
        { name: 'base', objects: () => kustomize('deploy/k8s/base', kubectl) },
        { name: 'dev', objects: () => kustomize('deploy/k8s/overlays/dev', kubectl) },
      ]
    : [{ name: 'base files (kubectl not installed: kustomize renders not checked)', objects: () => yamlFilesUnder('deploy/k8s/base').filter((f) => !f.endsWith('kustomization.yaml')).flatMap(readObjects) }];
  if (!kubectl && !kubectlTool.skip) {
    it('renders deploy/k8s with kubectl kustomize (base and overlays/dev)', () => {
      kubectlTool.need();
    });
  }

  for (const render of renders) {
    describe(render.name, () => {
      const objects = render.objects();
      const ofKind = (kind: string) => objects.filter((o) => o.kind === kind);
      const one = (kind: string, name: string) => {
        const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
        expect(found, `${kind} ${name}`).toBeDefined();
        return found!;
      };
      const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) => Object.entries(selector).every(([k, v]) => labels[k] === v);

      it('renders objects that validate against the Kubernetes schemas', async () => {
        expect((await Promise.all(objects.map(k8sSchemaError))).filter(Boolean)).toEqual([]);
      });

      it('each gRPC service: a Deployment with grpc.health.v1 probes and a headless Service that peers reach through dns:///', () => {
        const config = one('ConfigMap', 'livemesh-config').data!;
        const namespace = one('Namespace', 'livemesh').metadata.name;
        for (const { name, port } of SERVICES) {
          const deployment = one('Deployment', name);
          const pod = deployment.spec.template;
          const container = pod.spec.containers[0];
          expect(container.ports.map((p: { containerPort: number }) => p.containerPort)).toContain(port);
          for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) expect(container[probe]?.grpc?.port, `${name} ${probe}`).toBe(port);
          const service = one('Service', name);
          expect(service.spec.clusterIP, `${name} Service is headless`).toBe('None');
          expect(matches(service.spec.selector, pod.metadata.labels), `${name} Service selects its pods`).toBe(true);
          expect(service.spec.ports[0].port).toBe(port);
          expect(config[`${name.toUpperCase()}_ADDR`]).toBe(`dns:///${name}.${namespace}.svc.cluster.local:${port}`);
        }
      });

      it('the BFF: a regular Service, an Ingress to it, HTTP probes on /readyz and /healthz', () => {
        const pod = one('Deployment', 'bff').spec.template;
        const container = pod.spec.containers[0];
        expect(container.readinessProbe.httpGet.path).toBe('/readyz');
        expect(container.livenessProbe.httpGet.path).toBe('/healthz');
        const service = one('Service', 'bff');
        expect(service.spec.clusterIP).toBeUndefined();
        expect(matches(service.spec.selector, pod.metadata.labels)).toBe(true);
        const backend = one('Ingress', 'bff').spec.rules[0].http.paths[0].backend.service;
        expect(backend.name).toBe('bff');
        expect(service.spec.ports.map((p: { name: string }) => p.name)).toContain(backend.port.name);
      });

      it('every Deployment: an HPA and a PDB that point at it, requests and limits, non-root, a grace period longer than preStop + drain, env that exists and its config accepts', async () => {
        const config = one('ConfigMap', 'livemesh-config').data!;
        const drainSeconds = (Number(config.DRAIN_GRACE_MS) + Number(config.DRAIN_TIMEOUT_MS)) / 1000;
        for (const deployment of ofKind('Deployment')) {
          const name = deployment.metadata.name;
          const pod = deployment.spec.template;
          expect(matches(deployment.spec.selector.matchLabels, pod.metadata.labels), `${name} selector`).toBe(true);
          const hpa = ofKind('HorizontalPodAutoscaler').find((h) => h.spec.scaleTargetRef.kind === 'Deployment' && h.spec.scaleTargetRef.name === name);
          expect(hpa, `${name} HPA`).toBeDefined();
          expect(hpa!.spec.minReplicas, `${name} HPA keeps two pods`).toBeGreaterThanOrEqual(2);
          expect(ofKind('PodDisruptionBudget').some((p) => matches(p.spec.selector.matchLabels, pod.metadata.labels)), `${name} PDB`).toBe(true);
          expect(pod.spec.securityContext.runAsNonRoot, `${name} non-root`).toBe(true);
          const container = pod.spec.containers[0];
          for (const key of ['requests', 'limits']) for (const resource of ['cpu', 'memory']) expect(container.resources?.[key]?.[resource], `${name} ${key}.${resource}`).toBeDefined();
          const preStop = container.lifecycle.preStop.sleep.seconds as number;
          expect(pod.spec.terminationGracePeriodSeconds, `${name} grace period`).toBeGreaterThan(preStop + drainSeconds);
          for (const port of ofKind('Service').filter((s) => matches(s.spec.selector ?? {}, pod.metadata.labels)).flatMap((s) => s.spec.ports)) {
            expect(container.ports.map((p: { name: string }) => p.name), `${name}: Service targetPort ${port.targetPort}`).toContain(port.targetPort);
          }
          expectBuiltScript(container.args[0], `Deployment ${name}`);
          const env = containerEnv(container, objects);
          if (name === 'bff') {
            // Production mode: the base's placeholder keys must stop the BFF; the dev overlay's must not.
            const parse = () => parseBffConfig({ ...env, NODE_ENV: 'production' });
            if (render.name === 'dev') expect(parse).not.toThrow();
            else expect(parse).toThrow(ConfigError);
          } else {
            const shape = await SERVICES.find((s) => s.name === name)!.shape();
            expect(() => parseConfig({ ...kitConfigShape, ...shape }, env), `${name} env`).not.toThrow();
          }
        }
      });

      if (render.name === 'dev') {
        it('runs MySQL 8, Redis and NATS with JetStream as StatefulSets behind the Services the URLs name', () => {
          const urls = containerEnv(one('Deployment', 'room').spec.template.spec.containers[0], objects);
          for (const infra of INFRA) {
            const set = one('StatefulSet', infra);
            expect(matches(one('Service', infra).spec.selector, set.spec.template.metadata.labels), `${infra} Service`).toBe(true);
            expect(new URL(urls[`${infra.toUpperCase()}_URL`]!).hostname).toBe(`${infra}.livemesh.svc.cluster.local`);
          }
          expect(one('StatefulSet', 'mysql').spec.template.spec.containers[0].image).toMatch(/^mysql:8/);
          expect(one('StatefulSet', 'nats').spec.template.spec.containers[0].args).toContain('-js');
          expect(one('Deployment', 'room').spec.template.spec.containers[0].image).toBe('livemesh:dev');
        });
      } else if (kubectl) {
        it('leaves the infrastructure to charts and operators', () => {
          expect(ofKind('StatefulSet')).toEqual([]);
        });
      }
    });
  }
});

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
