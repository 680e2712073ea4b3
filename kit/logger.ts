import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * One JSON line per event on stdout, so `npm start` output, container logs and log shippers all
 * read the same thing. `service` and `replica` are bound once so every line can be attributed
 * when ten processes share one terminal.
 */
export function createLogger(opts: { service: string; replica: string; level: string }): Logger {
  return pino({
    level: opts.level,
    base: { service: opts.service, replica: opts.replica },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}
