/**
 * gRPC spans and trace context in gRPC metadata (W3C `traceparent`/`tracestate` keys), at the two
 * places every call passes: the channel's interceptor on the client side, and the host's handler
 * wrapper on the server side. The server side wraps handlers rather than using a server
 * interceptor because the handler is what must run inside the span's context: an interceptor's
 * callbacks and the handler are called from different events, and the active span would not
 * reach the handler's awaits.
 */
import { InterceptingCall, Metadata, status as Code, type Interceptor, type ServerUnaryCall, type ServerWritableStream, type ServiceDefinition, type UntypedServiceImplementation, type handleServerStreamingCall, type handleUnaryCall, type sendUnaryData, type StatusObject } from '@grpc/grpc-js';
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, tracer, unsampled, type Span } from './tracing.js';

const metadataSetter = { set: (md: Metadata, key: string, value: string) => md.set(key, value) };
const metadataGetter = {
  keys: (md: Metadata) => Object.keys(md.getMap()),
  get: (md: Metadata, key: string) => {
    const v = md.get(key);
    return v.length === 0 ? undefined : v.map(String);
  },
};

/** `rpc.*` attributes from a method path "/pkg.Service/Method". */
function rpcAttributes(path: string) {
  const [, service = '', method = ''] = path.split('/');
  return { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': method };
}

/** The semantic conventions count only the server's own failures as a server span's error. */
const SERVER_ERRORS: ReadonlySet<number> = new Set([Code.UNKNOWN, Code.DEADLINE_EXCEEDED, Code.UNIMPLEMENTED, Code.INTERNAL, Code.UNAVAILABLE, Code.DATA_LOSS]);

function endWithStatus(span: Span, code: number, details: string | undefined, server: boolean): void {
  span.setAttribute('rpc.grpc.status_code', code);
  const isError = server ? SERVER_ERRORS.has(code) : code !== (Code.OK as number);
  if (isError) span.setStatus({ code: SpanStatusCode.ERROR, message: `${Code[code] ?? code}: ${details ?? ''}` });
  span.end();
}

/**
 * A client span per call, its context injected into the call's metadata. Installed on every mesh
 * channel (kit/clients.ts) when tracing is on.
 */
export const traceClientInterceptor: Interceptor = (options, nextCall) => {
  const active = context.active();
  const current = trace.getSpan(active);
  if (current && !current.isRecording()) {
    // Inside an unsampled trace: no span of our own, only the context passed on, so the callee
    // follows the same decision.
    return new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        propagation.inject(active, metadata, metadataSetter);
        next(metadata, listener);
      },
    });
  }
  const path = options.method_definition.path;
  const span = tracer().startSpan(path.slice(1), { kind: SpanKind.CLIENT, attributes: rpcAttributes(path) });
  const ctx = trace.setSpan(active, span);
  return new InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      propagation.inject(ctx, metadata, metadataSetter);
      next(metadata, {
        onReceiveStatus(status: StatusObject, nextStatus) {
          endWithStatus(span, status.code, status.details, false);
          nextStatus(status);
        },
      });
    },
  });
};

/**
 * The service's handlers, each run inside a server span whose parent is the context the caller
 * sent in the metadata. Unary and server-streaming handlers only (the mesh has no other kind).
 */
export function traceHandlers(definition: ServiceDefinition, implementation: UntypedServiceImplementation): UntypedServiceImplementation {
  const wrapped: UntypedServiceImplementation = {};
  for (const [key, handler] of Object.entries(implementation)) {
    const method = definition[key];
    if (!method || method.requestStream) {
      wrapped[key] = handler;
      continue;
    }
    const path = method.path;
    const attributes = rpcAttributes(path);
    const begin = (metadata: Metadata) => {
      const parent = propagation.extract(ROOT_CONTEXT, metadata, metadataGetter);
      // A caller's trace that was not sampled: its context is passed on, no span is made.
      if (unsampled(parent)) return { ctx: parent };
      const span = tracer().startSpan(path.slice(1), { kind: SpanKind.SERVER, attributes }, parent);
      return { span, ctx: trace.setSpan(parent, span) };
    };
    if (method.responseStream) {
      const h = handler as handleServerStreamingCall<unknown, unknown>;
      wrapped[key] = (call: ServerWritableStream<unknown, unknown>) => {
        const { span, ctx } = begin(call.metadata);
        if (!span) return context.with(ctx, () => h(call));
        let ended = false;
        const end = (code: number, details?: string) => {
          if (ended) return;
          ended = true;
          endWithStatus(span, code, details, true);
        };
        call.once('finish', () => end(Code.OK));
        call.once('cancelled', () => end(Code.CANCELLED));
        call.once('error', (err: { code?: number; details?: string; message?: string }) => end(err.code ?? Code.UNKNOWN, err.details ?? err.message));
        context.with(ctx, () => h(call));
      };
    } else {
      const h = handler as handleUnaryCall<unknown, unknown>;
      wrapped[key] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
        const { span, ctx } = begin(call.metadata);
        if (!span) return context.with(ctx, () => h(call, callback));
        context.with(ctx, () =>
          h(call, (err, value, trailer, flags) => {
            const e: { code?: number; details?: string; message?: string } | null | undefined = err;
            endWithStatus(span, e ? (e.code ?? Code.UNKNOWN) : Code.OK, e ? (e.details ?? e.message) : undefined, true);
            callback(err, value, trailer, flags);
          }),
        );
      };
    }
  }
  return wrapped;
}
