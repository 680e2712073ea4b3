/**
 * One more attempt for an idempotent unary call that its connection failed after the server had
 * begun to answer.
 *
 * grpc-js's retry policy (lbServiceConfig) stops retrying a call once response headers arrive:
 * the call is committed. A grpc-js server writes headers and message first and its trailers only
 * after that write completes, so a replica SIGKILLed in between leaves the caller with headers,
 * perhaps the answer, and then `UNAVAILABLE: Connection dropped` or `read ECONNRESET` — for a read
 * that any other replica would have served. Under load that window is milliseconds wide, and
 * lb-failover saw it fail idempotent reads about once in a few full test runs.
 *
 * For the methods the client treats as idempotent, this interceptor holds the answer until the
 * status, and when the status is UNAVAILABLE without the server's trailers (every livemesh answer
 * carries `lm-load`; a status without it came from the connection), after headers had arrived,
 * starts the call once more on the channel. By then the picker has taken the failed endpoint out
 * (EndpointStats' transport ejection), so the attempt goes to another replica. Calls that failed
 * before headers are left to grpc-js's own retries, so nothing is retried twice over.
 */
import { InterceptingCall, status as Status, type InterceptingListener, type Interceptor, type Metadata, type NextCall, type StatusObject } from '@grpc/grpc-js';
import { endedByConnection } from './load-report.js';

/** Extra attempts after a committed call's transport failure; one is enough to leave a dead replica. */
const COMMITTED_RETRIES = 1;

/** `paths` are full method paths (`/livemesh.room.v1.RoomService/GetRoom`) of idempotent unary methods. */
export function committedRetryInterceptor(paths: ReadonlySet<string>): Interceptor {
  return (options, nextCall) => {
    const method = options.method_definition;
    if (!paths.has(method.path) || method.requestStream || method.responseStream) return new InterceptingCall(nextCall(options));
    let request: unknown;
    let requestSent = false;
    let retriesLeft = COMMITTED_RETRIES;
    let cancelled = false;
    let retry: ReturnType<NextCall> | undefined;
    return new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        const original = metadata.clone();
        /** A listener for one attempt: holds headers and message until the attempt's status decides whether they are the answer. */
        const attempt = (): InterceptingListener => {
          let headers: Metadata | undefined;
          let message: unknown;
          let hasMessage = false;
          return {
            onReceiveMetadata: (md: Metadata) => {
              headers = md;
            },
            onReceiveMessage: (msg: unknown) => {
              message = msg;
              hasMessage = true;
            },
            onReceiveStatus: (status: StatusObject) => {
              if (headers !== undefined && endedByConnection(status.code, status.metadata) && retriesLeft > 0 && requestSent && !cancelled) {
                retriesLeft--;
                retry = nextCall(options);
                retry.start(original.clone(), attempt());
                retry.sendMessage(request);
                retry.halfClose();
                return;
              }
              if (headers !== undefined) listener.onReceiveMetadata(headers);
              if (hasMessage) listener.onReceiveMessage(message);
              listener.onReceiveStatus(status);
            },
          };
        };
        next(metadata, attempt());
      },
      sendMessage(message, next) {
        request = message;
        requestSent = true;
        next(message);
      },
      cancel(next) {
        cancelled = true;
        retry?.cancelWithStatus(Status.CANCELLED, 'Cancelled on client');
        next();
      },
    });
  };
}
