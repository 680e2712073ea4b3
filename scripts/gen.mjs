#!/usr/bin/env node
// Generates TypeScript (ts-proto, grpc-js flavour) and the reflection descriptor set from proto/.
//
// Runs from `postinstall`, `build` and `pretest`, so a fresh clone needs no manual step.
// Third-party contracts we depend on (google.rpc status details, grpc health and reflection,
// the ORCA load report) are taken from packages already in node_modules rather than vendored,
// and copied into the git-ignored gen/third_party so buf can build them as a second module.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync, statSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const nm = join(root, 'node_modules');
const thirdParty = join(root, 'gen', 'third_party');

/** [source in node_modules, destination inside gen/third_party] */
const THIRD_PARTY = [
  ['google-proto-files/google/rpc/status.proto', 'google/rpc/status.proto'],
  ['google-proto-files/google/rpc/error_details.proto', 'google/rpc/error_details.proto'],
  ['google-proto-files/google/rpc/code.proto', 'google/rpc/code.proto'],
  ['grpc-health-check/proto/health/v1/health.proto', 'grpc/health/v1/health.proto'],
  ['@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto', 'grpc/reflection/v1/reflection.proto'],
  ['@grpc/reflection/build/proto/grpc/reflection/v1alpha/reflection.proto', 'grpc/reflection/v1alpha/reflection.proto'],
  ['@grpc/grpc-js/proto/xds/xds/data/orca/v3/orca_load_report.proto', 'xds/data/orca/v3/orca_load_report.proto'],
  ['@grpc/grpc-js/proto/protoc-gen-validate/validate/validate.proto', 'validate/validate.proto'],
];

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

rmSync(thirdParty, { recursive: true, force: true });
for (const [from, to] of THIRD_PARTY) {
  const src = join(nm, from);
  if (!existsSync(src)) {
    console.error(`gen: missing ${src}; run \`npm ci\` first`);
    process.exit(1);
  }
  mkdirSync(dirname(join(thirdParty, to)), { recursive: true });
  cpSync(src, join(thirdParty, to));
}

const buf = join(nm, '.bin', 'buf');
rmSync(join(root, 'gen', 'ts'), { recursive: true, force: true });
console.log('gen: buf generate (ts-proto) -> gen/ts');
run(buf, ['generate']);
console.log('gen: buf build -> gen/descriptor.binpb');
run(buf, ['build', '--as-file-descriptor-set', '-o', descriptor]);
