/**
 * Deployment: the image (deploy/Dockerfile), Compose, the Kubernetes manifests, all checked offline,
 * and DNS discovery of replicas (a headless Service's A records) through lb/'s P2C client.
 *
 * grpc-js decides when it loads whether it asks the target's DNS server (GRPC_NODE_USE_ALTERNATIVE_RESOLVER),
 * so the variable is set before anything imports it: this file and its static imports never load
 * grpc-js; what needs it (lb/, the services' config shapes) is imported dynamically.
 */
process.env.GRPC_NODE_USE_ALTERNATIVE_RESOLVER = 'true';

/* eslint-disable @typescript-eslint/no-explicit-any -- parsed YAML (compose files, Kubernetes objects) is walked field by field; the schema validation is what types it */
import { spawn } from 'node:child_process';
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bffConfigShape, parseBffConfig } from '../bff/config.js';
import { ConfigError, kitConfigShape, parseConfig, type Shape } from '../kit/config.js';
import { fromRoot } from '../kit/paths.js';
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
/** Every livemesh process: each has its own Deployment, signing key, certificate and NetworkPolicy. */
const WORKLOADS = [...SERVICES.map((s) => s.name), 'bff'];
/**
 * Who calls whom over gRPC (issue 15). The NetworkPolicies admit exactly these callers, and the
 * peers each process's config reads (its *_ADDR settings) must say the same: a new peer in code
 * fails here until its callee's NetworkPolicy admits it.
 */
const CALLS: Record<string, string[]> = {
  bff: ['room', 'gift', 'ledger', 'chat', 'ranking'],
  gift: ['room', 'ledger'],
  chat: ['room', 'ledger', 'gift'],
  ranking: ['gift'],
  room: ['gift'],
  ledger: [],
};
const callersOf = (name: string) => Object.keys(CALLS).filter((caller) => CALLS[caller]!.includes(name)).sort();
/** Where the image keeps the development keys (kit/config.ts DEV_AUTH_DIR inside /app). */
const IMAGE_AUTH_DIR = '/app/.livemesh/auth';

describe('the gRPC call graph', () => {
  it('the call graph above is the one the processes\' configs read (each *_ADDR names a callee)', async () => {
    for (const name of WORKLOADS) {
      const shape = name === 'bff' ? bffConfigShape : await SERVICES.find((s) => s.name === name)!.shape();
      const peers = Object.keys(shape).filter((k) => k.endsWith('_ADDR')).map((k) => k.slice(0, -'_ADDR'.length).toLowerCase());
      expect(peers.filter((p) => WORKLOADS.includes(p)).sort(), `${name} calls`).toEqual([...CALLS[name]!].sort());
    }
  });
});

type Volume = { name: string; configMap?: { name: string; defaultMode?: number; optional?: boolean }; secret?: { secretName: string; defaultMode?: number; optional?: boolean } };
type Mount = { name: string; mountPath: string; readOnly?: boolean };

/** The volume mounted at exactly `dir` (the folder a setting names), with its mount. */
function mountedAt(pod: any, dir: string | undefined): { mount: Mount; volume: Volume } | undefined {
  const mount = (pod.spec.containers[0].volumeMounts as Mount[] | undefined)?.find((m) => m.mountPath.replace(/\/$/, '') === dir?.replace(/\/$/, ''));
  const volume = mount && (pod.spec.volumes as Volume[]).find((v) => v.name === mount.name);
  return mount && volume ? { mount, volume } : undefined;
}

/** A ConfigMap's or Secret's files as a volume shows them (Secret data decoded). */
function volumeFiles(object: K8sObject | undefined): Record<string, string> {
  if (!object) return {};
  if (object.kind === 'ConfigMap') return { ...object.data };
  return { ...object.stringData, ...Object.fromEntries(Object.entries(object.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()])) };
}

/**
 * Lays a pod's ConfigMap and Secret volumes out under `root` as kubelet would mount them (an optional
 * one whose object is missing is an empty folder), and returns where a container path lands.
 */
function materializeMounts(pod: any, objects: K8sObject[], root: string): (path: string) => string {
  for (const mount of (pod.spec.containers[0].volumeMounts ?? []) as Mount[]) {
    const volume = (pod.spec.volumes as Volume[]).find((v) => v.name === mount.name)!;
    const dir = join(root, mount.mountPath);
    mkdirSync(dir, { recursive: true });
    const object = volume.configMap
      ? objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === volume.configMap!.name)
      : volume.secret
        ? objects.find((o) => o.kind === 'Secret' && o.metadata.name === volume.secret!.secretName)
        : undefined;
    for (const [file, content] of Object.entries(volumeFiles(object))) writeFileSync(join(dir, file), content);
  }
  return (path) => join(root, path);
}

