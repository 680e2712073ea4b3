/**
 * Business days. Income is counted per calendar day in one configured IANA time zone (UTC unless
 * the deployment says otherwise), and a transfer's day is fixed when it is recorded, so the
 * statistics and Reconcile never disagree about which day a transfer near midnight belongs to.
 */

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Throws on an unknown zone; used to validate configuration. */
export function checkTimeZone(zone: string): void {
  new Intl.DateTimeFormat('en-CA', { timeZone: zone });
}

/** YYYY-MM-DD of an instant in the zone. */
export function dayOf(at: Date, zone: string): string {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' });
    formatters.set(zone, f);
  }
  return f.format(at);
}

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Whether a string is a real calendar day in YYYY-MM-DD form. */
export function isDay(s: string): boolean {
  const m = DAY.exec(s);
  if (!m) return false;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.toISOString().slice(0, 10) === s;
}

/** Days from start to end inclusive; both must be valid and start <= end. */
export function daysBetween(start: string, end: string): string[] {
  const out: string[] = [];
  const d = new Date(`${start}T00:00:00Z`);
  const last = new Date(`${end}T00:00:00Z`).getTime();
  while (d.getTime() <= last) {
    out.push(d.toISOString().slice(0, 10));
    d.setUTCDate(d.getUTCDate() + 1);
  }
  return out;
}

/** Whole days from a to b (b - a). */
export function dayDiff(a: string, b: string): number {
  return Math.round((new Date(`${b}T00:00:00Z`).getTime() - new Date(`${a}T00:00:00Z`).getTime()) / 86_400_000);
}
