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
  /**
   * The spans last computed: every paid gift asks for its day and week, nearly always the same
   * ones, and each computation costs several Intl time-zone lookups (a profile of bench:gift
   * showed them as half of Ranking's CPU). A span is a half-open interval, so an instant inside
   * it has that span whatever the zone's rules.
   */
  private lastDay: Span | undefined;
  private lastWeek: Span | undefined;

  constructor(readonly timeZone: string) {}

  day(at: Date | number): Span {
    const ms = typeof at === 'number' ? at : at.getTime();
    if (this.lastDay && contains(this.lastDay, ms)) return copy(this.lastDay);
    const start = startOfDay(new TZDate(ms, this.timeZone));
    this.lastDay = { id: format(start, 'yyyyMMdd'), start: new Date(start.getTime()), end: new Date(addDays(start, 1).getTime()) };
    return copy(this.lastDay);
  }

  week(at: Date | number): Span {
    const ms = typeof at === 'number' ? at : at.getTime();
    if (this.lastWeek && contains(this.lastWeek, ms)) return copy(this.lastWeek);
    const start = startOfISOWeek(new TZDate(ms, this.timeZone));
    this.lastWeek = { id: format(start, "RRRR'W'II"), start: new Date(start.getTime()), end: new Date(addWeeks(start, 1).getTime()) };
    return copy(this.lastWeek);
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

const contains = (span: Span, ms: number) => ms >= span.start.getTime() && ms < span.end.getTime();
/** Callers may keep or change what they get; the cached span stays as computed. */
const copy = (span: Span): Span => ({ id: span.id, start: new Date(span.start.getTime()), end: new Date(span.end.getTime()) });

/** True if the runtime knows the IANA zone name (used to validate the setting at start). */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}
