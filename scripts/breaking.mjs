#!/usr/bin/env node
// Checks proto/ for breaking changes against another git ref (default: main).
//
// buf's own `.git#branch=main` input cannot see gen/third_party (git-ignored, produced by
// scripts/gen.mjs), so the other ref's protos are exported to a temp dir, given the same
// third-party files, and compared as a second workspace against the working tree.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ref = process.argv[2] ?? process.env.BUF_AGAINST_REF ?? 'main';
const buf = join(root, 'node_modules', '.bin', 'buf');

function git(args, opts = {}) {
  return spawnSync('git', args, { cwd: root, encoding: 'utf8', ...opts });
}

if (git(['rev-parse', '--verify', '--quiet', `${ref}^{commit}`]).status !== 0) {
  console.log(`breaking: no git ref ${ref} here; nothing to compare against`);
  process.exit(0);
}
if (git(['cat-file', '-e', `${ref}:proto`]).status !== 0) {
  console.log(`breaking: ${ref} has no proto/ yet; nothing to compare against`);
  process.exit(0);
}
if (!existsSync(join(root, 'gen', 'third_party'))) {
  console.error('breaking: gen/third_party is missing; run `npm run gen` first');
  process.exit(1);
}

const tmp = mkdtempSync(join(tmpdir(), 'lm-breaking-'));
try {
  const archive = git(['archive', '--format=tar', ref, 'proto', 'buf.yaml'], { encoding: 'buffer' });
  if (archive.status !== 0) throw new Error(`git archive ${ref} failed: ${archive.stderr}`);
  const untar = spawnSync('tar', ['-x', '-C', tmp], { input: archive.stdout });
  if (untar.status !== 0) throw new Error(`tar failed: ${untar.stderr}`);
  cpSync(join(root, 'gen', 'third_party'), join(tmp, 'gen', 'third_party'), { recursive: true });
  const res = spawnSync(buf, ['breaking', '--against', tmp], { cwd: root, stdio: 'inherit' });
  if (res.status === 0) console.log(`breaking: no breaking changes against ${ref}`);
  process.exitCode = res.status ?? 1;
} catch (err) {
  console.error(`breaking: ${err.message}`);
  process.exitCode = 1;
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
