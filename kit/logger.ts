import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { traceFields, tracingOn } from './tracing.js';

export type { Logger };

/**
 * One JSON line per event on stdout, so `npm start` output, container logs and log shippers all
 * read the same thing. `service` and `replica` are bound once so every line can be attributed
 * when ten processes share one terminal.
 */
export function createLogger(opts: { service: string; replica: string; level: string }, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level: opts.level,
    base: { service: opts.service, replica: opts.replica },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    // The active trace's id on every line logged inside a span; not even asked for when tracing
    // is off (start tracing before making the logger).
    ...(tracingOn() ? { mixin: traceFields } : {}),
  };
  return destination ? pino(options, destination) : pino(options);
}
