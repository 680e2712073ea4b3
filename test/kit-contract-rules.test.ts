import { describe, expect, it } from 'vitest';
import { matchRoomScreen, ROOM_SCREENS, roomCacheKeys } from '../bff/screens.js';
import { CONTROL_CHARS, CONTROL_OR_LINE_BREAK, durationToMs, msToDuration, stripControlChars } from '../kit/contract-rules.js';

describe('contract rules shared by the services and the BFF', () => {
  it('control characters: C0 and DEL everywhere; chat text also refuses C1 and line separators', () => {
    for (const s of ['a\u0000b', 'tab\there', 'del\u007f']) {
      expect(CONTROL_CHARS.test(s)).toBe(true);
      expect(CONTROL_OR_LINE_BREAK.test(s)).toBe(true);
    }
    for (const s of ['c1\u0085', 'ls\u2028', 'ps\u2029']) {
      expect(CONTROL_CHARS.test(s)).toBe(false);
      expect(CONTROL_OR_LINE_BREAK.test(s)).toBe(true);
    }
    expect(CONTROL_CHARS.test('🎤 plain name')).toBe(false);
    expect(stripControlChars('a\u0000b\nc\u007fd')).toBe('abcd');
  });

  it('durations ↔ milliseconds', () => {
    expect(msToDuration(0)).toEqual({ seconds: '0', nanos: 0 });
    expect(msToDuration(1500)).toEqual({ seconds: '1', nanos: 500_000_000 });
    expect(msToDuration(30_000)).toEqual({ seconds: '30', nanos: 0 });
    expect(durationToMs({ seconds: '2', nanos: 999_999 })).toBe(2000);
    expect(durationToMs({ seconds: '1', nanos: 500_000_000 })).toBe(1500);
    expect(durationToMs(msToDuration(123_456))).toBe(123_456);
  });
});

describe("the BFF's room screens, defined once", () => {
  it('the fast path recognises exactly the routes the router mounts, and reads the keys it caches', () => {
    expect(matchRoomScreen('/v1/rooms/42')).toEqual({ screen: ROOM_SCREENS.entry, roomId: '42' });
    expect(matchRoomScreen('/v1/rooms/42/gifts')).toEqual({ screen: ROOM_SCREENS.gifts, roomId: '42' });
    for (const path of ['/v1/rooms/0', '/v1/rooms/042', '/v1/rooms/42/ranking', '/v1/rooms/42?x=1', '/v1/rooms/42/', '/v1/rooms', '/v1/rooms/12345678901234567890']) {
      expect(matchRoomScreen(path)).toBeUndefined();
    }
    expect(roomCacheKeys('42')).toEqual(['room:42', 'gifts:42']);
    expect(ROOM_SCREENS.entry.cacheKey('42')).toBe('room:42');
  });
});
