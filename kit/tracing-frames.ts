/**
 * Spans for the WebSocket gateway's room frames: one span per frame written to a room's viewers,
 * the child of the trace of the first event in it that arrived with a trace context (core NATS
 * headers), linked to the others'. A frame whose events carry none starts a trace of its own,
 * which the sampler keeps or drops like any other root.
 */
import type { MsgHdrs } from '@nats-io/nats-core';
import { contextFromHeaders } from './tracing-nats.js';
import { context, ROOT_CONTEXT, SpanKind, trace, tracer, tracingOn, type Context } from './tracing.js';

const eventContexts = new WeakMap<object, Context>();

/** Remembers the trace context a room event arrived with (a no-op without one or without tracing). */
export function noteEventContext(event: object, headers: MsgHdrs | undefined): void {
  if (tracingOn() && headers?.has('traceparent')) eventContexts.set(event, contextFromHeaders(headers));
}

/** Runs `write` (the frame's writes to every viewer) inside the frame's send span. */
export function traceRoomFrame(frame: { type: string; events: readonly object[] }, viewers: ReadonlySet<{ roomId: string }>, write: () => void): void {
  if (!tracingOn()) return write();
  const traced = frame.events.flatMap((e) => {
    const ctx = eventContexts.get(e);
    return ctx ? [ctx] : [];
  });
  const parent = traced[0] ?? ROOT_CONTEXT;
  const links = traced.slice(1).flatMap((ctx) => {
    const sc = trace.getSpanContext(ctx);
    return sc ? [{ context: sc }] : [];
  });
  const first = viewers.values().next().value;
  const span = tracer().startSpan(
    'ws room frame send',
    { kind: SpanKind.PRODUCER, links, attributes: { 'livemesh.room_id': first?.roomId ?? '', 'livemesh.frame.type': frame.type, 'livemesh.frame.events': frame.events.length, 'livemesh.frame.viewers': viewers.size } },
    parent,
  );
  try {
    context.with(trace.setSpan(parent, span), write);
  } finally {
    span.end();
  }
}
