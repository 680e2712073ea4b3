/**
 * One gRPC case: request bytes (valid-shaped, wild, mutated, truncated or plain random), the
 * caller identity in metadata (right, missing or garbage) and a deadline (sometimes tiny, or a
 * cancel mid-call).
 */
import { ROLE_KEY, USER_ID_KEY, USER_NAME_KEY } from '../../services/kit/identity.js';
import type { RpcCall, RpcTarget } from './grpc-target.js';
import { encodeMessage, mutateBytes } from './messages.js';
import type { Rng } from './rng.js';
import { wildString, type Known } from './values.js';

export type RpcCaseKind = 'sane' | 'wild' | 'mutated' | 'truncated' | 'bytes' | 'identity' | 'deadline';

export interface RpcCase extends RpcCall {
  kind: RpcCaseKind;
}

/** The deadline an ordinary case gets: long enough that only a stuck server misses it. */
export const NORMAL_DEADLINE_MS = 10_000;

export function rpcCase(target: RpcTarget, rng: Rng, known: Known): RpcCase {
  const kind = rng.weighted<RpcCaseKind>([
    [36, 'sane'],
    [22, 'wild'],
    [14, 'mutated'],
    [6, 'truncated'],
    [8, 'bytes'],
    [8, 'identity'],
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

  const metadata = kind === 'identity' ? badIdentity(rng) : goodIdentity(rng, known);
  const c: RpcCase = { kind, bytes, metadata, deadlineMs: NORMAL_DEADLINE_MS };
  if (kind === 'deadline') {
    if (rng.chance(0.5)) c.deadlineMs = rng.int(1, 30);
    else c.cancelAfterMs = rng.int(0, 20);
  }
  // Server streams (Subscribe) run until the deadline; a short one keeps the case short.
  if (target.method.methodKind === 'server_streaming') c.deadlineMs = Math.min(c.deadlineMs, rng.int(20, 400));
  return c;
}

/** A real caller most of the time: admins, streamers and viewers from the seeded data. */
function goodIdentity(rng: Rng, known: Known): Array<[string, string]> {
  const who = rng.weighted<'none' | 'viewer' | 'streamer' | 'admin'>([
    [1, 'none'],
    [4, 'viewer'],
    [2, 'streamer'],
    [3, 'admin'],
  ]);
  if (who === 'none') return [];
  const id = rng.pick(who === 'viewer' ? known.viewers : who === 'streamer' ? known.streamers : known.admins);
  const md: Array<[string, string]> = [
    [USER_ID_KEY, id],
    [ROLE_KEY, who],
  ];
  if (rng.chance(0.3)) md.push([USER_NAME_KEY, rng.pick(['fan', 'streamer one', 'x'.repeat(200), ''])]);
  return md;
}

/** Identity metadata that is present but wrong in every way grpc-js lets a client send. */
function badIdentity(rng: Rng): Array<[string, string | Buffer]> {
  const id = rng.pick(['', '0', '-1', 'abc', '1.5', ' 1', '9223372036854775808', '99999999999999999999', '0x10', '1001,1002']);
  const role = rng.pick(['', 'root', 'ADMIN', 'viewer ', 'admin,viewer', 'Streamer']);
  return rng.weighted<Array<[string, string | Buffer]>>([
    [3, [[USER_ID_KEY, id], [ROLE_KEY, 'viewer']]],
    [2, [[USER_ID_KEY, '1001'], [ROLE_KEY, role]]],
    [1, [[USER_ID_KEY, '1001']]],
    [1, [[ROLE_KEY, 'admin']]],
    [1, [[USER_ID_KEY, '1001'], [USER_ID_KEY, '1'], [ROLE_KEY, 'viewer'], [ROLE_KEY, 'admin']]],
    [1, [[`${USER_ID_KEY}-bin`, Buffer.from([0xff, 0, 1])], [ROLE_KEY, 'admin']]],
    [1, [[USER_ID_KEY, '1001'], [ROLE_KEY, 'viewer'], [USER_NAME_KEY, wildString(rng).replace(/[^\x20-\x7e]/g, '?').slice(0, 8000)]]],
  ]);
}
