#!/usr/bin/env node
// Checks proto/ for breaking changes against another git ref (default: main).
//
// Needs nothing generated: the third-party protos are committed in proto/vendor, so this works
// from a plain clone before `npm ci` has produced gen/. The other ref's proto/ and buf.yaml are
// exported to a temp dir and compared as a second workspace against the working tree. A ref from
// before the vendored folder (its buf.yaml names the git-ignored gen/third_party, which only
// existed after `npm run gen`) is given this tree's buf.yaml and proto/vendor instead, so the
// contracts can still be compared against it.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ref = process.argv[2] ?? process.env.BUF_AGAINST_REF ?? 'main';
const buf = join(root, 'node_modules', '.bin', 'buf');
const vendor = join(root, 'proto', 'vendor');

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
if (!existsSync(buf)) {
  console.error('breaking: node_modules/.bin/buf is missing; run `npm ci` first');
  process.exit(1);
}

const tmp = mkdtempSync(join(tmpdir(), 'lm-breaking-'));
try {
  const archive = git(['archive', '--format=tar', ref, 'proto', 'buf.yaml'], { encoding: 'buffer' });
  if (archive.status !== 0) throw new Error(`git archive ${ref} failed: ${archive.stderr}`);
  const untar = spawnSync('tar', ['-x', '-C', tmp], { input: archive.stdout });
  if (untar.status !== 0) throw new Error(`tar failed: ${untar.stderr}`);
  // The older layout: a module at gen/third_party, filled by scripts/gen.mjs from node_modules.
  // buf applies this tree's breaking.ignore (proto/vendor) to the other side by path, so the
  // upstream files must sit at the same place there: that ref gets this tree's buf.yaml and
  // vendored folder (its own buf.yaml differs only in where they were; the rules compared are
  // always this tree's).
  if (/^\s*-\s*path:\s*gen\/third_party\s*$/m.test(readFileSync(join(tmp, 'buf.yaml'), 'utf8'))) {
    cpSync(join(root, 'buf.yaml'), join(tmp, 'buf.yaml'));
    cpSync(vendor, join(tmp, 'proto', 'vendor'), { recursive: true });
  }
  const res = spawnSync(buf, ['breaking', '--against', tmp], { cwd: root, stdio: 'inherit' });
  if (res.status === 0) console.log(`breaking: no breaking changes against ${ref}`);
  process.exitCode = res.status ?? 1;
} catch (err) {
  console.error(`breaking: ${err.message}`);
  process.exitCode = 1;
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
