/**
 * Tools a few tests need beyond Node and the infrastructure: Debian's Chromium, Debian's Python with
 * Google's grpcio, kubectl, nats-server (for a cluster of its own). `.ci/deps` installs the Debian ones where they are missing.
 *
 * Where a tool is missing, the tests that need it fail under CI=true (CI must run every test), with
 * the package to install in the message; elsewhere they are skipped, with one line saying which
 * package to install. Each lookup honours an environment variable naming the executable (LM_CHROMIUM,
 * LM_PYTHON, LM_KUBECTL, LM_NATS_SERVER), e.g. to use another build, or `LM_CHROMIUM=/nonexistent` to see what a
 * machine without it does.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { findBinary } from '../../scripts/infra.js';

/** CI=true (or any value but empty, 0 and false), as CI systems set it. */
export const inCi = ((v) => v !== '' && v !== '0' && v !== 'false')((process.env.CI ?? '').toLowerCase());

export interface ToolGate {
  /** What the lookup found (the executable), or undefined. */
  found: string | undefined;
  /** Skip the tests that need it: only outside CI, when it is missing. */
  skip: boolean;
  /** Call first thing in those tests (or their beforeAll): returns the tool, or throws the install hint. */
  need(): string;
}

/**
 * `found` is the tool, or undefined with `why` saying what is missing; `install` says what to
 * install (see `debian`). Prints the one line about it at once when it is missing.
 */
export function toolGate(opts: { test: string; what: string; found: string | undefined; why: string; install: string }): ToolGate {
  const { test, what, found, why, install } = opts;
  const hint = `${why}; ${install}`;
  if (found === undefined) {
    const file = basename(test).replace(/\.ts$/, '');
    process.stderr.write(
      inCi ? `${file}: FAILING ${what} under CI=true: ${hint}\n` : `${file}: SKIPPING ${what}: ${hint}\n`,
    );
  }
  return {
    found,
    skip: found === undefined && !inCi,
    need() {
      if (found === undefined) throw new Error(`${what} cannot run: ${hint}. Under CI=true a missing tool fails the test instead of skipping it.`);
      return found;
    },
  };
}

/** The install hint for Debian packages. */
export function debian(packages: string): string {
  return `install Debian's ${packages.includes(' ') ? 'packages' : 'package'}: apt-get install ${packages} (or run \`bash .ci/deps\` as root)`;
}

/** The executable an LM_* variable names, or the first of `paths` that exists. */
function executable(envVar: string, paths: string[]): { path: string | undefined; looked: string } {
  const override = process.env[envVar];
  if (override) return { path: existsSync(override) ? override : undefined, looked: `${override} (${envVar})` };
  return { path: paths.find((p) => existsSync(p)), looked: paths.join(' or ') };
}

/** Debian's Chromium, for playwright-core's executablePath. */
export function chromiumGate(test: string, what: string): ToolGate {
  const { path, looked } = executable('LM_CHROMIUM', ['/usr/bin/chromium', '/usr/bin/chromium-browser']);
  return toolGate({ test, what, found: path, why: `no Chromium at ${looked}`, install: debian('chromium') });
}

/**
 * nats-server, for tests that run servers of their own (a cluster) whatever answers at NATS_URL;
 * found where scripts/infra.ts finds it (PATH, then the sbin directories Debian installs it in).
 */
export function natsServerGate(test: string, what: string): ToolGate {
  const override = process.env.LM_NATS_SERVER;
  const found = override ? (existsSync(override) ? override : undefined) : findBinary('nats-server');
  const why = override ? `no nats-server at ${override} (LM_NATS_SERVER)` : 'nats-server is not on PATH nor in /usr/sbin';
  return toolGate({ test, what, found, why, install: debian('nats-server') });
}

/**
 * Flags for Chromium on this kind of machine: as root (no sandbox), with no GPU, and with nothing
 * that reaches out to the network by itself (the machine's network is closed, so those connections
 * fail, many at a time). playwright-core adds --headless and gives every launch a fresh temporary
 * --user-data-dir (it refuses one passed in args; launchPersistentContext takes one).
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Debian's Python with grpcio, grpc_tools and protobuf (the interpreter Debian's python3-grpcio is
 * built for: /usr/bin/python3, not whatever python3 comes first on PATH), and grpc-proto's
 * reflection protos, which the interop client compiles.
 */
export function pythonGrpcGate(test: string, what: string): ToolGate {
  const install = debian('python3-grpcio python3-grpc-tools python3-protobuf grpc-proto');
  const { path, looked } = executable('LM_PYTHON', ['/usr/bin/python3']);
  if (!path) return toolGate({ test, what, found: undefined, why: `no Python at ${looked}`, install });
  const imports = spawnSync(path, ['-c', 'import grpc, grpc_tools, google.protobuf'], { encoding: 'utf8' });
  if (imports.status !== 0) {
    const err = (imports.stderr || imports.error?.message || '').trim().split('\n').pop();
    return toolGate({ test, what, found: undefined, why: `${path} cannot import grpc, grpc_tools and google.protobuf (${err})`, install });
  }
  if (!existsSync('/usr/share/grpc-proto/grpc/reflection')) {
    return toolGate({ test, what, found: undefined, why: 'no reflection protos under /usr/share/grpc-proto', install });
  }
  return toolGate({ test, what, found: path, why: '', install });
}

/**
 * kubectl with a kustomize that renders deploy/k8s (`labels:` needs kustomize v4+). Not from Debian:
 * bookworm's kubernetes-client is kubectl 1.20, too old; this machine kind ships Google's `kubectl`.
 */
export function kubectlGate(test: string, what: string): ToolGate {
  const cmd = process.env.LM_KUBECTL || 'kubectl';
  const res = spawnSync(cmd, ['version', '--client'], { encoding: 'utf8' });
  const found = res.status === 0 ? cmd : undefined;
  return toolGate({
    test,
    what,
    found,
    why: `no working kubectl (\`${cmd} version --client\` ${res.error ? `failed: ${res.error.message}` : `exited ${res.status}`})`,
    install:
      "install kubectl with kustomize v4 or newer (this machine kind ships Google's `kubectl` package; " +
      "Debian bookworm's kubernetes-client, kubectl 1.20, is too old to render deploy/k8s)",
  });
}
