/**
 * Ports the WHATWG Fetch standard blocks ("bad ports"): browsers and Node's fetch() refuse them
 * whatever answers there, so the launcher never suggests an offset that puts a process on one.
 * https://fetch.spec.whatwg.org/#port-blocking
 */
export const FETCH_BLOCKED_PORTS: ReadonlySet<number> = new Set([
  0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137,
  139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723,
  2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
]);

/** The ports of `ports` that fetch() and browsers refuse. */
export const fetchBlocked = (ports: readonly number[]): number[] => ports.filter((p) => FETCH_BLOCKED_PORTS.has(p));

/**
 * The offset to suggest when the ports at `current` are busy: the next multiple of 2000 that
 * keeps every port (given at `current`) below 65536 and off fetch's blocked list, wrapping round.
 */
export function suggestOffset(current: number, ports: readonly number[], maxOffset: number, step = 2000): number {
  const base = ports.map((p) => p - current);
  const candidates: number[] = [];
  for (let o = current + step; o <= maxOffset; o += step) candidates.push(o);
  for (let o = step; o < current && o <= maxOffset; o += step) candidates.push(o);
  return candidates.find((o) => fetchBlocked(base.map((p) => p + o)).length === 0) ?? step;
}
