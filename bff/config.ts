/**
 * The BFF's settings, validated once at start with the kit's zod helpers (one line naming the bad
 * variable, exit 78). Built from parseConfig rather than the kit's loadConfigOrExit because that
 * one merges the whole gRPC-service shape (fault injection, MySQL pool…): the BFF would then refuse
 * to start over a bad value of a variable it never reads.
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import { ConfigError, credentialsConfigShape, EXIT_CONFIG, int, kitConfigShape, onOff, parseConfig, port } from '../kit/config.js';

/**
 * Development secrets, so `npm start` and the demo page work out of the box. main.ts logs a
 * warning whenever one is in use and refuses them when NODE_ENV=production.
 */
export const DEV_JWT_SECRET = 'livemesh-dev-jwt-secret-not-for-production';
export const DEV_TOPUP_SECRET = 'livemesh-dev-topup-secret-not-for-production';

const secret = (fallback: string) => z.string().min(32, { error: 'must be at least 32 characters' }).default(fallback);
/** A gRPC target: host:port, a comma-separated list of them, or a scheme-qualified grpc-js target. */
const target = (fallbackPort: number) => z.string().min(1).default(`127.0.0.1:${fallbackPort}`);

export const bffConfigShape = {
  ...credentialsConfigShape,
  HOST: kitConfigShape.HOST,
  PORT: port(8080),
  LOG_LEVEL: kitConfigShape.LOG_LEVEL,
  /** Name in logs; defaults to host:port, like the services. */
  REPLICA: kitConfigShape.REPLICA,
  DRAIN_GRACE_MS: kitConfigShape.DRAIN_GRACE_MS,
  DRAIN_TIMEOUT_MS: kitConfigShape.DRAIN_TIMEOUT_MS,
  /** Prometheus `/metrics` on its own port; unset means PORT + 1000, 0 picks a free port, -1 disables it. */
  METRICS_PORT: kitConfigShape.METRICS_PORT,
  REDIS_URL: kitConfigShape.REDIS_URL,
  REDIS_CLUSTER_NODES: kitConfigShape.REDIS_CLUSTER_NODES,
  REDIS_PREFIX: kitConfigShape.REDIS_PREFIX,
  NATS_URL: kitConfigShape.NATS_URL,
  NATS_PREFIX: kitConfigShape.NATS_PREFIX,
  NATS_REPLICAS: kitConfigShape.NATS_REPLICAS,
  ROOM_ADDR: target(50051),
  GIFT_ADDR: target(50052),
  LEDGER_ADDR: target(50053),
  CHAT_ADDR: target(50054),
  RANKING_ADDR: target(50055),
  /** HS256 key the identity provider signs user tokens with. */
  JWT_SECRET: secret(DEV_JWT_SECRET),
  /** Expected `iss` claim; empty accepts any issuer. */
  JWT_ISSUER: z.string().default(''),
  /** HMAC-SHA256 key the payment provider signs top-up callbacks with. */
  TOPUP_SECRET: secret(DEV_TOPUP_SECRET),
  /** Largest accepted JSON body; mobile requests are small, a bigger body is a bug or abuse. */
  BODY_LIMIT_BYTES: int(1024, 1_048_576, 16_384),
  /** Total time a screen may take; every upstream call gets its own deadline inside it. */
  REQUEST_BUDGET_MS: int(50, 30_000, 1500),
  /** Deadline of a non-critical section (ranking, messages, recommendations): it must never hold a screen up. */
  OPTIONAL_DEADLINE_MS: int(10, 30_000, 300),
  /** How long a public screen is served from the micro-cache before it is refreshed. */
  CACHE_TTL_MS: int(100, 60_000, 2000),
  /**
   * How long a screen missing a section that ran out of time (a cold BFF's first build, a slow
   * upstream) is served before it is rebuilt in the background; capped by CACHE_TTL_MS.
   */
  CACHE_DEGRADED_TTL_MS: int(10, 60_000, 250),
  /** How long past its TTL an entry may still be served: while one request refreshes it, or when the upstream is down. */
  CACHE_STALE_MS: int(0, 3_600_000, 60_000),
  /** Micro-cache entries kept per replica. */
  CACHE_MAX_ENTRIES: int(10, 1_000_000, 10_000),
  /** Requests per second per user (token subject), and per client IP; 0 disables that limit. */
  RATE_LIMIT_USER_PER_S: int(0, 100_000, 20),
  RATE_LIMIT_IP_PER_S: int(0, 1_000_000, 100),
  /** Trust X-Forwarded-For from this many proxies in front (0: the socket address is the client). */
  TRUST_PROXY_HOPS: int(0, 10, 0),
  /** Breaker per upstream: opens when this percentage of calls in the window failed or timed out… */
  BREAKER_ERROR_PERCENT: int(1, 100, 50),
  /** …and at least this many calls were made in the window… */
  BREAKER_MIN_CALLS: int(1, 100_000, 20),
  /** …over this rolling window… */
  BREAKER_WINDOW_MS: int(1000, 600_000, 10_000),
  /** …and stays open this long before one trial call is let through. */
  BREAKER_OPEN_MS: int(100, 600_000, 5000),
  /** Room stream: events per second each WebSocket may receive in a room past STREAM_SAMPLE_ABOVE viewers (gifts and notices always go; chat is sampled beyond it). */
  STREAM_EVENTS_PER_S: int(1, 1_000_000, 50),
  /** Room stream: viewers of one room on this replica up to which every event reaches every viewer (no sampling, no cap). */
  STREAM_SAMPLE_ABOVE: int(0, 10_000_000, 2000),
  /** Room stream: how long a gap in a room's offsets may stay open before the missing events are read from Chat's history. */
  STREAM_GAP_WAIT_MS: int(10, 60_000, 250),
  /** Room stream: events are batched into one frame per room this often. */
  STREAM_TICK_MS: int(10, 1000, 100),
  /** Room stream: a client with more unsent bytes than this is disconnected (close code 4008). */
  STREAM_MAX_BUFFER_BYTES: int(16_384, 67_108_864, 1_048_576),
  /** Room stream: ping interval; a client that missed the previous pong is dropped. */
  STREAM_HEARTBEAT_MS: int(1000, 300_000, 20_000),
  /** Room stream: most events a reconnect (`?after=<offset>`) replays; a longer gap is answered `recovered: false` with the current state. */
  STREAM_RESUME_MAX: int(1, 10_000, 1000),
  /** Room stream: signed-in viewers are re-entered into Room's presence this often (below Room's ONLINE_SESSION_TTL_MS). */
  STREAM_PRESENCE_REFRESH_MS: int(10_000, 3_600_000, 600_000),
  /**
   * Serve the demo page at `/` and let it mint development tokens: off unless asked for (`npm
   * start` asks for it). With NODE_ENV=production it never mints an admin token.
   */
  DEMO: onOff('off'),
  /**
   * Browser origins allowed to call /v1 cross-origin (CORS), comma-separated, e.g.
   * `https://app.example.com,http://localhost:5173`. Unset: the demo's own origins
   * (http://localhost:PORT, http://127.0.0.1:PORT) outside production, none in production.
   */
  CORS_ORIGINS: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return undefined;
      const origins = v.split(',').map((o) => o.trim()).filter((o) => o !== '');
      const bad = origins.find((o) => !/^https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?$/.test(o) && !/^https?:\/\/\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$/.test(o));
      if (bad !== undefined) {
        ctx.addIssue({ code: 'custom', message: `must be comma-separated origins like https://app.example.com (scheme://host[:port], no path); ${JSON.stringify(bad)} is not one` });
        return z.NEVER;
      }
      return origins;
    }),
};

