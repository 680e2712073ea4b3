import { describe, expect, it } from 'vitest';
import { HttpError } from '../bff/errors.js';
import { sendGiftBody } from '../bff/routes/rooms.js';
import { parseInput } from '../bff/validate.js';

/**
 * Found by `npm run fuzz`: an amount of 19 digits past int64 passed the BFF's check and failed
 * serializing the upstream request, which the client saw as a 502. It is a 400 naming the field.
 */
describe('minor amounts', () => {
  it('refuses an amount beyond int64 with a 400 naming it, and accepts int64 max', () => {
    let err: unknown;
    try {
      parseInput(sendGiftBody, { giftId: '1', expectedUnitPriceMinor: '9223372036854775808' }, 'body');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HttpError);
    expect((err as HttpError).status).toBe(400);
    expect((err as HttpError).body.error.field).toBe('expectedUnitPriceMinor');
    expect(parseInput(sendGiftBody, { giftId: '1', expectedUnitPriceMinor: '9223372036854775807' }, 'body').expectedUnitPriceMinor).toBe('9223372036854775807');
  });

  // The range check above first shipped as a 500 for these: zod runs it even after the pattern failed.
  it.each(['2026-11-19', 'abc', '', '-1', '1e3'])('refuses %j with a 400, not a thrown BigInt error', (amount) => {
    expect(() => parseInput(sendGiftBody, { giftId: '1', expectedUnitPriceMinor: amount }, 'body')).toThrow(HttpError);
  });
});
