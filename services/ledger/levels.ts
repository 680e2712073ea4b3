/**
 * Viewer levels from EXP. A fixed, quadratic table: level L (1..MAX_LEVEL) starts at
 * 100 * (L-1)^2 + 1 EXP, so level 1 is the first EXP point, level 2 needs 101, level 10 needs
 * 8,101 and the top level 960,401. Quadratic so early levels come quickly and later ones take
 * real engagement; fixed in code so every replica and every client agree without a lookup.
 */
const MAX_LEVEL = 99;

export interface Level {
  level: number;
  exp: bigint;
  levelStart: bigint;
  /** 0 at the maximum level. */
  nextLevelStart: bigint;
}

const startOf = (level: number): bigint => (level <= 0 ? 0n : 100n * BigInt(level - 1) ** 2n + 1n);

export function levelOf(exp: bigint): Level {
  if (exp <= 0n) return { level: 0, exp: exp < 0n ? 0n : exp, levelStart: 0n, nextLevelStart: startOf(1) };
  let level = 1;
  while (level < MAX_LEVEL && exp >= startOf(level + 1)) level++;
  return { level, exp, levelStart: startOf(level), nextLevelStart: level === MAX_LEVEL ? 0n : startOf(level + 1) };
}
