#!/usr/bin/env node
// Generates TypeScript (ts-proto, grpc-js flavour) and the reflection descriptor set from proto/.
//
// Runs from `postinstall`, `build` and `pretest`, so a fresh clone needs no manual step.
// Third-party contracts we depend on (google.rpc status details, grpc health and reflection,
// the ORCA load report) are vendored in proto/vendor, a second buf module (buf.yaml); refresh
// them with scripts/vendor-protos.mjs. Nothing outside proto/, buf.yaml and buf.gen.yaml is read.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, statSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const nm = join(root, 'node_modules');

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

function run(cmd, args) {
  const res = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (res.status !== 0) {
    console.error(`gen: ${cmd} ${args.join(' ')} failed (exit ${res.status ?? res.signal})`);
    process.exit(res.status ?? 1);
  }
}

const descriptor = join(root, 'gen', 'descriptor.binpb');
const inputs = [join(root, 'proto'), join(root, 'buf.yaml'), join(root, 'buf.gen.yaml')];
const inputMtime = Math.max(...inputs.map((p) => (statSync(p).isDirectory() ? newestMtime(p) : statSync(p).mtimeMs)));
if (!process.argv.includes('--force') && existsSync(descriptor) && statSync(descriptor).mtimeMs >= inputMtime) {
  console.log('gen: up to date (proto/ unchanged since last run)');
  process.exit(0);
}

// Earlier versions copied the third-party protos here; buf no longer reads this folder.
rmSync(join(root, 'gen', 'third_party'), { recursive: true, force: true });

const buf = join(nm, '.bin', 'buf');
rmSync(join(root, 'gen', 'ts'), { recursive: true, force: true });
console.log('gen: buf generate (ts-proto) -> gen/ts');
run(buf, ['generate']);
console.log('gen: buf build -> gen/descriptor.binpb');
run(buf, ['build', '--as-file-descriptor-set', '-o', descriptor]);
