/**
 * Development credentials and the operator's side of them: the key pairs every issuer signs tokens
 * with, a development CA with a certificate per process for mutual TLS, and the operator's tokens
 * and channel credentials that the CLIs, tests, benchmarks and `buf curl` users need.
 *
 * Production keys and certificates come from the platform (Kubernetes Secrets, cert-manager; see
 * deploy/k8s/README.md); nothing here is read by a deployed service.
 */
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials as grpcCredentials, Metadata, type ChannelCredentials, type ChannelOptions } from '@grpc/grpc-js';
import { AUTH_METADATA_KEY, ISSUERS, loadSigningKey, MESH_SERVICES, OPERATOR, signJwt } from '../kit/auth.js';
import { DEV_AUTH_DIR, DEV_TLS_DIR } from '../kit/config.js';
import { MeshCredentials } from '../kit/credentials.js';
import type { Role } from '../kit/identity.js';

/** Every livemesh gRPC audience (the processes that serve gRPC). */
export const GRPC_SERVICES = MESH_SERVICES.filter((s) => s !== 'bff');

/**
 * Creates an Ed25519 key pair per issuer under `dir` (`private/<issuer>.pem`, `public/<issuer>.pem`)
 * unless one exists. Written to a temporary name and renamed, so a process starting meanwhile
 * never reads half a key.
 */
export function ensureDevKeys(dir = DEV_AUTH_DIR, log: (line: string) => void = () => {}): void {
  mkdirSync(join(dir, 'private'), { recursive: true, mode: 0o700 });
  mkdirSync(join(dir, 'public'), { recursive: true });
  let made = 0;
  for (const issuer of ISSUERS) {
    const priv = join(dir, 'private', `${issuer}.pem`);
    const pub = join(dir, 'public', `${issuer}.pem`);
    if (existsSync(priv) && existsSync(pub)) continue;
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    atomicWrite(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600);
    atomicWrite(pub, publicKey.export({ type: 'spki', format: 'pem' }).toString(), 0o644);
    made++;
  }
  if (made > 0) log(`auth: created ${made} development key pair(s) in ${dir}`);
}

function atomicWrite(path: string, content: string, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function openssl(args: string[], cwd: string): void {
  const res = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (res.error) throw new Error(`openssl is needed to make development certificates (Debian package openssl): ${res.error.message}`);
  if (res.status !== 0) throw new Error(`openssl ${args[0]} failed: ${res.stderr.trim()}`);
}

/**
 * A development CA and, per process (and the operator), a certificate for both ends of mutual
 * TLS, in the layout of a cert-manager Secret: `<dir>/<name>/{ca.crt,tls.crt,tls.key}`. Server
 * names: the process's name (clients check that, whatever address they dial), its Kubernetes
 * names, `localhost` and 127.0.0.1. Keys are ECDSA P-256; certificates last `days`.
 */
export function ensureDevCerts(dir = DEV_TLS_DIR, opts: { days?: number; force?: boolean; log?: (line: string) => void } = {}): void {
  const names = [...MESH_SERVICES, OPERATOR];
  if (!opts.force && names.every((n) => existsSync(join(dir, n, 'tls.crt')))) return;
  if (opts.force) rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'ca'), { recursive: true, mode: 0o700 });
  const days = String(opts.days ?? 825);
  const ca = join(dir, 'ca');
  if (!existsSync(join(ca, 'ca.crt'))) {
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', days, '-subj', '/O=livemesh/CN=livemesh development CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], ca);
  }
  for (const name of names) {
    const out = join(dir, name);
    mkdirSync(out, { recursive: true, mode: 0o700 });
    const sans = [`DNS:${name}`, `DNS:${name}.livemesh`, `DNS:${name}.livemesh.svc`, `DNS:${name}.livemesh.svc.cluster.local`, 'DNS:localhost', 'IP:127.0.0.1'].join(',');
    const ext = join(out, 'ext.cnf');
    writeFileSync(ext, `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=${sans}\n`);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'tls.key', '-out', 'tls.csr', '-subj', `/O=livemesh/CN=${name}`], out);
    openssl(['x509', '-req', '-in', 'tls.csr', '-CA', join(ca, 'ca.crt'), '-CAkey', join(ca, 'ca.key'), '-CAcreateserial', '-out', 'tls.crt', '-days', days, '-extfile', ext], out);
    writeFileSync(join(out, 'ca.crt'), readFileSync(join(ca, 'ca.crt')));
    rmSync(join(out, 'tls.csr'));
    rmSync(ext);
  }
  opts.log?.(`tls: development CA and certificates for ${names.join(', ')} in ${dir}`);
}

/** Seconds from `1h`, `30m`, `7d`, `45s` or a bare number of seconds. */
export function parseTtl(text: string): number {
  const m = /^([1-9][0-9]*)([smhd]?)$/.exec(text.trim());
  if (!m) throw new Error(`ttl ${JSON.stringify(text)} must look like 45s, 30m, 12h or 7d`);
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
}

