/**
 * One gRPC case: request bytes (valid-shaped, wild, mutated, truncated or plain random), the
 * caller's token in `authorization` metadata (a real one, none, or one of the many wrong kinds in
 * grpc-identity.ts) and a deadline (sometimes tiny, or a cancel mid-call).
 */
import { badIdentity, goodIdentity } from './grpc-identity.js';
import type { RpcCall, RpcTarget } from './grpc-target.js';
import { encodeMessage, mutateBytes } from './messages.js';
import type { Rng } from '../random.js';
import type { Known } from './values.js';

export type RpcCaseKind = 'sane' | 'wild' | 'mutated' | 'truncated' | 'bytes' | 'identity' | 'deadline';

export interface RpcCase extends RpcCall {
  kind: RpcCaseKind;
  /** Why the case's credential must be refused (UNAUTHENTICATED), when it must. */
  mustRefuse?: string;
}

/** The deadline an ordinary case gets: long enough that only a stuck server misses it. */
const NORMAL_DEADLINE_MS = 10_000;

export function rpcCase(target: RpcTarget, rng: Rng, known: Known): RpcCase {
  const kind = rng.weighted<RpcCaseKind>([
    [36, 'sane'],
    [22, 'wild'],
    [14, 'mutated'],
    [6, 'truncated'],
    [8, 'bytes'],
    [10, 'identity'],
    [6, 'deadline'],
  ]);
  const input = target.method.input;
  let bytes: Uint8Array;
  if (kind === 'wild') bytes = encodeMessage(input, rng, known, 'wild');
  else if (kind === 'mutated') bytes = mutateBytes(encodeMessage(input, rng, known, rng.chance(0.7) ? 'sane' : 'wild'), rng);
  else if (kind === 'truncated') {
    const whole = encodeMessage(input, rng, known, 'sane');
    bytes = whole.subarray(0, whole.length > 0 ? rng.int(0, whole.length - 1) : 0);
  } else if (kind === 'bytes') bytes = rng.bytes(rng.weighted<number>([[8, rng.int(1, 64)], [2, rng.int(65, 4096)], [1, rng.int(4097, 200_000)]]));
  else bytes = encodeMessage(input, rng, known, 'sane');

  const identity = kind === 'identity' ? badIdentity(rng, known, target.serviceName) : goodIdentity(rng, known);
  const c: RpcCase = { kind, bytes, metadata: identity.metadata, deadlineMs: NORMAL_DEADLINE_MS, ...(identity.refuse ? { mustRefuse: identity.refuse } : {}) };
  if (kind === 'deadline') {
    if (rng.chance(0.5)) c.deadlineMs = rng.int(1, 30);
    else c.cancelAfterMs = rng.int(0, 20);
  }
  // Server streams (Subscribe) run until the deadline; a short one keeps the case short.
  if (target.method.methodKind === 'server_streaming') c.deadlineMs = Math.min(c.deadlineMs, rng.int(20, 400));
  return c;
}
