import { TZDate } from '@date-fns/tz';
import { addDays, addWeeks, format, startOfDay, startOfISOWeek } from 'date-fns';

/** One calendar period: its id in board keys, and its bounds. */
export interface Span {
  id: string;
  start: Date;
  end: Date;
}

/**
 * Days and ISO weeks (Monday first) in the business time zone. Built on date-fns and
 * @date-fns/tz because "midnight in Asia/Shanghai" and ISO week numbering at year ends are solved
 * problems with sharp edges (DST days of 23 or 25 hours, week 53).
 */
export class Calendar {
  constructor(readonly timeZone: string) {}

  day(at: Date | number): Span {
    const start = startOfDay(new TZDate(typeof at === 'number' ? at : at.getTime(), this.timeZone));
    return { id: format(start, 'yyyyMMdd'), start: new Date(start.getTime()), end: new Date(addDays(start, 1).getTime()) };
  }

  week(at: Date | number): Span {
    const start = startOfISOWeek(new TZDate(typeof at === 'number' ? at : at.getTime(), this.timeZone));
    return { id: format(start, "RRRR'W'II"), start: new Date(start.getTime()), end: new Date(addWeeks(start, 1).getTime()) };
  }

  /** The day named "YYYY-MM-DD" in this time zone, or undefined if it is not a real date. */
  parseDay(text: string): Span | undefined {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
    if (!m) return undefined;
    const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
    const local = new TZDate(y, mo - 1, d, this.timeZone);
    if (local.getFullYear() !== y || local.getMonth() !== mo - 1 || local.getDate() !== d) return undefined;
    return this.day(local.getTime());
  }
}

/** True if the runtime knows the IANA zone name (used to validate the setting at start). */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}
