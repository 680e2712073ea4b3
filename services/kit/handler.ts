import type { handleUnaryCall, Metadata, ServerUnaryCall } from '@grpc/grpc-js';
import { toStatus } from './grpc-errors.js';
import { callerFrom, type Caller } from './identity.js';
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

function firstString(md: Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return typeof v === 'string' ? v : undefined;
}

/**
 * Adapts an async handler to grpc-js's callback style. Every failure, thrown or rejected, goes
 * through the kit's single normalizer, so no handler can leak an internal error or forget the
 * ErrorInfo.
 */
export function unary<Req, Res>(log: Logger, fn: (req: Req, ctx: CallContext) => Promise<Res>): handleUnaryCall<Req, Res> {
  return (call: ServerUnaryCall<Req, Res>, callback) => {
    const method = call.getPath();
    const abort = new AbortController();
    call.once('cancelled', () => abort.abort());
    let run: Promise<Res>;
    try {
      const ctx: CallContext = { caller: callerFrom((k) => firstString(call.metadata, k)), method, log, signal: abort.signal };
      run = fn(call.request, ctx);
    } catch (err) {
      run = Promise.reject(err);
    }
    run.then(
      (res) => callback(null, res),
      (err: unknown) => callback(toStatus(err, log, method)),
    );
  };
}
