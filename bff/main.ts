/**
 * The BFF process: `node dist/bff/main.js`, configured from the environment.
 *
 * Process concerns only (config, logger, signals, exit codes); the HTTP behaviour is in app.ts and
 * the wiring in wiring.ts.
 */
import { ConfigError, EXIT_CONFIG } from '../kit/config.js';
import { createLogger } from '../kit/logger.js';
import { startTracing } from '../kit/tracing.js';
import { boundPort, drainHttpServer, listen, Readiness } from './app.js';
import { DEV_JWT_SECRET, DEV_TOPUP_SECRET, loadBffConfigOrExit } from './config.js';
import { createBff, type Bff } from './wiring.js';

const config = loadBffConfigOrExit();
// Before the logger and the wiring: they add trace ids and tracing hooks only if it is on by then.
const tracing = await startTracing('bff', config.REPLICA);
const log = createLogger({ service: 'bff', replica: config.REPLICA, level: config.LOG_LEVEL });
if (config.JWT_SECRET === DEV_JWT_SECRET || config.TOPUP_SECRET === DEV_TOPUP_SECRET) log.warn('using the development JWT_SECRET / TOPUP_SECRET: set both outside local runs');
const readiness = new Readiness();

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
  // WebSocket clients are told to reconnect (to another replica) when the grace period ends.
  drainHttpServer(server, readiness, { graceMs: config.DRAIN_GRACE_MS, timeoutMs: config.DRAIN_TIMEOUT_MS, onGraceEnd: () => bff.stream.close() })
    .then(async (clean) => {
      if (!clean) log.warn('drain deadline passed; closed the connections still open');
      await bff.close();
      await tracing.shutdown();
      log.info({ ms: Date.now() - started, clean }, 'drained');
      process.exit(0);
    })
    .catch((err: unknown) => {
      log.error({ err }, 'drain failed');
      process.exit(1);
    });
}

let bff: Bff;
let server: Awaited<ReturnType<typeof listen>>;
try {
  bff = await createBff(config, log, readiness);
  server = await listen(bff.handler, config.HOST, config.PORT);
  bff.stream.attach(server);
} catch (err) {
  log.error({ err }, 'start-up failed');
  // Settings found unworkable only once connected (NATS_REPLICAS on a standalone server): EX_CONFIG, as the services do.
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(EXIT_CONFIG);
  }
  process.exit(1);
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
log.info({ port: boundPort(server), metricsPort: bff.metricsPort }, `bff serving on ${config.HOST}:${boundPort(server)}`);