let operatorKeyCache: ReturnType<typeof loadSigningKey> | undefined;
/** The operator's signing key: AUTH_OPERATOR_KEY, or the development one. */
function operatorKey() {
  return (operatorKeyCache ??= loadSigningKey(process.env.AUTH_OPERATOR_KEY || join(DEV_AUTH_DIR, 'private', `${OPERATOR}.pem`)));
}

export interface OperatorTokenOptions {
  /** Seconds the token lives. */
  ttlS?: number;
  /** Services it is good for; default every gRPC service. */
  audience?: readonly string[];
}

/** Signs `claims` for `opts.audience` (default every gRPC service), issued now, living `opts.ttlS` or `defaultTtlS`. */
function mint(claims: Record<string, unknown>, issuer: string, key: KeyObject, opts: OperatorTokenOptions, defaultTtlS: number): string {
  const iat = Math.floor(Date.now() / 1000);
  return signJwt({ ...claims, aud: [...(opts.audience ?? GRPC_SERVICES)], iat, exp: iat + (opts.ttlS ?? defaultTtlS) }, issuer, key);
}

/** A user token signed by the operator: an admin for debugging and CLIs, or any user for reproducing a report. */
export function operatorUserToken(userId: string, role: Role, name = '', opts: OperatorTokenOptions = {}): string {
  return mint({ kind: 'user', sub: userId, role, name }, OPERATOR, operatorKey(), opts, 3600);
}

/** A service token for another team's service (never one of the mesh's own names: the services refuse that). */
export function operatorServiceToken(service: string, opts: OperatorTokenOptions = {}): string {
  if ((MESH_SERVICES as readonly string[]).includes(service)) throw new Error(`${service} is one of the mesh's own services, which sign their own tokens; services refuse an operator's token in its name`);
  return mint({ kind: 'service', sub: service }, OPERATOR, operatorKey(), opts, 3600);
}

/**
 * Tokens as the mesh's own processes mint them, signed with their development keys: what tests,
 * benchmarks and load scripts send when they stand in for the BFF (a user) or for a service.
 * Admins get an operator's token, as an engineer calling gRPC directly would.
 */
export function devUserToken(userId: string, role: Role, name = '', opts: OperatorTokenOptions = {}): string {
  if (role === 'admin') return operatorUserToken(userId, role, name, opts);
  return mint({ kind: 'user', sub: userId, role, name }, 'bff', devSigningKey('bff'), opts, 600);
}

/** A mesh service's own token, signed with its development key. */
export function devServiceToken(service: string, opts: OperatorTokenOptions = {}): string {
  return mint({ kind: 'service', sub: service }, service, devSigningKey(service), opts, 600);
}

const devKeys = new Map<string, KeyObject>();
/** An issuer's development private key (read once): what a tool signs with when it stands in for that issuer. */
export function devSigningKey(issuer: string): KeyObject {
  let key = devKeys.get(issuer);
  if (!key) devKeys.set(issuer, (key = loadSigningKey(join(DEV_AUTH_DIR, 'private', `${issuer}.pem`))));
  return key;
}

/** A mesh process's credentials from the development keys (and certificates, given a TLS folder): for tools that stand in for it. */
export function devCredentials(self: string, tlsDir = ''): MeshCredentials {
  return MeshCredentials.load(self, { AUTH_PUBLIC_KEYS_DIR: join(DEV_AUTH_DIR, 'public'), AUTH_SIGNING_KEY: '', GRPC_TLS_DIR: tlsDir });
}

/** Metadata carrying a token. */
export function bearer(token: string): Metadata {
  const md = new Metadata();
  md.set(AUTH_METADATA_KEY, `Bearer ${token}`);
  return md;
}

/**
 * Channel credentials for an operator's tool: mutual TLS with the operator's certificate when
 * GRPC_TLS_DIR is set (a folder with ca.crt, tls.crt, tls.key), plaintext otherwise.
 */
export function operatorChannelCredentials(tlsDir = process.env.GRPC_TLS_DIR ?? ''): ChannelCredentials {
  if (!tlsDir) return grpcCredentials.createInsecure();
  const read = (f: string) => readFileSync(join(tlsDir, f));
  return grpcCredentials.createSsl(read('ca.crt'), read('tls.key'), read('tls.crt'));
}

/**
 * An operator's tool's channel to one mesh service: its credentials (operatorChannelCredentials)
 * and, under TLS, the name its certificate carries (`ledger`, `room`, …) as the name to check
 * and to send as SNI, whatever address is dialled. Without it grpc-js sends the dialled host,
 * and an IP address is no server name: Node 26 refuses the connection outright.
 */
export function operatorChannel(service: string, tlsDir = process.env.GRPC_TLS_DIR ?? ''): { credentials: ChannelCredentials; options: ChannelOptions } {
  return { credentials: operatorChannelCredentials(tlsDir), options: tlsDir ? { 'grpc.ssl_target_name_override': service } : {} };
}
