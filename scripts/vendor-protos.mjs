#!/usr/bin/env node
// Refreshes proto/vendor/: the third-party contracts livemesh builds against (google.rpc status
// and error details, grpc health and reflection, the xDS ORCA load report and the validate
// options it imports), copied from the npm packages that ship them.
//
// They are committed, not copied at build time, so `buf lint`, `buf breaking` and `buf build`
// work from a plain clone with neither node_modules nor gen/. Run this after upgrading one of the
// packages below; `--check` (run by test/contracts.test.ts) fails when a vendored file no longer
// matches the installed package's copy, so an upgrade cannot leave the contract behind silently.
//
//   node scripts/vendor-protos.mjs           copy every file into proto/vendor/
//   node scripts/vendor-protos.mjs --check   compare only; exit 1 and name the files that differ
import { cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const nm = join(root, 'node_modules');
export const VENDOR_DIR = join(root, 'proto', 'vendor');

/** [npm package, file inside it, import path inside proto/vendor]; proto/vendor/README.md says the same for humans. */
export const VENDORED = [
  ['google-proto-files', 'google/rpc/status.proto', 'google/rpc/status.proto'],
  ['google-proto-files', 'google/rpc/error_details.proto', 'google/rpc/error_details.proto'],
  ['google-proto-files', 'google/rpc/code.proto', 'google/rpc/code.proto'],
  ['grpc-health-check', 'proto/health/v1/health.proto', 'grpc/health/v1/health.proto'],
  ['@grpc/reflection', 'build/proto/grpc/reflection/v1/reflection.proto', 'grpc/reflection/v1/reflection.proto'],
  ['@grpc/reflection', 'build/proto/grpc/reflection/v1alpha/reflection.proto', 'grpc/reflection/v1alpha/reflection.proto'],
  ['@grpc/grpc-js', 'proto/xds/xds/data/orca/v3/orca_load_report.proto', 'xds/data/orca/v3/orca_load_report.proto'],
  ['@grpc/grpc-js', 'proto/protoc-gen-validate/validate/validate.proto', 'validate/validate.proto'],
];

function main() {
  const check = process.argv.includes('--check');
  const differ = [];
  for (const [pkg, file, to] of VENDORED) {
    const src = join(nm, pkg, file);
    const dest = join(VENDOR_DIR, to);
    if (!existsSync(src)) {
      console.error(`vendor-protos: missing ${src}; run \`npm ci\` first`);
      process.exit(1);
    }
    if (check) {
      if (!existsSync(dest) || !readFileSync(src).equals(readFileSync(dest))) differ.push(`proto/vendor/${to} (from ${pkg}/${file})`);
      continue;
    }
    mkdirSync(dirname(dest), { recursive: true });
    cpSync(src, dest);
  }
  if (!check) {
    console.log(`vendor-protos: ${VENDORED.length} files copied into proto/vendor; update the versions in proto/vendor/README.md`);
    return;
  }
  if (differ.length > 0) {
    console.error(`vendor-protos: these vendored protos differ from the installed packages; run \`node scripts/vendor-protos.mjs\`:\n  ${differ.join('\n  ')}`);
    process.exit(1);
  }
  console.log('vendor-protos: proto/vendor matches the installed packages');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
