/**
 * OpenTelemetry for every livemesh process: one trace follows a request from the BFF through the
 * services, MySQL, Redis and JetStream into the consumers.
 *
 * Spans are made by hand at the kit's own wrappers (gRPC interceptors and handlers, the MySQL
 * pool, the Redis client, the JetStream consumer, the Express app) rather than by the
 * auto-instrumentations: those patch modules through require hooks, which do not see what an ES
 * module imports unless the process starts with a loader flag, and the kit's wrappers are where
 * every call already passes.
 *
 * Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set. Off, the
 * SDK is never even loaded, no interceptor or wrapper is installed (each install site asks
 * tracingOn()), and @opentelemetry/api's calls answer its no-op span. On, spans go out over
 * OTLP/HTTP in protobuf, batched, and the sampler is the standard one from OTEL_TRACES_SAMPLER and
 * OTEL_TRACES_SAMPLER_ARG (`parentbased_traceidratio` with a ratio is the production choice).
 */
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Attributes, type Context, type Span } from '@opentelemetry/api';

export { SpanKind, SpanStatusCode, ROOT_CONTEXT, context, trace, propagation, type Context, type Span, type Attributes };

const TRACER = 'livemesh';
let enabled = false;

/** Whether this process exports spans; install sites check it once, at construction. */
export const tracingOn = (): boolean => enabled;

/** The tracer every kit wrapper makes its spans with. */
export const tracer = () => trace.getTracer(TRACER);

export interface Tracing {
  /** Exports what is still buffered and stops; a no-op when tracing is off. */
  shutdown(): Promise<void>;
}

/** Whether the environment asks for traces to be exported. */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) && env.OTEL_SDK_DISABLED !== 'true';
}

/**
 * Starts the SDK for this process when the environment asks for it: W3C trace context as the
 * propagator, AsyncLocalStorage carrying the active span across awaits, and a batch processor in
 * front of the OTLP/HTTP exporter (the exporter reads the endpoint and headers from OTEL_* itself).
 * Call it before anything makes a client or a pool, so they see tracingOn().
 */
export async function startTracing(service: string, replica: string, env: NodeJS.ProcessEnv = process.env): Promise<Tracing> {
  if (!tracingRequested(env) || enabled) return { shutdown: () => Promise.resolve() };
  // Loaded only when on: a process that does not trace pays nothing for the SDK.
  const [{ BasicTracerProvider, BatchSpanProcessor }, { AsyncLocalStorageContextManager }, { W3CTraceContextPropagator }, { OTLPTraceExporter }, { resourceFromAttributes }] = await Promise.all([
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/context-async-hooks'),
    import('@opentelemetry/core'),
    import('@opentelemetry/exporter-trace-otlp-proto'),
    import('@opentelemetry/resources'),
  ]);
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME ?? service, 'service.namespace': 'livemesh', 'service.instance.id': replica }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  enabled = true;
  return {
    async shutdown() {
      await provider.shutdown().catch(() => undefined);
    },
  };
}

/** The active span's trace id for log lines, or nothing outside a valid span (pino's mixin). */
export function traceFields(): { trace_id?: string; span_id?: string } {
  if (!enabled) return {};
  const sc = trace.getActiveSpan()?.spanContext();
  return sc && trace.isSpanContextValid(sc) ? { trace_id: sc.traceId, span_id: sc.spanId } : {};
}

/**
 * Whether `ctx` belongs to a trace that was decided against (a valid span context whose sampled
 * flag is off). Work inside such a trace makes no span of its own and only passes the context on:
 * a parent-based sampler would decide against every child anyway, and 99 requests in 100 at a
 * 1% ratio are of this kind.
 */
export function unsampled(ctx: Context): boolean {
  const sc = trace.getSpanContext(ctx);
  return sc !== undefined && trace.isSpanContextValid(sc) && (sc.traceFlags & TraceFlags.SAMPLED) === 0;
}

/** Marks a span failed with the error's message and records it as an exception event. */
export function failSpan(span: Span, err: unknown): void {
  span.recordException(err instanceof Error ? err : String(err));
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}

/**
 * Runs `fn` inside a new span that is active for everything `fn` awaits, and ends it when `fn`
 * settles (failed if it throws). `parent` defaults to the active context.
 */
export async function inSpan<T>(name: string, opts: { kind?: SpanKind; attributes?: Attributes; parent?: Context }, fn: (span: Span) => Promise<T>): Promise<T> {
  const parent = opts.parent ?? context.active();
  if (unsampled(parent)) return context.with(parent, () => fn(trace.getSpan(parent)!));
  const span = tracer().startSpan(name, { kind: opts.kind ?? SpanKind.INTERNAL, ...(opts.attributes ? { attributes: opts.attributes } : {}) }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    failSpan(span, err);
    throw err;
  } finally {
    span.end();
  }
}

/**
 * The active context as a W3C `traceparent` value, for a carrier that outlives the call (the gift
 * outbox row); null when nothing is being traced or the trace is not sampled, so those rows
 * store nothing and their events travel without headers.
 */
export function currentTraceparent(ctx: Context = context.active()): string | null {
  if (!enabled || unsampled(ctx)) return null;
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier.traceparent ?? null;
}

/** The context a stored `traceparent` (and optional `tracestate`) describes; the root context when there is none. */
export function contextFromTraceparent(traceparent: string | null | undefined, tracestate?: string | null): Context {
  if (!traceparent) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, { traceparent, ...(tracestate ? { tracestate } : {}) });
}
