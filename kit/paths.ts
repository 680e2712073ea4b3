import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/**
 * The repository root, found by walking up to package.json. Code runs both from sources (vitest)
 * and from dist/ (npm start), at different depths, and non-TypeScript assets (SQL migrations, the
 * descriptor set) are not copied into dist/, so they are always located from the root.
 */
export function repoRoot(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the livemesh repository root (no package.json above the code)');
    dir = parent;
  }
  return (cached = dir);
}

export function fromRoot(...parts: string[]): string {
  return join(repoRoot(), ...parts);
}
