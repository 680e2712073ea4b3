import { hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { fromRoot } from './paths.js';

/**
 * Environment configuration, validated once at start. A process that starts with a bad value
 * would fail later in a confusing place (a refused bind, a NaN timeout); failing at once with one
 * line that names the variable is cheaper for whoever is reading the logs.
 */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`config error: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

/** Exit status for a bad configuration (sysexits EX_CONFIG), so supervisors can tell it apart. */
export const EXIT_CONFIG = 78;

export const int = (min: number, max: number, fallback: number) =>
  z.coerce
    .number({ error: `must be an integer between ${min} and ${max}` })
    .int({ error: `must be an integer between ${min} and ${max}` })
    .min(min, { error: `must be an integer between ${min} and ${max}` })
    .max(max, { error: `must be an integer between ${min} and ${max}` })
    .default(fallback);

export const ratio = (fallback: number) =>
  z.coerce
    .number({ error: 'must be a number between 0 and 1' })
    .min(0, { error: 'must be a number between 0 and 1' })
    .max(1, { error: 'must be a number between 0 and 1' })
    .default(fallback);

const isUrlOf = (protocols: string[], value: string) => {
  try {
    return protocols.includes(new URL(value).protocol.replace(/:$/, ''));
  } catch {
    return false;
  }
};

export const url = (protocols: string[], fallback: string) =>
  z
    .string()
    .default(fallback)
    .refine((value) => isUrlOf(protocols, value), { error: `must be a URL starting with ${protocols.map((p) => `${p}://`).join(' or ')}` });

export const port = (fallback: number) => int(0, 65535, fallback);

/** A comma-separated list of URLs (a cluster's seed servers), kept as the string it was given. */
export const urlList = (protocols: string[], fallback: string) =>
  z
    .string()
    .default(fallback)
    .refine((value) => {
      const parts = value.split(',').map((p) => p.trim());
      return parts.length > 0 && parts.every((p) => isUrlOf(protocols, p));
    }, { error: `must be a URL starting with ${protocols.map((p) => `${p}://`).join(' or ')}, or a comma-separated list of them` });

/** JetStream's replica counts that keep a quorum: 1, 3 or 5. */
export const natsReplicas = () =>
  z.coerce
    .number({ error: 'must be 1, 3 or 5' })
    .refine((n) => n === 1 || n === 3 || n === 5, { error: 'must be 1, 3 or 5' })
    .default(1);

const ON = new Set(['on', 'true', '1']);
const OFF = new Set(['off', 'false', '0']);
const SWITCH_ERROR = 'must be on or off (true/false and 1/0 are accepted too)';

/**
 * Every boolean setting reads the same words: on/off, true/false or 1/0, in any case, normalised
 * to 'on' | 'off'. Use `flag` where the code wants a boolean.
 */
export const onOff = (fallback: 'on' | 'off') =>
  z
    .string()
    .default(fallback)
    .refine((s) => ON.has(s.toLowerCase()) || OFF.has(s.toLowerCase()), { error: SWITCH_ERROR })
    .transform((s): 'on' | 'off' => (ON.has(s.toLowerCase()) ? 'on' : 'off'));

/** A boolean setting (same words as onOff) read as true/false. */
export const flag = (fallback: boolean) => onOff(fallback ? 'on' : 'off').transform((v) => v === 'on');

export const list = (fallback = '') =>
  z
    .string()
    .default(fallback)
    .transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean));

const prefix = (fallback: string) =>
  z.string().default(fallback).refine((s) => /^[A-Za-z0-9_.:-]*$/.test(s), { error: 'may contain only letters, digits and _ . : -' });

/** Development keys and certificates live here (git-ignored); `npm run auth` creates them. */
export const DEV_AUTH_DIR = fromRoot('.livemesh', 'auth');
export const DEV_TLS_DIR = fromRoot('.livemesh', 'tls');

/** Credentials every process (services and the BFF) needs: see kit/credentials.ts. */
export const credentialsConfigShape = {
  /** Folder of every issuer's public key, `<issuer>.pem`. */
  AUTH_PUBLIC_KEYS_DIR: z.string().min(1).default(join(DEV_AUTH_DIR, 'public')),
  /** This process's Ed25519 private key; empty means `<dev auth dir>/private/<process>.pem`. */
  AUTH_SIGNING_KEY: z.string().default(''),
  /**
   * Mutual TLS: a folder holding `ca.crt`, `tls.crt` and `tls.key` (the layout of a cert-manager
   * Secret). Set, servers require a client certificate from that CA and clients present theirs;
   * empty means plaintext gRPC.
   */
  GRPC_TLS_DIR: z.string().default(''),
};

/** Settings every service process shares; each service extends this with its own. */
export const kitConfigShape = {
  ...credentialsConfigShape,
  HOST: z.string().min(1).default('0.0.0.0'),
  /** 0 picks a free port (tests). */
  PORT: port(0),
  /** Prometheus endpoint; unset means PORT + 1000, 0 picks a free port, -1 disables it. */
  METRICS_PORT: int(-1, 65535, -2),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { error: 'must be one of fatal, error, warn, info, debug, trace, silent' }).default('info'),
  /** Replica name in logs and metrics; defaults to host:port. */
  REPLICA: z.string().default(''),
  REGION: z.string().regex(/^[a-z0-9-]+$/, { error: 'must be lowercase letters, digits and dashes' }).default('local'),
  /** After health turns NOT_SERVING, keep accepting calls this long so balancers and probes notice. */
  DRAIN_GRACE_MS: int(0, 60_000, 500),
  /** In-flight calls get this long to finish after the server stops accepting; then they are cancelled. */
  DRAIN_TIMEOUT_MS: int(0, 600_000, 10_000),
  /**
   * Close every client connection after about this long (±10%, GOAWAY, calls in flight finish), so
   * clients resolve DNS again and spread over pods that joined since they connected: grpc-js only
   * re-resolves when a connection drops or the balancer asks. 0 keeps connections forever.
   */
  GRPC_MAX_CONNECTION_AGE_MS: int(0, 86_400_000, 300_000),
  /** How long calls still open on an aged connection may run before it is cut; 0 lets them finish. */
  GRPC_MAX_CONNECTION_AGE_GRACE_MS: int(0, 86_400_000, 0),
  /** Window over which CPU and event-loop utilization are measured for load reports. */
  LOAD_WINDOW_MS: int(100, 10_000, 1000),
  FAULT_LATENCY_MS: int(0, 600_000, 0),
  FAULT_CPU_MS: int(0, 60_000, 0),
  /** The whole process costs this many times the CPU for the same work (a noisy neighbour); 1 is off. */
  FAULT_CPU_FACTOR: z.coerce
    .number({ error: 'must be a number between 1 and 20' })
    .min(1, { error: 'must be a number between 1 and 20' })
    .max(20, { error: 'must be a number between 1 and 20' })
    .default(1),
  FAULT_ERROR_RATE: ratio(0),
  /** Methods the faults apply to (short names such as GetRoom); empty means every method. */
  FAULT_METHODS: list(),
  MYSQL_URL: url(['mysql', 'mariadb'], 'mysql://root@127.0.0.1:3306'),
  MYSQL_POOL_SIZE: int(1, 1000, 10),
  REDIS_URL: url(['redis', 'rediss'], 'redis://127.0.0.1:6379'),
  /**
   * Seed nodes of a Redis Cluster (host:port, comma-separated): every service and the BFF then use
   * ioredis's Cluster client. Empty: the single server at REDIS_URL (whose credentials and TLS
   * apply to the Cluster's nodes too).
   */
  REDIS_CLUSTER_NODES: list().refine((nodes) => nodes.every((n) => /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/.test(n)), {
    error: 'must be a comma-separated list of host:port',
  }),
  /** Prepended to every Redis key, so tests and tenants can share one server (no braces: hash tags decide Cluster slots). */
  REDIS_PREFIX: prefix('lm:'),
  /** One NATS server, or a comma-separated list of a cluster's servers (the client tries them all). */
  NATS_URL: urlList(['nats', 'tls'], 'nats://127.0.0.1:4222'),
  /**
   * Replicas of every JetStream stream and KV bucket livemesh creates: 1 on a single server, 3 (or
   * 5) on a cluster, so losing a node loses no stream. An existing one with fewer is raised at start.
   */
  NATS_REPLICAS: natsReplicas(),
  /** Prepended to every NATS subject and stream name, so tests can share one server. */
  NATS_PREFIX: prefix(''),
};

export type Shape = Record<string, z.ZodType>;

/**
 * Parses `env` against a shape. Empty strings count as unset, because compose files and shells
 * often export `VAR=` meaning "default".
 */
export function parseConfig<S extends Shape>(shape: S, env: NodeJS.ProcessEnv = process.env): z.infer<z.ZodObject<S>> {
  const input: Record<string, string> = {};
  for (const key of Object.keys(shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') input[key] = value;
  }
  const result = z.object(shape).safeParse(input);
  if (result.success) return result.data;
  throw new ConfigError(
    result.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? '?');
      const raw = input[key];
      return `${key} ${issue.message}${raw === undefined ? '' : ` (got ${JSON.stringify(raw)})`}`;
    }),
  );
}

export function resolveKitDefaults<C extends z.infer<z.ZodObject<typeof kitConfigShape>>>(config: C): C {
  return {
    ...config,
    METRICS_PORT: config.METRICS_PORT === -2 ? (config.PORT === 0 || config.PORT + 1000 > 65535 ? 0 : config.PORT + 1000) : config.METRICS_PORT,
    REPLICA: config.REPLICA || `${hostname()}:${config.PORT}`,
  };
}
