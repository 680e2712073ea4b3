/**
 * Request bytes that do not decode as the method's message are the caller's mistake, so they are
 * INVALID_ARGUMENT with an ErrorInfo like every other bad request. Left to grpc-js, a throwing
 * deserializer becomes INTERNAL ("Error deserializing request"), which pages someone for a
 * client's bug and counts against the replica in load reports and balancers.
 *
 * Two parts, because grpc-js decodes before any interceptor or handler sees the call: every
 * method's deserializer is wrapped so it returns a marker instead of throwing, and an interceptor
 * answers a call carrying that marker through the kit's normalizer, before any handler runs.
 */
import { ServerInterceptingCall, type Server, type ServerInterceptor, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { invalidField } from './domain-error.js';
import { toStatus } from './grpc-errors.js';
import type { Logger } from './logger.js';

/** What a wrapped deserializer returns for bytes the real one refused. */
class UndecodableRequest {
  constructor(readonly cause: string) {}
}

/** Wraps one service definition's request deserializers (exported for tests). */
function tolerantDecoding<D extends ServiceDefinition>(definition: D): D {
  const out: Record<string, unknown> = {};
  for (const [name, method] of Object.entries(definition)) {
    const decode = method.requestDeserialize;
    out[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          return decode(bytes);
        } catch (err) {
          return new UndecodableRequest(err instanceof Error ? err.message : String(err));
        }
      },
    };
  }
  return out as D;
}

/**
 * Makes every service later added to `server` decode tolerantly: the services' own, and health and
 * reflection, which the kit registers too. Done on the server so no registration can forget it.
 */
export function guardRequestDecoding(server: Server): void {
  const add = server.addService.bind(server);
  server.addService = (definition: ServiceDefinition, implementation: UntypedServiceImplementation) => add(tolerantDecoding(definition), implementation);
}

/** Answers calls whose request did not decode with INVALID_ARGUMENT (field `request`); the handler never runs. */
export function rejectUndecodableInterceptor(log: Logger): ServerInterceptor {
  return (method, call) => {
    let rejected = false;
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMessage: (message, proceed) => {
            if (!(message instanceof UndecodableRequest)) {
              proceed(message);
              return;
            }
            rejected = true;
            call.sendStatus(toStatus(invalidField('request', `the bytes do not decode as this method's request message (${message.cause})`), log, method.path));
          },
          // The call is already answered; a handler must not start on the half-close.
          onReceiveHalfClose: (proceed) => {
            if (!rejected) proceed();
          },
        }),
    });
  };
}
