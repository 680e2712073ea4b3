/**
 * Inputs that break parsers and validators, shared by the gRPC and HTTP generators, and the ids of
 * real data the mesh was seeded with (so a good share of cases reach the success paths instead of
 * stopping at NOT_FOUND).
 */
import type { Rng } from '../random.js';

/** Real records created before the run; generators draw ids from here by field name. */
export interface Known {
  /** Rooms that exist and are live. */
  liveRoomIds: string[];
  /** Rooms that exist but are not live. */
  idleRoomIds: string[];
  giftIds: string[];
  giftGroupIds: string[];
  /** Users with COIN to spend. */
  viewers: string[];
  /** Streamers owning the seeded rooms. */
  streamers: string[];
  admins: string[];
  /** Gift orders the seeding created. */
  orderIds: string[];
  /** Ledger transfers the seeding created (top-ups and gifts). */
  transferIds: string[];
  /** Field names of the services' messages, for field masks. */
  fieldNames: string[];
}

export const INT64_MAX = 9223372036854775807n;
export const INT64_MIN = -9223372036854775808n;
export const UINT64_MAX = 18446744073709551615n;

const WORDS = ['night', 'songs', 'live', 'gift', 'rocket', 'hello', 'music', 'talk', 'games', 'dance', 'coffee', 'rain'];

/** Strings chosen for what they do to code, not for looking random. */
const NASTY = [
  '',
  ' ',
  '\t\n',
  '0',
  '-1',
  '9223372036854775807',
  '9223372036854775808',
  '-9223372036854775809',
  '18446744073709551616',
  '1e309',
  'NaN',
  'Infinity',
  '0x7fffffff',
  '00000000000000000000001',
  'null',
  'undefined',
  'true',
  '[]',
  '{}',
  '__proto__',
  'constructor',
  'toString',
  "' OR '1'='1",
  '"; DROP TABLE rooms; --',
  '%s%s%s%n',
  '${7*7}',
  '../../../../etc/passwd',
  '\u0000',
  'a\u0000b',
  '\u202egnirts desrever',
  '\u200b\u200c\u200d\ufeff',
  'e\u0301\u0301\u0301\u0301',
  '👩‍👩‍👧‍👦🎁🚀',
  '\ud83d',
  '\udc00\ud800',
  '𝕃𝕚𝕧𝕖',
  'ﷺ',
  '\r\n\r\nHTTP/1.1 200 OK',
  '*',
  'room.changed.>',
  'gift.paid.*',
  '{lm}',
  'ÿ',
];

/** A short, plausible word or title. */
export function word(rng: Rng): string {
  return rng.pick(WORDS);
}

export function title(rng: Rng): string {
  const n = rng.int(1, 4);
  return Array.from({ length: n }, () => word(rng)).join(' ');
}

/** A random key in the shape idempotency keys take (`[A-Za-z0-9._:-]`). */
export function key(rng: Rng, min = 8, max = 40): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-';
  const n = rng.int(min, max);
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[rng.int(0, alphabet.length - 1)];
  return s;
}

/** Random code points from every plane, surrogates included (lone ones make invalid UTF-16). */
function codePoints(rng: Rng, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) {
    const cp = rng.weighted<number>([
      [4, rng.int(0x20, 0x7e)],
      [1, rng.int(0, 0x1f)],
      [2, rng.int(0x80, 0x7ff)],
      [2, rng.int(0x800, 0xffff)],
      [1, rng.int(0x10000, 0x10ffff)],
    ]);
    s += cp >= 0xd800 && cp <= 0xdfff ? String.fromCharCode(cp) : String.fromCodePoint(cp);
  }
  return s;
}

/** A string meant to break things: empty, huge, unicode, numeric edge cases, injection-shaped. */
export function wildString(rng: Rng): string {
  return rng.weighted<() => string>([
    [6, () => rng.pick(NASTY)],
    [3, () => codePoints(rng, rng.length(300))],
    [2, () => key(rng, 1, 80)],
    [1, () => 'x'.repeat(rng.pick([65, 101, 201, 257, 513, 1025, 4097]))],
    [1, () => rng.pick(WORDS).repeat(rng.int(1000, 30_000))],
    [1, () => String(wildBigInt(rng))],
  ])();
}

/** int64 values at and around every boundary, plus the seeded ids. */
export function wildBigInt(rng: Rng, known?: Known): bigint {
  return rng.weighted<() => bigint>([
    [3, () => BigInt(rng.pick([0, 1, -1, 2, 255, 256, 65535, 2147483647, 2147483648, 4294967295, 4294967296]))],
    [2, () => rng.pick([INT64_MAX, INT64_MIN, INT64_MAX - 1n, INT64_MIN + 1n, 9007199254740991n, 9007199254740993n, -9007199254740993n])],
    [2, () => BigInt(rng.int(-1000, 1_000_000))],
    [1, () => BigInt.asIntN(64, (BigInt(rng.int(0, 0xffffffff)) << 32n) | BigInt(rng.int(0, 0xffffffff)))],
    [2, () => (known ? BigInt(rng.pick(allIds(known))) : 1n)],
  ])();
}

export function wildInt32(rng: Rng): number {
  return rng.weighted<() => number>([
    [3, () => rng.pick([0, 1, -1, 2, 100, 101, 1000, 1001, 9999, 10000, 2147483647, -2147483648])],
    [2, () => rng.int(-1000, 100_000)],
    [1, () => rng.int(-2147483648, 2147483647)],
  ])();
}

export function wildDouble(rng: Rng): number {
  return rng.pick([0, -0, 1, -1, 0.5, 1e-300, 1e300, Number.MAX_VALUE, Number.MIN_VALUE, Number.NaN, Infinity, -Infinity, rng.next() * 1e6]);
}

export function allIds(known: Known): string[] {
  return [...known.liveRoomIds, ...known.idleRoomIds, ...known.giftIds, ...known.viewers, ...known.streamers, ...known.orderIds];
}

/** Days around today, as YYYY-MM-DD (income and reconcile queries). */
export function day(rng: Rng): string {
  const d = new Date(Date.now() + rng.int(-3, 1) * 86_400_000);
  return d.toISOString().slice(0, 10);
}

export function wildDay(rng: Rng): string {
  return rng.pick(['2026-02-30', '0000-00-00', '9999-12-31', '1970-01-01', '2026-13-01', '2026-1-1', '20261121', day(rng), wildString(rng)]);
}
