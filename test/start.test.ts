import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentials, Metadata } from '@grpc/grpc-js';
import { HealthCheckResponse_ServingStatus as Serving, HealthClient } from '../gen/ts/grpc/health/v1/health.js';
import { fromRoot } from '../kit/paths.js';
import { isolate } from '../scripts/isolation.js';
import { answers } from '../scripts/net.js';

/**
 * `npm start` end to end: the built launcher (dist/scripts/start.js) on offset ports, so it runs
 * beside a developer's own mesh on the default ports. Infra was ensured by the global setup.
 */

// 11000–14300 in steps of 10: every gRPC and metrics port lands in 61051–65510, above the kernel's
// ephemeral range (32768–60999), so no outgoing connection or port-0 listener on this busy machine
// can be holding one of them; the BFF lands in 19080–22380.
const offset = 11_000 + Math.round(Math.random() * 330) * 10;
const roomPorts = [50051 + offset, 50151 + offset];
const bffPort = 8080 + offset;
const iso = isolate('start');

/** What the launcher should report as skipped, computed the same way: whatever dist/ lacks right now. */
const notBuilt = [
  ...['room', 'gift', 'ledger', 'chat', 'ranking'].filter((name) => !existsSync(fromRoot('dist', 'services', name, 'main.js'))),
  ...(existsSync(fromRoot('dist', 'bff', 'main.js')) ? [] : ['bff']),
];

let launcher: ChildProcess;
const output: string[] = [];
let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

function waitForLine(pattern: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no line matching ${pattern} within ${timeoutMs} ms; output:\n${output.join('\n')}`)), timeoutMs);
    const poll = setInterval(() => {
      const hit = output.find((l) => pattern.test(l));
      if (hit) done(undefined, hit);
    }, 50);
    void exited.then((how) => done(new Error(`launcher ended (${JSON.stringify(how)}) before ${pattern}; output:\n${output.join('\n')}`)));
    function done(err: Error | undefined, line?: string) {
      clearTimeout(timer);
      clearInterval(poll);
      if (err) reject(err);
      else resolve(line ?? '');
    }
  });
}

function healthStatus(port: number): Promise<Serving> {
  const client = new HealthClient(`127.0.0.1:${port}`, credentials.createInsecure());
  return new Promise<Serving>((resolve, reject) => {
    client.check({ service: '' }, new Metadata(), { deadline: Date.now() + 3_000 }, (err, res) => (err ? reject(err) : resolve(res.status)));
  }).finally(() => client.close());
}

describe('npm start (scripts/start.ts)', () => {
  beforeAll(async () => {
    launcher = spawn(process.execPath, [fromRoot('dist', 'scripts', 'start.js')], {
      env: { ...process.env, ...iso.env, LM_PORT_OFFSET: String(offset), LOG_LEVEL: 'info', LM_LOG: 'pretty', HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    exited = new Promise((resolve) => launcher.once('exit', (code, signal) => resolve({ code, signal })));
    let partial = '';
    const collect = (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      output.push(...lines);
    };
    launcher.stdout?.on('data', collect);
    launcher.stderr?.on('data', collect);
    await waitForLine(/^mesh up: \d+ processes \(Ctrl-C to stop\)$/, 40_000);
  }, 60_000);

  afterAll(async () => {
    // Only if a test failed before the SIGINT test: stop the mesh gracefully so no replica is left behind.
    if (launcher && launcher.exitCode === null && launcher.signalCode === null) {
      launcher.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20_000))]);
    }
    await iso.cleanup();
  }, 60_000);

  it('serves health on both Room replicas at their offset ports', async () => {
    for (const port of roomPorts) expect(await healthStatus(port)).toBe(Serving.SERVING);
    // Column widths follow the longest process name, which depends on what else is built.
    for (const [i, port] of roomPorts.entries()) {
      expect(output).toContainEqual(expect.stringMatching(new RegExp(`^ready  room-${i + 1} +grpc 127\\.0\\.0\\.1:${port} +metrics :${port + 1000}$`)));
    }
  });

  it('serves the BFF /healthz at its offset port', async () => {
    const res = await fetch(`http://127.0.0.1:${bffPort}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok', service: 'bff' });
    expect(output).toContainEqual(expect.stringMatching(new RegExp(`^ready  bff +http://127\\.0\\.0\\.1:${bffPort}$`)));
  });

  it('names the services that are not built yet, and condenses the children’s JSON logs', () => {
    const skippedLines = output.filter((l) => l.startsWith('not built yet: '));
    if (notBuilt.length === 0) expect(skippedLines).toEqual([]);
    else expect(skippedLines).toEqual([`not built yet: ${notBuilt.join(', ')}`]);
    expect(output).toContainEqual(expect.stringMatching(new RegExp(`^room-1 +\\| info  room serving on 127\\.0\\.0\\.1:${roomPorts[0]}$`)));
  });

  it('stops everything on SIGINT and exits 0', async () => {
    launcher.kill('SIGINT');
    const how = await Promise.race([exited, new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 20_000))]);
    expect(how).toEqual({ code: 0, signal: null });
    expect(output).toContain('stopped');
    const ports = [...roomPorts, ...roomPorts.map((p) => p + 1000), bffPort];
    expect(await Promise.all(ports.map((p) => answers(p)))).toEqual(ports.map(() => false));
  }, 30_000);
});