/** cert-manager's objects, which kubernetes-models has no schema for: the fields livemesh relies on. */
function certManagerError(object: K8sObject): string | undefined {
  const where = `${object.source}: ${object.kind}/${object.metadata?.name}`;
  const spec = object.spec ?? {};
  const USAGES = ['signing', 'digital signature', 'content commitment', 'key encipherment', 'key agreement', 'data encipherment', 'cert sign', 'crl sign', 'encipher only', 'decipher only', 'any', 'server auth', 'client auth', 'code signing', 'email protection', 's/mime', 'ipsec end system', 'ipsec tunnel', 'ipsec user', 'timestamping', 'ocsp signing', 'microsoft sgc', 'netscape sgc'];
  if (object.apiVersion !== 'cert-manager.io/v1') return `${where}: apiVersion ${object.apiVersion}, not cert-manager.io/v1`;
  if (object.kind === 'Issuer' || object.kind === 'ClusterIssuer') {
    const kinds = ['selfSigned', 'ca', 'acme', 'vault', 'venafi'].filter((k) => spec[k] !== undefined);
    if (kinds.length !== 1) return `${where}: needs exactly one of selfSigned, ca, acme, vault, venafi`;
    if (spec.ca && typeof spec.ca.secretName !== 'string') return `${where}: ca.secretName`;
    return undefined;
  }
  if (object.kind === 'Certificate') {
    if (typeof spec.secretName !== 'string' || !spec.secretName) return `${where}: secretName`;
    if (typeof spec.issuerRef?.name !== 'string' || !['Issuer', 'ClusterIssuer', undefined].includes(spec.issuerRef.kind)) return `${where}: issuerRef`;
    if (!spec.isCA && !(Array.isArray(spec.dnsNames) && spec.dnsNames.every((n: unknown) => typeof n === 'string'))) return `${where}: dnsNames`;
    for (const usage of spec.usages ?? []) if (!USAGES.includes(usage)) return `${where}: unknown usage ${usage}`;
    for (const key of ['duration', 'renewBefore']) if (spec[key] !== undefined && !/^(\d+h)?(\d+m)?(\d+s)?$/.test(spec[key])) return `${where}: ${key} ${spec[key]}`;
    if (spec.privateKey && !['RSA', 'ECDSA', 'Ed25519', undefined].includes(spec.privateKey.algorithm)) return `${where}: privateKey.algorithm`;
    return undefined;
  }
  return `${where}: unexpected cert-manager kind`;
}

/**
 * Kubernetes' schemas for built-in kinds, certManagerError for cert-manager's. Secret data is checked
 * as the API server decodes it: kustomize's secretGenerator wraps long base64 values over lines,
 * which Go's base64 decoder skips and the schema's strict "byte" format would not.
 */
async function manifestError(object: K8sObject): Promise<string | undefined> {
  if (object.apiVersion.startsWith('cert-manager.io/')) return certManagerError(object);
  if (object.kind === 'Secret' && object.data) {
    return k8sSchemaError({ ...object, data: Object.fromEntries(Object.entries(object.data).map(([k, v]) => [k, v.replace(/[\r\n]/g, '')])) });
  }
  return k8sSchemaError(object);
}

/** Runs deploy/healthcheck.mjs with `env` added; resolves to its exit code and stderr. */
function runHealthcheck(args: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [fromRoot('deploy/healthcheck.mjs'), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stderr: stderr.trim() }));
  });
}

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

  it('builds and runs on a supported Node (22 or newer), the same major in every stage', () => {
    const major = Number(/^ARG\s+NODE_MAJOR=(\d+)$/m.exec(lines.join('\n'))?.[1]);
    expect(major, 'ARG NODE_MAJOR').toBeGreaterThanOrEqual(22);
    const froms = lines.filter((l) => /^FROM\s/i.test(l));
    expect(froms.at(-1)).toMatch(/^FROM gcr\.io\/distroless\/nodejs\$\{NODE_MAJOR\}-debian\d+:nonroot\s/);
    for (const from of froms) expect(from, 'every stage takes NODE_MAJOR').toContain('${NODE_MAJOR}');
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
    expect(Object.keys(services).sort()).toEqual([...INFRA, ...WORKLOADS, 'auth-keys', 'jaeger'].sort());
    // The trace backend is optional (its own profile), and the processes export nothing unless told to.
    expect(services.jaeger.profiles).toEqual(['tracing']);
    expect(interpolate(String(services.bff.environment.OTEL_EXPORTER_OTLP_ENDPOINT))).toBe('');
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

  it('passes the cluster settings through (NATS_REPLICAS, REDIS_CLUSTER_NODES, LEDGER_SHARD_URLS) and takes a MySQL server per service as npm start does', async () => {
    const given = {
      NATS_REPLICAS: '3',
      REDIS_CLUSTER_NODES: 'redis-a:6379,redis-b:6379',
      ROOM_MYSQL_URL: 'mysql://u:p@db-room:3306',
      GIFT_MYSQL_URL: 'mysql://u:p@db-gift:3306',
      LEDGER_MYSQL_URL: 'mysql://u:p@db-ledger-0:3306',
      LEDGER_SHARD_URLS: 'mysql://u:p@db-ledger-0:3306,mysql://u:p@db-ledger-1:3306',
    };
    const envOf = (name: string, outer: Record<string, string>) =>
      Object.fromEntries(Object.entries(services[name].environment as Record<string, string>).map(([k, v]) => [k, interpolate(String(v), outer)]));
    for (const name of WORKLOADS) {
      expect(envOf(name, given), name).toMatchObject({ NATS_REPLICAS: '3', REDIS_CLUSTER_NODES: given.REDIS_CLUSTER_NODES });
      expect(envOf(name, {}).NATS_REPLICAS, `${name}: one NATS server by default`).toBe('1');
    }
    expect(envOf('room', given).MYSQL_URL).toBe(given.ROOM_MYSQL_URL);
    expect(envOf('gift', given).MYSQL_URL).toBe(given.GIFT_MYSQL_URL);
    expect(envOf('ledger', given)).toMatchObject({ MYSQL_URL: given.LEDGER_MYSQL_URL, LEDGER_SHARD_URLS: given.LEDGER_SHARD_URLS });
    for (const name of ['room', 'gift', 'ledger']) expect(envOf(name, {}).MYSQL_URL, `${name} by default`).toBe('mysql://root@mysql:3306');
    const { ledgerConfigShape, shardPlaces } = await import('../services/ledger/service.js');
    const config = parseConfig({ ...kitConfigShape, ...ledgerConfigShape }, envOf('ledger', given)) as Parameters<typeof shardPlaces>[0];
    expect(shardPlaces(config).places.map((p) => new URL(p.url).host)).toEqual(['db-ledger-0:3306', 'db-ledger-1:3306']);
  });
});

