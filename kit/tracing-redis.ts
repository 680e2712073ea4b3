/**
 * A client span for every ioredis command sent inside a trace, made where every command passes
 * (the client's sendCommand, which pipelines and MULTI blocks also call once per command). With
 * auto-pipelining, commands leave at the end of the tick in which the first one was issued, so a
 * command issued by another request in that same tick is recorded in the first one's trace.
 */
import type { RedisClient } from './redis.js';
import { context, failSpan, SpanKind, trace, tracer } from './tracing.js';

interface SentCommand {
  name: string;
  promise: Promise<unknown>;
}

/** Instruments one client in place and returns it (a Cluster client sends through the same method). */
export function traceRedis<C extends RedisClient>(redis: C, keyPrefix: string): C {
  const send = redis.sendCommand.bind(redis) as (command: SentCommand, ...rest: unknown[]) => unknown;
  (redis as unknown as { sendCommand: typeof send }).sendCommand = (command, ...rest) => {
    // Only inside a sampled trace (see tracing-mysql.ts).
    if (!trace.getSpan(context.active())?.isRecording()) return send(command, ...rest);
    const span = tracer().startSpan(`redis ${command.name}`, {
      kind: SpanKind.CLIENT,
      attributes: { 'db.system.name': 'redis', 'db.operation.name': command.name.toUpperCase(), 'livemesh.redis.key_prefix': keyPrefix },
    });
    command.promise.then(
      () => span.end(),
      (err: unknown) => {
        failSpan(span, err);
        span.end();
      },
    );
    return send(command, ...rest);
  };
  return redis;
}
