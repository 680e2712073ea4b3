/**
 * `npm run bench:kit`: what the service kit costs per unary call.
 *
 * Three servers, each in its own child process (so client and server never share an event loop),
 * driven one after the other from this process over one grpc-js channel with a fixed number of
 * calls in flight:
 *
 *   A. a bare grpc-js server, no interceptors, Health/Check answering SERVING (the baseline);
 *   B. the same Health/Check through a kit ServiceHost with its default configuration
 *      (observe interceptor: lm-load header and trailer, ORCA trailer, call metrics);
 *   C. the real Room process answering GetRoom for a room created first (served from its local
 *      cache), for scale, on its own database, Redis prefix and NATS prefix, removed afterwards.
 *
 * For each: warm up, then measure calls/s, p50/p99 latency, errors and the server's CPU time per
 * call (from /proc/<pid>/stat). A benchmark, not a timed test: it prints numbers, it does not
 * pass or fail on them.
 *
 * Flags: --seconds N (measured window, default 5), --concurrency N (calls in flight, default 32),
 * --warmup N (seconds, default 1).
 */
import { join } from 'node:path';
import { credentials, Metadata } from '@grpc/grpc-js';
import { HealthClient } from '../../gen/ts/grpc/health/v1/health.js';
import { RoomServiceClient } from '../../gen/ts/livemesh/room/v1/room.js';
import { fromRoot, repoRoot } from '../../services/kit/paths.js';
import { ensureInfra, InfraError, infraUrlsFromEnv, type InfraHandle } from '../infra.js';
import { isolate } from '../isolation.js';
import { CLK_TCK, formatK, interruptible, machineLine, measure, parseArgs, runBench, say, setBenchTag, startServer, stopServer, type Fire, type Row } from './harness.js';

setBenchTag('kit');

// ---------------------------------------------------------------------------------------------
// The three servers

const healthFire = (client: HealthClient): Fire => {
  const request = { service: '' };
  return (done) => void client.check(request, (err) => done(err));
};

async function benchHealth(step: string, label: string, script: string, env: Record<string, string>, opts: Parameters<typeof measure>[4], signal: AbortSignal): Promise<Row> {
  say(`${step} ${label}: starting ${script.slice(repoRoot().length + 1)}`);
  const server = await startServer(label, script, env, true, signal);
  const client = new HealthClient(server.address, credentials.createInsecure());
  try {
    return await measure(step, label, server, healthFire(client), opts, signal);
  } finally {
    client.close();
    await stopServer(server);
  }
}

async function benchRoom(step: string, label: string, opts: Parameters<typeof measure>[4], signal: AbortSignal): Promise<Row> {
  const iso = isolate('bench', 'livemesh_bench');
  const { database, redisPrefix } = iso;
  const script = fromRoot('dist', 'services', 'room', 'main.js');
  say(`${step} ${label}: starting dist/services/room/main.js (database ${database}, Redis prefix ${redisPrefix})`);
  try {
    const server = await startServer(
      label,
      script,
      {
        ...iso.env,
        METRICS_PORT: '0',
        LOG_LEVEL: 'info',
      },
      false,
      signal,
    );
    const client = new RoomServiceClient(server.address, credentials.createInsecure());
    try {
      const md = new Metadata();
      md.set('lm-user-id', '424242');
      md.set('lm-role', 'streamer');
      const created = await new Promise<string>((resolve, reject) =>
        client.createRoom(
          { streamerId: '0', title: 'bench room', category: 'music', coverKey: 'covers/bench.jpg', notice: 'benchmark', requestId: `bench-${iso.id}` },
          md,
          (err, res) => (err ? reject(err) : res.room ? resolve(res.room.roomId) : reject(new Error('CreateRoom returned no room'))),
        ),
      );
      const request = { roomId: created, readMask: undefined };
      // One call first, so a broken setup fails loudly instead of benchmarking errors.
      await new Promise<void>((resolve, reject) => client.getRoom(request, (err) => (err ? reject(err) : resolve())));
      say(`${step} ${label}: room ${created} created; GetRoom answers`);
      return await measure(step, label, server, (done) => void client.getRoom(request, (err) => done(err)), opts, signal);
    } finally {
      client.close();
      await stopServer(server);
    }
  } finally {
    try {
      const keys = await iso.cleanup();
      say(`cleanup: dropped database ${database} and ${keys} Redis key(s) under ${redisPrefix}`);
    } catch (err) {
      say(`cleanup FAILED for database ${database} / Redis prefix ${redisPrefix}: ${(err as Error).message}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Report

function table(rows: Row[], opts: { seconds: number; concurrency: number; warmup: number }): string {
  const base = rows[0];
  const out = [
    '| server | calls/s | p50 ms | p99 ms | server CPU µs/call | vs bare |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    if (r.skipped) {
      out.push(`| ${r.label} | skipped: ${r.skipped} | | | | |`);
      continue;
    }
    const ratio = base && !base.skipped ? `${(r.callsPerSec / base.callsPerSec).toFixed(2)}×` : 'n/a';
    out.push(
      `| ${r.label} | ${Math.round(r.callsPerSec).toLocaleString('en-US')} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${Math.round(r.serverCpuUsPerCall)} | ${ratio} |`,
    );
  }
  const notes = rows
    .filter((r) => !r.skipped)
    .map(
      (r) =>
        `${r.label}: errors ${r.errors}${r.errors ? ` (${r.errorKinds})` : ''}, server busy ${(r.serverCpuShare * 100).toFixed(0)}% of a core, ` +
        `client CPU ${Math.round(r.clientCpuUsPerCall)} µs/call`,
    );
  return [
    `${opts.concurrency} calls in flight over one channel, ${opts.warmup}s warm-up, ${opts.seconds}s measured; server CPU from /proc/<pid>/stat (CLK_TCK ${CLK_TCK}).`,
    '',
    ...out,
    '',
    ...notes.map((n) => `- ${n}`),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const abort = interruptible();

  const root = repoRoot();
  const machine = machineLine();
  say(machine);
  say(`plan: 3 servers, each ${opts.warmup}s warm-up + ${opts.seconds}s at ${opts.concurrency} calls in flight`);

  let infra: InfraHandle | undefined;
  let infraProblem: string | undefined;
  try {
    infra = await ensureInfra(infraUrlsFromEnv(), { dataDir: join(root, '.data'), log: (line) => say(line) });
  } catch (err) {
    if (!(err instanceof InfraError)) throw err;
    infraProblem = err.message;
    say(`Room run will be skipped: ${err.message}`);
  }

  const rows: Row[] = [];
  try {
    rows.push(await benchHealth('[1/3]', 'bare grpc-js (Health/Check)', fromRoot('dist', 'scripts', 'bench', 'bare-server.js'), {}, opts, abort.signal));
    rows.push(
      await benchHealth('[2/3]', 'kit host (Health/Check)', fromRoot('dist', 'scripts', 'bench', 'kit-server.js'), { METRICS_PORT: '0', LOG_LEVEL: 'info' }, opts, abort.signal),
    );
    if (infraProblem) rows.push({ label: 'Room GetRoom (local-cache hit)', skipped: 'MariaDB/Redis/NATS not available', callsPerSec: 0, p50: 0, p99: 0, serverCpuUsPerCall: 0, clientCpuUsPerCall: 0, serverCpuShare: 0, errors: 0, errorKinds: '' });
    else rows.push(await benchRoom('[3/3]', 'Room GetRoom (local-cache hit)', opts, abort.signal));
  } finally {
    await infra?.stop();
  }

  process.stdout.write(`\n${machine}\n${table(rows, opts)}\n`);
  return 0;
}

runBench(main);