describe('deploy/docker-compose.yml: keys', () => {
  const [compose] = parseYamlDocuments(readFileSync(fromRoot('deploy/docker-compose.yml'), 'utf8'), 'docker-compose.yml') as any[];
  const services = compose.services as Record<string, any>;
  const volumeOf = (svc: any, target: string) =>
    (svc.volumes as string[] | undefined)?.map((v) => v.split(':')).find(([, path]) => path === target);

  it('a one-shot auth-keys service writes the key pairs into a named volume before any process starts, and the image lets its user write there', () => {
    const init = services['auth-keys'];
    expect(init.image, 'the application image').toBe(services.room.image);
    expect(init.profiles).toEqual(['mesh']);
    expect(init.command).toEqual(['dist/scripts/auth.js', 'keys']);
    expectBuiltScript(init.command[0], 'compose auth-keys');
    // A one-shot: restarting it after it succeeded would never let service_completed_successfully hold.
    expect(init.restart ?? 'no').toBe('no');
    const [volume, , mode] = volumeOf(init, IMAGE_AUTH_DIR) ?? [];
    expect(volume, `auth-keys mounts a volume at ${IMAGE_AUTH_DIR}, where \`auth.js keys\` writes`).toBeDefined();
    expect(Object.keys(compose.volumes ?? {}), 'a named volume (kept across restarts)').toContain(volume);
    expect(mode, 'auth-keys writes').toBeUndefined();
    // A new named volume takes the owner of the image's folder it is mounted on: the runtime user's.
    const dockerfile = readFileSync(fromRoot('deploy/Dockerfile'), 'utf8');
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    expect(runtime, 'the runtime stage creates .livemesh/auth owned by 65532').toMatch(/COPY --from=\S+ --chown=65532:65532 \S+\/\.livemesh \.\/\.livemesh/);
    expect(runtime, 'the runtime user is 65532').toMatch(/\nUSER 65532/);
  });

  it('every process waits for it, mounts the keys read-only, and reads all public keys and its own private key; `auth.js keys` writes exactly those files', async () => {
    const { ensureDevKeys } = await import('../scripts/credentials.js');
    const { MeshCredentials } = await import('../kit/credentials.js');
    const dir = mkdtempSync(join(tmpdir(), 'lm-compose-keys-'));
    try {
      ensureDevKeys(dir);
      const inVolume = (path: string) => {
        expect(path.startsWith(`${IMAGE_AUTH_DIR}/`), `${path} is in the keys volume`).toBe(true);
        return join(dir, path.slice(IMAGE_AUTH_DIR.length));
      };
      for (const name of WORKLOADS) {
        const svc = services[name];
        expect(svc.depends_on['auth-keys']?.condition, `${name} waits for auth-keys`).toBe('service_completed_successfully');
        const [volume, , mode] = volumeOf(svc, IMAGE_AUTH_DIR) ?? [];
        expect(volume, `${name} mounts the keys volume`).toBe(volumeOf(services['auth-keys'], IMAGE_AUTH_DIR)![0]);
        expect(mode, `${name} mounts it read-only`).toBe('ro');
        const env = Object.fromEntries(Object.entries(svc.environment as Record<string, string>).map(([k, v]) => [k, interpolate(String(v))]));
        expect(env.AUTH_SIGNING_KEY, `${name} signs with its own key`).toBe(`${IMAGE_AUTH_DIR}/private/${name}.pem`);
        expect(env.GRPC_TLS_DIR ?? '', `${name}: plaintext gRPC in compose`).toBe('');
        const credentials = MeshCredentials.load(name, { AUTH_PUBLIC_KEYS_DIR: inVolume(env.AUTH_PUBLIC_KEYS_DIR!), AUTH_SIGNING_KEY: inVolume(env.AUTH_SIGNING_KEY!), GRPC_TLS_DIR: '' });
        expect(credentials.minter.issuer).toBe(name);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deploy/healthcheck.mjs (Compose health checks; Kubernetes exec probes under mutual TLS)', () => {
  const cleanups: Array<() => Promise<unknown> | void> = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('checks grpc.health.v1 over mutual TLS with the pod\'s own certificate (GRPC_TLS_DIR), the port defaulting to $PORT', async () => {
    const { ensureDevCerts } = await import('../scripts/credentials.js');
    const { ServiceHost } = await import('../kit/server.js');
    const { resolveKitDefaults } = await import('../kit/config.js');
    const { pino } = await import('pino');
    const dir = mkdtempSync(join(tmpdir(), 'lm-healthcheck-tls-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    ensureDevCerts(dir, { days: 1 });
    const [port] = await freePorts(1);
    const config = resolveKitDefaults(parseConfig(kitConfigShape, { HOST: '127.0.0.1', PORT: String(port), METRICS_PORT: '-1', DRAIN_GRACE_MS: '0', GRPC_TLS_DIR: join(dir, 'room') }));
    const host = new ServiceHost('healthcheck-pod', config, pino({ level: 'silent' }));
    await host.listen();
    cleanups.push(() => host.drain());

    // As the mtls component's exec probe runs it: `healthcheck.mjs grpc`, PORT and GRPC_TLS_DIR from the container.
    expect(await runHealthcheck(['grpc'], { PORT: String(port), GRPC_TLS_DIR: join(dir, 'room') })).toEqual({ code: 0, stderr: '' });
    expect((await runHealthcheck(['grpc', String(port)], { GRPC_TLS_DIR: join(dir, 'room') })).code).toBe(0);
    // Without the certificate the server refuses the connection, so the check fails.
    expect((await runHealthcheck(['grpc', String(port)], { GRPC_TLS_DIR: '' })).code).toBe(1);
    // The server's certificate must carry the name the pod's own certificate names first (room, not bff).
    const wrongName = await runHealthcheck(['grpc', String(port)], { GRPC_TLS_DIR: join(dir, 'bff') });
    expect(wrongName.code).toBe(1);
    expect(wrongName.stderr).toMatch(/bff/);
    const missing = await runHealthcheck(['grpc', String(port)], { GRPC_TLS_DIR: join(dir, 'nonexistent') });
    expect(missing).toEqual({ code: 1, stderr: expect.stringContaining('GRPC_TLS_DIR') });
    expect((await runHealthcheck(['grpc'], { PORT: '' })).stderr).toMatch(/usage/);
  });
});

describe('deploy/k8s (kustomize base, dev overlay, and dev with the mtls component)', () => {
  // Without kubectl: outside CI the base and component files are checked as they are, unrendered;
  // under CI=true a test fails, naming what to install.
  const kubectlTool = kubectlGate(import.meta.filename, 'the kustomize renders of deploy/k8s (base, overlays/dev, overlays/dev-mtls)');
  const kubectl = kubectlTool.found;
  const files = yamlFilesUnder('deploy/k8s').filter((f) => !f.endsWith('kustomization.yaml'));

  it('every manifest file validates against the Kubernetes schemas (cert-manager objects field by field), and the validators do reject broken objects', async () => {
    expect(files.length).toBeGreaterThan(5);
    const errors = (await Promise.all(files.flatMap(readObjects).map(manifestError))).filter(Boolean);
    expect(errors).toEqual([]);
    const deployment = readObjects('deploy/k8s/base/room.yaml').find((o) => o.kind === 'Deployment')!;
    const broken = structuredClone(deployment);
    broken.spec.template.spec.containers[0].readinessProbe.grpc.port = 'grpc';
    expect(await k8sSchemaError(broken)).toMatch(/port must be integer/);
    const certificate = readObjects('deploy/k8s/components/mtls/certificates.yaml').find((o) => o.kind === 'Certificate' && !o.spec.isCA)!;
    expect(certManagerError({ ...certificate, spec: { ...certificate.spec, usages: ['server auth', 'client-auth'] } })).toMatch(/unknown usage client-auth/);
  });

  type Render = { name: string; objects: () => K8sObject[]; dev: boolean; mtls: boolean; rendered: boolean };
  const renders: Render[] = kubectl
    ? [
        { name: 'base', objects: () => kustomize('deploy/k8s/base', kubectl), dev: false, mtls: false, rendered: true },
        { name: 'dev', objects: () => kustomize('deploy/k8s/overlays/dev', kubectl), dev: true, mtls: false, rendered: true },
        { name: 'dev-mtls', objects: () => kustomize('deploy/k8s/overlays/dev-mtls', kubectl), dev: true, mtls: true, rendered: true },
      ]
    : [
        {
          name: 'base files (kubectl not installed: kustomize renders not checked)',
          objects: () => yamlFilesUnder('deploy/k8s/base').filter((f) => !f.endsWith('kustomization.yaml')).flatMap(readObjects),
          dev: false,
          mtls: false,
          rendered: false,
        },
      ];
  if (!kubectl && !kubectlTool.skip) {
    it('renders deploy/k8s with kubectl kustomize (base, overlays/dev, overlays/dev-mtls)', () => {
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

      it('renders objects that validate against the Kubernetes schemas (cert-manager objects field by field)', async () => {
        expect((await Promise.all(objects.map(manifestError))).filter(Boolean)).toEqual([]);
      });

      it(`each gRPC service: a Deployment with grpc.health.v1 probes (${render.mtls ? 'exec probes running deploy/healthcheck.mjs over mutual TLS' : 'kubelet\'s native gRPC probes'}) and a headless Service that peers reach through dns:///`, () => {
        const config = one('ConfigMap', 'livemesh-config').data!;
        const namespace = one('Namespace', 'livemesh').metadata.name;
        const dockerfile = readFileSync(fromRoot('deploy/Dockerfile'), 'utf8');
        for (const { name, port } of SERVICES) {
          const deployment = one('Deployment', name);
          const pod = deployment.spec.template;
          const container = pod.spec.containers[0];
          expect(container.ports.map((p: { containerPort: number }) => p.containerPort)).toContain(port);
          for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
            if (!render.mtls) {
              expect(container[probe]?.grpc?.port, `${name} ${probe}`).toBe(port);
              continue;
            }
            // Kubelet's gRPC probe cannot present a client certificate: the script probes from inside the
            // pod, on $PORT, with GRPC_TLS_DIR, and must be in the image where the command says.
            expect(container[probe]?.grpc, `${name} ${probe}: no native gRPC probe under mTLS`).toBeUndefined();
            const [node, script, ...args] = container[probe]?.exec?.command ?? [];
            expect(node, `${name} ${probe}`).toBe('/nodejs/bin/node');
            expect(script).toBe('/app/deploy/healthcheck.mjs');
            expect(dockerfile).toMatch(/\nWORKDIR \/app\n[\s\S]*COPY deploy\/healthcheck\.mjs \.\/deploy\/healthcheck\.mjs/);
            expect(args[0]).toBe('grpc');
            if (args[1] === undefined) expect(containerEnv(container, objects).PORT, `${name}: the probe's port is $PORT`).toBe(String(port));
            else expect(args[1]).toBe(String(port));
            expect(container[probe].timeoutSeconds, `${name} ${probe}: node starts within the timeout`).toBeGreaterThanOrEqual(3);
          }
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
            if (render.dev) expect(parse).not.toThrow();
            else expect(parse).toThrow(ConfigError);
          } else {
            const shape = await SERVICES.find((s) => s.name === name)!.shape();
            expect(() => parseConfig({ ...kitConfigShape, ...shape }, env), `${name} env`).not.toThrow();
          }
        }
      });

      it(`every Deployment: spread over zones (${render.dev ? 'where nodes have zones' : 'a hard rule'}) and nodes, anti-affinity on the node, and a ServiceAccount of its own that mounts no token`, () => {
        const accounts = new Set<string>();
        for (const deployment of ofKind('Deployment')) {
          const name = deployment.metadata.name;
          const pod = deployment.spec.template;
          const own = (selector: any) => matches(selector?.matchLabels ?? {}, pod.metadata.labels) && Object.keys(selector?.matchLabels ?? {}).length > 0;
          const spread = (key: string) => (pod.spec.topologySpreadConstraints ?? []).find((c: any) => c.topologyKey === key && own(c.labelSelector));
          const zone = spread('topology.kubernetes.io/zone');
          expect(zone, `${name} zone spread`).toBeDefined();
          expect(zone.maxSkew, `${name} zone skew`).toBe(1);
          // The base is for production clusters, whose nodes carry zones; laptop clusters' nodes do not.
          expect(zone.whenUnsatisfiable, `${name} zone spread`).toBe(render.dev ? 'ScheduleAnyway' : 'DoNotSchedule');
          expect(zone.nodeTaintsPolicy, `${name}: tainted nodes are no zone to spread over`).toBe('Honor');
          expect(spread('kubernetes.io/hostname'), `${name} node spread`).toBeDefined();
          const anti = pod.spec.affinity?.podAntiAffinity;
          const terms = [...(anti?.requiredDuringSchedulingIgnoredDuringExecution ?? []), ...(anti?.preferredDuringSchedulingIgnoredDuringExecution ?? []).map((t: any) => t.podAffinityTerm)];
          expect(terms.some((t: any) => t.topologyKey === 'kubernetes.io/hostname' && own(t.labelSelector)), `${name} anti-affinity on kubernetes.io/hostname`).toBe(true);

          const account = pod.spec.serviceAccountName as string | undefined;
          expect(account, `${name} serviceAccountName`).toBeTruthy();
          expect(accounts.has(account!), `${name}: ServiceAccount ${account} shared`).toBe(false);
          accounts.add(account!);
          expect((one('ServiceAccount', account!) as any).automountServiceAccountToken, `ServiceAccount ${account}`).toBe(false);
          expect(pod.spec.automountServiceAccountToken, `${name} pod automountServiceAccountToken`).toBe(false);
        }
      });

      it(`a MySQL server per service from a Secret of its own, explicit pool sizes, and every server's connections at the HPA maximum within its budget${render.dev ? ' (one server for all here)' : ''}`, () => {
        // Connections a pod opens per server: its pools (Gift has two) of MYSQL_POOL_SIZE, plus one
        // migration connection at start. A rollout adds maxSurge pods on top of the HPA maximum.
        // The budget leaves MYSQL_RESERVED of max_connections to operators, monitoring and replication
        // (deploy/k8s/README.md, "Connection budget").
        const POOLS: Record<string, number> = { room: 1, gift: 2, ledger: 1 };
        const MYSQL_RESERVED = 11;
        const DEFAULT_MAX_CONNECTIONS = 151;
        const load = new Map<string, { total: number; by: string[] }>();
        const secretsRead = new Map<string, string[]>();
        for (const deployment of ofKind('Deployment')) {
          for (const from of deployment.spec.template.spec.containers[0].envFrom ?? []) {
            if (from.secretRef) secretsRead.set(from.secretRef.name, [...(secretsRead.get(from.secretRef.name) ?? []), deployment.metadata.name]);
          }
        }
        for (const [name, pools] of Object.entries(POOLS)) {
          const deployment = one('Deployment', name);
          const container = deployment.spec.template.spec.containers[0];
          expect(secretsRead.get(`livemesh-mysql-${name}`), `Secret livemesh-mysql-${name} is read by ${name} alone`).toEqual([name]);
          expect((container.env as Array<{ name: string }>).some((e) => e.name === 'MYSQL_POOL_SIZE'), `${name} sets MYSQL_POOL_SIZE explicitly`).toBe(true);
          const env = containerEnv(container, objects);
          const pool = Number(env.MYSQL_POOL_SIZE);
          const hpa = ofKind('HorizontalPodAutoscaler').find((h) => h.spec.scaleTargetRef.name === name)!;
          const pods = Number(hpa.spec.maxReplicas) + Number(deployment.spec.strategy.rollingUpdate.maxSurge);
          const shardUrls = (env.LEDGER_SHARD_URLS ?? '').split(',').filter(Boolean);
          const urls = name === 'ledger' ? (shardUrls.length > 0 ? shardUrls : Array.from({ length: Number(env.LEDGER_SHARDS || 2) }, () => env.MYSQL_URL!)) : [env.MYSQL_URL!];
          if (!render.dev && name === 'ledger') expect(new Set(shardUrls.map((u) => new URL(u).host)).size, 'the Ledger\'s shards on servers of their own').toBeGreaterThanOrEqual(2);
          for (const url of urls) {
            const server = new URL(url).host;
            const entry = load.get(server) ?? { total: 0, by: [] };
            entry.total += pods * (pools * pool + 1);
            entry.by.push(`${name} ${pods} x (${pools} x ${pool} + 1)`);
            load.set(server, entry);
          }
        }
        const maxConnections = render.dev
          ? Number(/^--max-connections=(\d+)$/.exec((one('StatefulSet', 'mysql').spec.template.spec.containers[0].args ?? []).find((a: string) => a.startsWith('--max-connections=')) ?? '')?.[1] ?? DEFAULT_MAX_CONNECTIONS)
          : DEFAULT_MAX_CONNECTIONS;
        if (!render.dev) expect(load.size, 'Room, Gift and each Ledger shard on a server of their own').toBe(4);
        for (const [server, { total, by }] of load) {
          expect(total, `${server}: ${by.join(' + ')} = ${total} connections, budget ${maxConnections} - ${MYSQL_RESERVED}`).toBeLessThanOrEqual(maxConnections - MYSQL_RESERVED);
        }
      });

      it(render.dev ? 'the engines as the dev overlay runs them: one NATS server (NATS_REPLICAS=1), one Redis server (no REDIS_CLUSTER_NODES), all Ledger shards on one MySQL' : 'the engines as the production charts run them: NATS_REPLICAS=3, REDIS_CLUSTER_NODES and LEDGER_SHARD_URLS set', () => {
        for (const name of WORKLOADS) {
          const env = containerEnv(one('Deployment', name).spec.template.spec.containers[0], objects);
          expect(env.NATS_REPLICAS, `${name} NATS_REPLICAS`).toBe(render.dev ? '1' : '3');
          if (render.dev) expect(env.REDIS_CLUSTER_NODES ?? '', `${name} REDIS_CLUSTER_NODES`).toBe('');
          else expect(env.REDIS_CLUSTER_NODES, `${name} REDIS_CLUSTER_NODES`).toMatch(/^[\w.-]+:\d+(,[\w.-]+:\d+)*$/);
        }
        const ledger = containerEnv(one('Deployment', 'ledger').spec.template.spec.containers[0], objects);
        if (render.dev) expect(ledger.LEDGER_SHARD_URLS ?? '').toBe('');
        else expect(ledger.LEDGER_SHARD_URLS?.split(',').every((u) => /^mysql:\/\//.test(u))).toBe(true);
      });

      it(`every process: AUTH_PUBLIC_KEYS_DIR on the public-key ConfigMap and AUTH_SIGNING_KEY in its own Secret, mounted read-only and readable by its user only; ${render.dev ? 'the development keys load and pair up' : 'the placeholders stop it at start'}`, async () => {
        const { MeshCredentials } = await import('../kit/credentials.js');
        const { AuthKeysMissing, ISSUERS } = await import('../kit/auth.js');
        const root = mkdtempSync(join(tmpdir(), 'lm-k8s-mounts-'));
        const loaded = new Map<string, ReturnType<typeof MeshCredentials.load>>();
        const signingSecrets = new Set<string>();
        try {
          expect(ofKind('Deployment').map((d) => d.metadata.name).filter((n) => WORKLOADS.includes(n)).sort()).toEqual([...WORKLOADS].sort());
          for (const name of WORKLOADS) {
            const pod = one('Deployment', name).spec.template;
            const container = pod.spec.containers[0];
            const env = containerEnv(container, objects);
            expect(env.AUTH_PUBLIC_KEYS_DIR, `${name} AUTH_PUBLIC_KEYS_DIR`).toMatch(/^\//);
            expect(env.AUTH_SIGNING_KEY, `${name} AUTH_SIGNING_KEY`).toMatch(/^\/.+\.pem$/);

            const publicKeys = mountedAt(pod, env.AUTH_PUBLIC_KEYS_DIR);
            expect(publicKeys?.volume.configMap?.name, `${name}: AUTH_PUBLIC_KEYS_DIR is the mounted public-key ConfigMap`).toBe('livemesh-auth-public');
            expect(publicKeys?.mount.readOnly, `${name}: public keys read-only`).toBe(true);
            one('ConfigMap', 'livemesh-auth-public');

            const signing = mountedAt(pod, env.AUTH_SIGNING_KEY!.slice(0, env.AUTH_SIGNING_KEY!.lastIndexOf('/')));
            const secretName = signing?.volume.secret?.secretName;
            expect(secretName, `${name}: AUTH_SIGNING_KEY is in a mounted Secret`).toBe(`livemesh-auth-${name}`);
            expect(signing!.volume.secret!.optional, `${name}: its key Secret is required`).not.toBe(true);
            expect(signing!.mount.readOnly, `${name}: signing key read-only`).toBe(true);
            expect(signingSecrets.has(secretName!), `${secretName} is mounted by one process only`).toBe(false);
            signingSecrets.add(secretName!);
            const secret = one('Secret', secretName!);

            // Kubelet writes Secret files as root with defaultMode (0644 when unset); with fsGroup their group
            // is the pod's, so 0440 lets uid 65532 read them and nobody else.
            const fsGroup = pod.spec.securityContext.fsGroup as number | undefined;
            for (const [what, volume] of [['signing key', signing!.volume], ['TLS', mountedAt(pod, '/etc/livemesh/tls')?.volume]] as const) {
              const mode = volume?.secret?.defaultMode;
              expect(mode, `${name} ${what} Secret: defaultMode set`).toBeDefined();
              expect(mode! & 0o007, `${name} ${what} Secret: not world-readable`).toBe(0);
              expect((mode! & 0o040) !== 0 && fsGroup !== undefined, `${name} ${what} Secret: readable through fsGroup`).toBe(true);
            }

            // The TLS Secret: optional without the mtls component (GRPC_TLS_DIR unset), required with it.
            const tls = mountedAt(pod, '/etc/livemesh/tls');
            expect(tls?.volume.secret?.secretName, `${name}: TLS Secret mounted`).toBe(`livemesh-tls-${name}`);
            expect(tls?.mount.readOnly).toBe(true);
            if (render.mtls) {
              expect(env.GRPC_TLS_DIR, `${name}: GRPC_TLS_DIR under mTLS`).toBe('/etc/livemesh/tls');
              expect(tls?.volume.secret?.optional, `${name}: the certificate is required under mTLS`).not.toBe(true);
            } else {
              expect(env.GRPC_TLS_DIR ?? '', `${name}: GRPC_TLS_DIR unset without the mtls component`).toBe('');
              expect(tls?.volume.secret?.optional, `${name}: the TLS Secret is optional without mTLS`).toBe(true);
            }

            // Load the keys from the files the pod would see, the way the process does at start.
            const at = materializeMounts(pod, objects, join(root, name));
            const load = () => MeshCredentials.load(name, { AUTH_PUBLIC_KEYS_DIR: at(env.AUTH_PUBLIC_KEYS_DIR!), AUTH_SIGNING_KEY: at(env.AUTH_SIGNING_KEY!), GRPC_TLS_DIR: '' });
            if (render.dev) {
              // Every issuer's public key; in the Secret only this process's private key (never the operator's).
              expect(readdirSync(at(env.AUTH_PUBLIC_KEYS_DIR!)).sort()).toEqual(ISSUERS.map((i) => `${i}.pem`).sort());
              expect(Object.keys(volumeFiles(secret))).toEqual([basename(env.AUTH_SIGNING_KEY!)]);
              loaded.set(name, load());
            } else {
              expect(load, `${name}: the base's placeholder keys stop it at start`).toThrow(AuthKeysMissing);
              expect(existsSync(at(env.AUTH_SIGNING_KEY!)), `${name}: no signing key in the placeholder Secret`).toBe(false);
            }
          }
          if (render.dev) {
            // Each process's private key pairs with its public key in the ConfigMap: every call of the graph
            // carries a service token its callee accepts.
            for (const [caller, callees] of Object.entries(CALLS)) {
              for (const callee of callees) {
                const token = loaded.get(caller)!.minter.service(callee);
                expect(await loaded.get(callee)!.verifier.verify(token), `${caller} -> ${callee}`).toMatchObject({ kind: 'service', service: caller });
              }
            }
          }
        } finally {
          rmSync(root, { recursive: true, force: true });
        }
      });

      it('a NetworkPolicy per process admits exactly its callers (by app.kubernetes.io/name) on its serving port, and only a namespace selector on the metrics port', () => {
        const policies = ofKind('NetworkPolicy');
        for (const name of WORKLOADS) {
          const pod = one('Deployment', name).spec.template;
          const containerPorts = pod.spec.containers[0].ports as Array<{ name: string; containerPort: number }>;
          const mine = policies.filter((p) => p.spec.podSelector?.matchLabels?.['app.kubernetes.io/name'] === name);
          expect(mine.length, `${name}: one NetworkPolicy`).toBe(1);
          const policy = mine[0]!;
          expect(matches(policy.spec.podSelector.matchLabels, pod.metadata.labels), `${name}: the policy selects its pods`).toBe(true);
          expect(policy.spec.podSelector.matchExpressions, `${name}: selects by labels only`).toBeUndefined();
          expect(policy.spec.policyTypes ?? ['Ingress']).toContain('Ingress');
          const rules = policy.spec.ingress as Array<{ from?: any[]; ports?: Array<{ port: string | number; protocol?: string }> }>;
          expect(rules.length).toBeGreaterThan(0);
          const portNames = (rule: (typeof rules)[number]) =>
            rule.ports!.map((p) => (typeof p.port === 'number' ? containerPorts.find((c) => c.containerPort === p.port)?.name : p.port));
          for (const rule of rules) {
            // No rule admits every peer or every port.
            expect(rule.from?.length, `${name}: every rule names its peers`).toBeGreaterThan(0);
            expect(rule.ports?.length, `${name}: every rule names its ports`).toBeGreaterThan(0);
            for (const port of portNames(rule)) expect(containerPorts.map((c) => c.name), `${name}: port ${port} is a container port`).toContain(port);
            for (const peer of rule.from!) {
              expect(peer.ipBlock, `${name}: no address blocks`).toBeUndefined();
              expect(peer.podSelector?.matchExpressions ?? peer.namespaceSelector?.matchExpressions, `${name}: peers by labels only`).toBeUndefined();
              if (peer.podSelector) expect(peer.namespaceSelector, `${name}: pod peers are pods of this namespace`).toBeUndefined();
            }
          }
          const serving = name === 'bff' ? 'http' : 'grpc';
          const peersOn = (port: string) => rules.filter((r) => portNames(r).includes(port)).flatMap((r) => r.from!);
          const callers = peersOn(serving).filter((p) => p.podSelector).map((p) => p.podSelector.matchLabels['app.kubernetes.io/name']);
          expect(callers.sort(), `${name}: callers on ${serving}`).toEqual(callersOf(name));
          const namespaces = peersOn(serving).filter((p) => !p.podSelector);
          if (name === 'bff') {
            // Nothing in the mesh calls the BFF: the ingress controller, by its namespace's name label.
            expect(namespaces, 'bff: from the ingress controller\'s namespace').toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': expect.any(String) } } }]);
          } else {
            expect(namespaces, `${name}: ${serving} from no other namespace`).toEqual([]);
          }
          const scrapers = peersOn('metrics');
          expect(scrapers.length, `${name}: metrics reachable by Prometheus`).toBeGreaterThan(0);
          for (const peer of scrapers) expect(peer, `${name}: metrics from the monitoring namespace only`).toEqual({ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': expect.any(String) } } });
          expect(rules.flatMap(portNames).every((p) => p === serving || p === 'metrics'), `${name}: no other port is open`).toBe(true);
        }
        expect(policies.map((p) => p.metadata.name).sort()).toEqual([...WORKLOADS].sort());
      });

      if (render.mtls) {
        it('mutual TLS: cert-manager issues each process a certificate for its bare service name and cluster names, server and client auth, into the Secret its pods mount', () => {
          const namespace = one('Namespace', 'livemesh').metadata.name;
          const certificates = ofKind('Certificate');
          for (const name of WORKLOADS) {
            const pod = one('Deployment', name).spec.template;
            const env = containerEnv(pod.spec.containers[0], objects);
            const secretName = mountedAt(pod, env.GRPC_TLS_DIR)?.volume.secret?.secretName;
            const certificate = certificates.find((c) => c.spec.secretName === secretName);
            expect(certificate, `${name}: a Certificate writes ${secretName}`).toBeDefined();
            const { dnsNames, usages, issuerRef } = certificate!.spec;
            // Clients check the server against the bare service name (grpc.ssl_target_name_override).
            expect(dnsNames, `${name} SANs`).toEqual(expect.arrayContaining([name, `${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.cluster.local`]));
            expect(usages, `${name} usages`).toEqual(expect.arrayContaining(['server auth', 'client auth']));
            const issuer = one(issuerRef.kind ?? 'Issuer', issuerRef.name);
            // A CA issuer's Secret carries ca.crt: the trust anchor the GRPC_TLS_DIR layout needs.
            if (issuer.spec.ca) expect(certificates.find((c) => c.spec.secretName === issuer.spec.ca.secretName)?.spec.isCA, `${issuerRef.name}'s CA`).toBe(true);
          }
        });
      }

      if (render.dev) {
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
      } else if (render.rendered) {
        it('leaves the infrastructure to charts and operators', () => {
          expect(ofKind('StatefulSet')).toEqual([]);
        });
      }
    });
  }

  describe('the mtls component (files, as they are)', () => {
    const certificates = readObjects('deploy/k8s/components/mtls/certificates.yaml').filter((o) => o.kind === 'Certificate' && !o.spec.isCA);
    const component = parseYamlDocuments(readFileSync(fromRoot('deploy/k8s/components/mtls/kustomization.yaml'), 'utf8'), 'mtls kustomization')[0] as any;

    it('is a kustomize Component that sets GRPC_TLS_DIR and adds a Certificate per process whose SANs start with the bare service name', () => {
      expect(component.kind).toBe('Component');
      expect(component.resources).toContain('certificates.yaml');
      expect(JSON.stringify(component.patches)).toContain('GRPC_TLS_DIR');
      for (const name of WORKLOADS) {
        const certificate = certificates.find((c) => c.spec.secretName === `livemesh-tls-${name}`);
        expect(certificate, name).toBeDefined();
        expect(certificate!.spec.dnsNames[0], `${name}: the name clients check comes first`).toBe(name);
        expect(certificate!.spec.dnsNames).toEqual(expect.arrayContaining([`${name}.livemesh.svc.cluster.local`]));
      }
      expect(certificates.length).toBe(WORKLOADS.length);
    });
  });

  describe('the hpa-event-loop component', () => {
    it.skipIf(kubectlTool.skip)('rendered over the base, every HPA scales on the event-loop gauge the processes export as well as on CPU, and the objects still validate', async () => {
      const kubectlBin = kubectlTool.need();
      // A throwaway overlay: kustomize takes the base and the component only by relative path.
      const dir = mkdtempSync(join(tmpdir(), 'lm-k8s-hpa-'));
      try {
        const rel = (path: string) => relative(dir, fromRoot(path));
        writeFileSync(
          join(dir, 'kustomization.yaml'),
          `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ${rel('deploy/k8s/base')}\ncomponents:\n  - ${rel('deploy/k8s/components/hpa-event-loop')}\n`,
        );
        const objects = kustomize(relative(fromRoot(), dir), kubectlBin);
        const hpas = objects.filter((o) => o.kind === 'HorizontalPodAutoscaler');
        expect(hpas.map((h) => h.spec.scaleTargetRef.name).sort()).toEqual([...WORKLOADS].sort());
        for (const hpa of hpas) {
          const metrics = hpa.spec.metrics as any[];
          expect(metrics.map((m) => m.type), hpa.metadata.name).toEqual(['Resource', 'Pods']);
          expect(metrics[1].pods).toEqual({ metric: { name: 'livemesh_load_event_loop_ratio' }, target: { type: 'AverageValue', averageValue: '700m' } });
        }
        expect(readFileSync(fromRoot('kit/metrics.ts'), 'utf8'), 'the processes export the gauge under that name').toContain(`name: 'livemesh_load_event_loop_ratio'`);
        expect((await Promise.all(hpas.map(manifestError))).filter(Boolean)).toEqual([]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('the development keys of overlays/dev (files, as they are)', () => {
    it('the development keys committed for overlays/dev pair up, the operator\'s included (for AUTH_OPERATOR_KEY)', () => {
      const dir = fromRoot('deploy/k8s/overlays/dev/auth');
      const data = Buffer.from('livemesh');
      for (const file of readdirSync(join(dir, 'private'))) {
        const signature = sign(null, data, createPrivateKey(readFileSync(join(dir, 'private', file))));
        expect(verify(null, data, createPublicKey(readFileSync(join(dir, 'public', file))), signature), relative(fromRoot(), join(dir, 'private', file))).toBe(true);
      }
      expect(readdirSync(join(dir, 'private')).sort()).toEqual([...WORKLOADS, 'operator'].map((n) => `${n}.pem`).sort());
    });
  });
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
    cleanups.push(() => Promise.resolve().then(() => client.close()));
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
