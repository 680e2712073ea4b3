import { describe, expect, it } from 'vitest';
import { Calendar } from '../services/ranking/calendar.js';

/**
 * The calendar keeps the last day and week it computed (every paid gift asks for them); the spans
 * it answers must be the ones a fresh computation gives, across midnights, ISO year ends and
 * daylight-saving days, in any order of instants.
 */
describe('Calendar', () => {
  it('answers every instant with the span a fresh calendar computes, whatever it answered before', () => {
    const instants: number[] = [];
    // Around a DST change in Berlin (29 March 2026, 23-hour day), the 2026/2027 ISO year end and
    // midnight in Shanghai, hour by hour, then the same instants shuffled.
    for (const start of [Date.UTC(2026, 2, 27), Date.UTC(2026, 11, 27), Date.UTC(2027, 0, 9)]) for (let h = 0; h < 24 * 5; h++) instants.push(start + h * 3_600_000 - 1);
    const shuffled = instants.map((t, i) => instants[(i * 7919) % instants.length]!);
    for (const zone of ['Europe/Berlin', 'Asia/Shanghai', 'UTC']) {
      const kept = new Calendar(zone);
      for (const t of [...instants, ...shuffled]) {
        const fresh = new Calendar(zone);
        expect(kept.day(t), `${zone} day of ${new Date(t).toISOString()}`).toEqual(fresh.day(t));
        expect(kept.week(new Date(t)), `${zone} week of ${new Date(t).toISOString()}`).toEqual(fresh.week(new Date(t)));
      }
    }
    const berlin = new Calendar('Europe/Berlin').day(Date.UTC(2026, 2, 29, 12));
    expect(berlin.end.getTime() - berlin.start.getTime()).toBe(23 * 3_600_000);
  });

  it('hands out copies: changing an answer does not change the next one', () => {
    const cal = new Calendar('UTC');
    const first = cal.day(Date.UTC(2026, 5, 1, 10));
    first.start.setTime(0);
    expect(cal.day(Date.UTC(2026, 5, 1, 11)).start.getTime()).toBe(Date.UTC(2026, 5, 1));
  });
});
