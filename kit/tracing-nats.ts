/**
 * Trace context in NATS message headers (core NATS and JetStream alike: both carry `traceparent`
 * and `tracestate` as headers), producer spans where a message leaves and consumer spans where a
 * handler works on one. Every helper costs nothing but a boolean check when tracing is off.
 *
 * Only sampled traces travel: a message published outside one carries no headers, and a consumer
 * makes spans only for a message that carries a context. Unlike a gRPC call, a message has no
 * caller waiting whose decision must be respected, and at a 1% ratio this spares 99 messages in
 * 100 the headers' encoding and every consumer's decoding (bench:gift E measured it).
 */
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/nats-core';
import { context, contextFromTraceparent, failSpan, inSpan, propagation, ROOT_CONTEXT, SpanKind, trace, tracer, tracingOn, unsampled, type Attributes, type Context } from './tracing.js';

const headerSetter = { set: (h: MsgHdrs, key: string, value: string) => h.set(key, value) };
const headerGetter = {
  keys: (h: MsgHdrs | undefined) => (h ? h.keys() : []),
  get: (h: MsgHdrs | undefined, key: string) => (h?.has(key) ? h.get(key) : undefined),
};

/**
 * Headers carrying `ctx` (the active context by default), to pass as a publish's `headers`; undefined
 * when tracing is off or nothing is being traced, so untraced messages stay header-free.
 */
export function traceHeaders(ctx: Context = context.active(), into?: MsgHdrs): MsgHdrs | undefined {
  if (!tracingOn() || unsampled(ctx)) return into;
  const h = into ?? natsHeaders();
  propagation.inject(ctx, h, headerSetter);
  return h.has('traceparent') ? h : into;
}

/** The context a received message's headers carry; the root context when they carry none. */
export function contextFromHeaders(h: MsgHdrs | undefined): Context {
  return h ? propagation.extract(ROOT_CONTEXT, h, headerGetter) : ROOT_CONTEXT;
}

/**
 * Publishes inside a producer span whose parent is the stored `traceparent` (the outbox row's:
 * the request that paid the order), the span's context riding along in the message's headers.
 * Without tracing, or without a stored context, it just publishes.
 */
export function publishFromStored<T>(traceparent: string | null | undefined, subject: string, publish: (headers: MsgHdrs | undefined) => Promise<T>): Promise<T> {
  if (!tracingOn() || !traceparent) return publish(undefined);
  return inSpan(`${subject} publish`, { kind: SpanKind.PRODUCER, parent: contextFromTraceparent(traceparent), attributes: { 'messaging.system': 'nats', 'messaging.operation.type': 'send', 'messaging.destination.name': subject } }, () =>
    publish(traceHeaders()),
  );
}

/**
 * Runs a consumer's handling of one message inside a consumer span, a child of the context its
 * headers carry; just runs it when tracing is off or the message carries no context.
 */
export function consumeInSpan<T>(destination: string, group: string, h: MsgHdrs | undefined, attributes: () => Attributes | undefined, handle: () => Promise<T>): Promise<T> {
  if (!tracingOn() || !h?.has('traceparent')) return handle();
  return inSpan(`${destination} process`, {
    kind: SpanKind.CONSUMER,
    parent: contextFromHeaders(h),
    attributes: { 'messaging.system': 'nats', 'messaging.operation.type': 'process', 'messaging.destination.name': destination, 'messaging.consumer.group.name': group, ...attributes() },
  }, handle);
}

/**
 * Runs a core NATS subscriber's handling of one message inside a consumer span when the message
 * carries a trace context; a message without one is handled as it is (no trace of its own per message).
 */
export function receiveInSpan(msg: { subject: string; headers?: MsgHdrs }, handle: () => void): void {
  if (!tracingOn() || !msg.headers?.has('traceparent')) return handle();
  const parent = contextFromHeaders(msg.headers);
  if (unsampled(parent)) return context.with(parent, handle);
  const span = tracer().startSpan(`${msg.subject} process`, { kind: SpanKind.CONSUMER, attributes: { 'messaging.system': 'nats', 'messaging.operation.type': 'process', 'messaging.destination.name': msg.subject } }, parent);
  try {
    context.with(trace.setSpan(parent, span), handle);
  } catch (err) {
    failSpan(span, err);
    throw err;
  } finally {
    span.end();
  }
}
