/**
 * The tooling's one seeded pseudo-random generator, for the fuzzer, chaos schedules, the load
 * mixes (chaos, soak), benchmarks and tests: a run printed with `--seed S` produces the same
 * choices again (the same fuzz cases, fault order, rooms, users and gifts; timings still differ,
 * the machine decides those). The fuzzer gives each target its own stream (seed + target name),
 * so `--only` on one target replays exactly the cases the full run gave it.
 *
 * sfc32 seeded through cyrb128: four 32-bit words of state, fast, and good enough for test inputs
 * (not for anything secret). A small pure class rather than a dependency: the callers need
 * integers, picks and bytes, nothing a property-testing framework would add.
 */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /** Any text or number: the same seed gives the same sequence. */
  constructor(seed: string | number) {
    [this.a, this.b, this.c, this.d] = cyrb128(String(seed));
    for (let i = 0; i < 12; i++) this.next();
  }

  /** A float in [0, 1). An arrow property, so it can be passed on as a plain `() => number`. */
  readonly next = (): number => {
    this.a |= 0;
    this.b |= 0;
    this.c |= 0;
    this.d |= 0;
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  };

  /** An integer in [min, max], both inclusive. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /** Picks by weight: `[[3, 'a'], [1, 'b']]` gives 'a' three times as often. */
  weighted<T>(choices: ReadonlyArray<readonly [number, T]>): T {
    const total = choices.reduce((s, [w]) => s + w, 0);
    let r = this.next() * total;
    for (const [w, v] of choices) {
      r -= w;
      if (r < 0) return v;
    }
    return (choices[choices.length - 1] as readonly [number, T])[1];
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = (this.next() * 256) | 0;
    return out;
  }

  /** A length biased towards small values, with the occasional long one: most bugs need little input. */
  length(max: number): number {
    return this.weighted<number>([
      [5, 0],
      [40, this.int(1, Math.min(8, max))],
      [30, this.int(1, Math.min(64, max))],
      [5, Math.min(max, this.int(64, 4096))],
    ]);
  }

  /** An independent stream for a sub-task, reproducible from this one's seed and a label. */
  fork(label: string): Rng {
    return new Rng(`${this.int(0, 0xffffffff)}:${label}`);
  }
}

/** 128 bits of state from a string (cyrb128, public domain): seeds may be any text. */
function cyrb128(str: string): [number, number, number, number] {
  let h1 = 1779033703;
  let h2 = 3144134277;
  let h3 = 1013904242;
  let h4 = 2773480762;
  for (let i = 0; i < str.length; i++) {
    const k = str.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  return [(h1 ^ h2 ^ h3 ^ h4) >>> 0, (h2 ^ h1) >>> 0, (h3 ^ h1) >>> 0, (h4 ^ h1) >>> 0];
}