export type BffConfig = z.infer<z.ZodObject<typeof bffConfigShape>>;

/** Parses the environment; throws ConfigError naming every bad variable. */
export function parseBffConfig(env: NodeJS.ProcessEnv = process.env): BffConfig {
  const config = parseConfig(bffConfigShape, env);
  if (env.NODE_ENV === 'production') {
    const problems: string[] = [];
    if (config.JWT_SECRET === DEV_JWT_SECRET) problems.push('JWT_SECRET must be set in production');
    if (config.TOPUP_SECRET === DEV_TOPUP_SECRET) problems.push('TOPUP_SECRET must be set in production');
    if (problems.length > 0) throw new ConfigError(problems);
  }
  const metricsPort = config.METRICS_PORT === -2 ? (config.PORT === 0 || config.PORT + 1000 > 65535 ? 0 : config.PORT + 1000) : config.METRICS_PORT;
  const corsOrigins = config.CORS_ORIGINS ?? (env.NODE_ENV === 'production' ? [] : demoOrigins(config.PORT));
  return { ...config, METRICS_PORT: metricsPort, REPLICA: config.REPLICA || `${hostname()}:${config.PORT}`, CORS_ORIGINS: corsOrigins };
}

/** Where the demo page is served from when it runs on this machine (`npm start`). */
function demoOrigins(port: number): string[] {
  return port === 0 ? [] : [`http://localhost:${port}`, `http://127.0.0.1:${port}`];
}

/** Same contract as the services: one line naming the bad variable, exit 78, before anything starts. */
export function loadBffConfigOrExit(env: NodeJS.ProcessEnv = process.env): BffConfig {
  try {
    return parseBffConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw err;
  }
}
