/**
 * The BFF process: `node dist/bff/main.js`, configured from the environment.
 *
 * Process concerns only (config, logger, signals, exit codes); the HTTP behaviour is in app.ts.
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import { ConfigError, EXIT_CONFIG, kitConfigShape, parseConfig, port } from '../services/kit/config.js';
import { createLogger } from '../services/kit/logger.js';
import { boundPort, createApp, drainHttpServer, listen, Readiness } from './app.js';

/**
 * The BFF's settings. Built from parseConfig rather than the kit's loadConfigOrExit because that
 * one always merges the whole gRPC-service shape (fault injection, load window, MySQL pool…): the
 * BFF would then refuse to start over a bad value of a variable it never reads.
 */
const bffConfigShape = {
  HOST: kitConfigShape.HOST,
  PORT: port(8080),
  LOG_LEVEL: kitConfigShape.LOG_LEVEL,
  /** Name in logs; defaults to host:port, like the services. */
  REPLICA: kitConfigShape.REPLICA,
  DRAIN_GRACE_MS: kitConfigShape.DRAIN_GRACE_MS,
  DRAIN_TIMEOUT_MS: kitConfigShape.DRAIN_TIMEOUT_MS,
};

type BffConfig = z.infer<z.ZodObject<typeof bffConfigShape>>;

/** Same contract as the services: one line naming the bad variable, exit 78, before anything starts. */
function loadBffConfigOrExit(env: NodeJS.ProcessEnv = process.env): BffConfig {
  try {
    const config = parseConfig(bffConfigShape, env);
    return { ...config, REPLICA: config.REPLICA || `${hostname()}:${config.PORT}` };
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw err;
  }
}

const config = loadBffConfigOrExit();
const log = createLogger({ service: 'bff', replica: config.REPLICA, level: config.LOG_LEVEL });
const readiness = new Readiness();
const app = createApp({ log, readiness });

let stopping = false;
/** First signal drains and exits 0; a second one means "now", as with the gRPC services. */
function stop(signal: string): void {
  if (stopping) {
    log.warn({ signal }, 'second signal: exiting now');
    process.exit(1);
  }
  stopping = true;
  log.info({ signal, graceMs: config.DRAIN_GRACE_MS, timeoutMs: config.DRAIN_TIMEOUT_MS }, 'draining');
  const started = Date.now();
  drainHttpServer(server, readiness, { graceMs: config.DRAIN_GRACE_MS, timeoutMs: config.DRAIN_TIMEOUT_MS }).then(
    (clean) => {
      if (!clean) log.warn('drain deadline passed; closed the connections still open');
      log.info({ ms: Date.now() - started, clean }, 'drained');
      process.exit(0);
    },
    (err: unknown) => {
      log.error({ err }, 'drain failed');
      process.exit(1);
    },
  );
}

let server: Awaited<ReturnType<typeof listen>>;
try {
  server = await listen(app, config.HOST, config.PORT);
} catch (err) {
  log.error({ err }, 'start-up failed');
  process.exit(1);
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
log.info({ port: boundPort(server) }, `bff serving on ${config.HOST}:${boundPort(server)}`);
