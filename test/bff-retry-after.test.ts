/**
 * Retry-After on 429/503: from the upstream's own hint (ErrorInfo `retry_after_ms`, e.g. Chat's
 * rate limit and slow mode), rounded up to whole seconds with at most 1 s of jitter; the random
 * 2–6 s only when the upstream gave no hint.
 */
import { status as Code } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { fromGrpc, retryAfterFromHint } from '../bff/errors.js';
import { GrpcCallError, statusFor } from '../kit/grpc-errors.js';

function failure(code: Code, reason: string, metadata: Record<string, string> = {}): GrpcCallError {
  const s = statusFor(code, reason, `refused: ${reason}`, 'livemesh.chat', metadata);
  return new GrpcCallError(s.code, s.details, s.metadata);
}

describe('Retry-After', () => {
  it("follows Chat's retry_after_ms: 1,910 ms is 2 s, plus at most 1 s of jitter", () => {
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const err = fromGrpc(failure(Code.RESOURCE_EXHAUSTED, 'RATE_LIMITED', { retry_after_ms: '1910' }), 'chat');
      expect(err.status).toBe(429);
      seen.add(err.retryAfterS ?? -1);
    }
    expect([...seen].sort()).toEqual([2, 3]);
  });

  it('rounds up and never says less than the hint (slow mode: 29,001 ms is 30–31 s)', () => {
    expect(retryAfterFromHint('29001', () => 0)).toBe(30);
    expect(retryAfterFromHint('29001', () => 0.999)).toBe(31);
    expect(retryAfterFromHint('30000', () => 0)).toBe(30);
    expect(retryAfterFromHint('1', () => 0)).toBe(1);
    expect(retryAfterFromHint('0', () => 0)).toBe(1);
    const err = fromGrpc(failure(Code.RESOURCE_EXHAUSTED, 'SLOW_MODE', { retry_after_ms: '29001' }), 'chat');
    expect([30, 31]).toContain(err.retryAfterS);
  });

  it('ignores a hint that is not a number of milliseconds, and falls back to 2–6 s without one', () => {
    expect(retryAfterFromHint(undefined)).toBeUndefined();
    expect(retryAfterFromHint('soon')).toBeUndefined();
    expect(retryAfterFromHint('-5')).toBeUndefined();
    for (const md of [{}, { retry_after_ms: 'soon' }] as Array<Record<string, string>>) {
      const err = fromGrpc(failure(Code.UNAVAILABLE, 'DEPENDENCY_UNAVAILABLE', md), 'chat');
      expect(err.status).toBe(503);
      expect(err.retryAfterS).toBeGreaterThanOrEqual(2);
      expect(err.retryAfterS).toBeLessThanOrEqual(6);
    }
    expect(fromGrpc(failure(Code.FAILED_PRECONDITION, 'ROOM_NOT_LIVE', { retry_after_ms: '1000' }), 'gift').retryAfterS).toBeUndefined();
  });
});
