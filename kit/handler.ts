import type { handleUnaryCall, ServerUnaryCall } from '@grpc/grpc-js';
import { toStatus } from './grpc-errors.js';
import type { Caller } from './identity.js';
import type { Logger } from './logger.js';

/** What a handler knows about its call beyond the request message. */
export interface CallContext {
  /** The caller's identity, if the request carried one. */
  caller: Caller | undefined;
  /** Full method path, for logs. */
  method: string;
  log: Logger;
  /** Aborted when the client cancels or the deadline passes, so handlers can stop early. */
  signal: AbortSignal;
}

/** Where the host leaves the verified caller on a call object; a symbol, so no request data can set it. */
const CALLER = Symbol('livemesh.caller');

/** Records the caller the host verified for `call` (ServiceHost does this before any handler runs). */
export function setCallerOf(call: object, caller: Caller | undefined): void {
  if (caller) (call as { [CALLER]?: Caller })[CALLER] = caller;
}

/** The verified caller of a call, or undefined for an anonymous one. */
export function callerOf(call: object): Caller | undefined {
  return (call as { [CALLER]?: Caller })[CALLER];
}

/**
 * Adapts an async handler to grpc-js's callback style. Every failure, thrown or rejected, goes
 * through the kit's single normalizer, so no handler can leak an internal error or forget the
 * ErrorInfo.
 */
export function unary<Req, Res>(log: Logger, fn: (req: Req, ctx: CallContext) => Promise<Res>): handleUnaryCall<Req, Res> {
  return (call: ServerUnaryCall<Req, Res>, callback) => {
    const method = call.getPath();
    // The AbortController is made only if the handler asks for the signal: grpc-js reports most
    // finished calls as "cancelled" when their stream closes, and building an AbortSignal plus an
    // abort DOMException per call was a measurable share of a cache-hit read's CPU.
    let abort: AbortController | undefined;
    let state: 'running' | 'cancelled' | 'done' = 'running';
    call.once('cancelled', () => {
      if (state !== 'running') return;
      state = 'cancelled';
      abort?.abort();
    });
    let run: Promise<Res>;
    try {
      const ctx: CallContext = {
        caller: callerOf(call),
        method,
        log,
        get signal() {
          if (!abort) {
            abort = new AbortController();
            if (state === 'cancelled') abort.abort();
          }
          return abort.signal;
        },
      };
      run = fn(call.request, ctx);
    } catch (err) {
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- passes on what the handler threw, unchanged, for toStatus to normalise
      run = Promise.reject(err);
    }
    run.then(
      (res) => {
        state = 'done';
        callback(null, res);
      },
      (err: unknown) => {
        state = 'done';
        callback(toStatus(err, log, method));
      },
    );
  };
}
