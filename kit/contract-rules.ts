/**
 * Contract rules more than one module checks: the services validate their requests with them, and
 * the BFF checks the same bounds before a call (so a user gets a 400 naming their JSON field
 * rather than a service's field path) and cuts names to what each service keeps. Defined once
 * here so the two sides cannot drift apart.
 */
import type { Duration } from '../gen/ts/google/protobuf/duration.js';

/** C0 controls and DEL: not allowed in names, titles, reasons and ids. */
export const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;
const CONTROL_CHARS_GLOBAL = new RegExp(CONTROL_CHARS.source, 'g');

/** C0 and C1 controls, DEL, and the line and paragraph separators: a chat line is one line. */
export const CONTROL_OR_LINE_BREAK = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** `s` without C0 control characters and DEL. */
export const stripControlChars = (s: string): string => s.replace(CONTROL_CHARS_GLOBAL, '');

/** Length in code points (what users count as characters; an emoji is one). */
export const chars = (s: string): number => [...s].length;

/**
 * Request bounds of the public contract, per service. Each service's LIMITS table takes these
 * (and adds its internal ones); the BFF reads them for its own checks.
 */
export const ROOM_CONTRACT = { title: 100, category: 32, coverKey: 200, notice: 200, requestId: 64, pageSize: 100 } as const;
export const GIFT_CONTRACT = { idempotencyKey: 64, senderName: 32, maxCount: 9999 } as const;
export const CHAT_CONTRACT = { text: 200, senderName: 20, clientMessageId: 64, likes: 1000 } as const;
export const RANKING_CONTRACT = { top: 100 } as const;
export const LEDGER_CONTRACT = { providerLength: 32 } as const;

/** A protobuf Duration as whole milliseconds (sub-millisecond nanos are dropped). */
export function durationToMs(d: Pick<Duration, 'seconds' | 'nanos'>): number {
  return Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6);
}

/** Milliseconds as a protobuf Duration. */
export function msToDuration(ms: number): Duration {
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
}
