/**
 * `npm run bench:kit`: what the service kit costs per unary call, and what proving the caller's
 * identity (a signed token) and mutual TLS add to it.
 *
 * Servers, each in its own child process (so client and server never share an event loop), driven
 * one after the other from this process over one grpc-js channel with a fixed number of calls in
 * flight:
 *
 *   1. a bare grpc-js server, no interceptors, Health/Check answering SERVING (the baseline);
 *   2. the same Health/Check through a kit ServiceHost with its default configuration
 *      (observe interceptor: lm-load header and trailer, ORCA trailer, call metrics);
 *   3. a kit host's Echo, registered as a service's RPCs are (the caller's token is verified
 *      before the handler runs):
 *        (a) without a token (an anonymous call),
 *        (b) with a user's token, the same on every call (after the first call the verifier's
 *            cache answers: what nearly every call in the mesh costs); target: (b) − (a) ≤ 15 µs
 *            of server CPU per call,
 *        (b) under mutual TLS: a second kit host with GRPC_TLS_DIR (development certificates,
 *            `npm run auth -- certs`, made if missing), the client presenting the operator's,
 *        (c) with a fresh token on every call (distinct names, so every call pays the signature
 *            check: the uncached cost, what a caller that never reuses tokens would cause);
 *      (a), (b) and (b) under TLS alternate in half-second slices (summed into one row each), so a
 *      difference of a few µs is not lost in the machine's changing background load;
 *   4. the real Room process answering GetRoom for a room created first (served from its local
 *      cache), for scale, on its own database, Redis prefix and NATS prefix, removed afterwards;
 *   5. the kit host's Echo (b) with OpenTelemetry off, on at 1% and on at 100% sampling (three
 *      hosts exporting to an OTLP/HTTP sink in this process), in alternating slices; target: ≤ 10%
 *      throughput cost at 1%.
 *
 * For each: warm up, then measure calls/s, p50/p99 latency, errors and the server's CPU time per
 * call (from /proc/<pid>/stat). A benchmark, not a timed test: it prints numbers and the targets
 * next to them, it does not pass or fail on them.
 *
 * Flags: --seconds N (measured window, default 5), --concurrency N (calls in flight, default 32),
 * --warmup N (seconds, default 1).
 */
import { join } from 'node:path';
import { credentials, Metadata, type ChannelCredentials, type ChannelOptions, type ServiceError } from '@grpc/grpc-js';
import { HealthClient } from '../../gen/ts/grpc/health/v1/health.js';
import { RoomServiceClient } from '../../gen/ts/livemesh/room/v1/room.js';
import { signJwt } from '../../kit/auth.js';
import { DEV_TLS_DIR } from '../../kit/config.js';
import { fromRoot, repoRoot } from '../../kit/paths.js';
import { bearer, devSigningKey, devUserToken, ensureDevCerts, ensureDevKeys, operatorChannel } from '../credentials.js';
import { ensureInfra, InfraError, infraUrlsFromEnv, type InfraHandle } from '../infra.js';
import { isolate } from '../isolation.js';
import { EchoClient } from './echo.js';
import { formatK, interruptible, machineLine, measure, measureInterleaved, parseArgs, runBench, say, setBenchTag, startServer, stopServer, type Fire, type Row, type Variant } from './harness.js';
import { CLK_TCK } from '../stats.js';
import { startOtlpSink, tracingEnv, TRACING_MODES } from './otlp-sink.js';

setBenchTag('kit');

// ---------------------------------------------------------------------------------------------
// The servers

/** A row with the target it is held to (or what it is compared with), printed beside it. */
type KitRow = Row & { target?: string };
type MeasureOpts = Parameters<typeof measure>[4];

const skippedRow = (label: string, why: string): KitRow => ({ label, skipped: why, callsPerSec: 0, p50: 0, p99: 0, serverCpuUsPerCall: 0, clientCpuUsPerCall: 0, serverCpuShare: 0, errors: 0, errorKinds: '' });

const healthFire = (client: HealthClient): Fire => {
  const request = { service: '' };
  return (done) => void client.check(request, (err) => done(err));
};

async function benchHealth(step: string, label: string, script: string, env: Record<string, string>, opts: MeasureOpts, signal: AbortSignal): Promise<Row> {
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

async function benchRoom(step: string, label: string, opts: MeasureOpts, signal: AbortSignal): Promise<Row> {
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
      const md = bearer(devUserToken('424242', 'streamer', 'bench', { audience: ['room'] }));
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
// Tokens and TLS: the kit host's Echo, registered as a service's RPCs are

/** Echo's request: a few bytes, so the call is all overhead. */
const ECHO_PAYLOAD = Buffer.alloc(32, 7);
const KIT_SERVER = () => fromRoot('dist', 'scripts', 'bench', 'kit-server.js');
/** The user the token rows call as, and the audience (the kit host's name) their tokens are for. */
const BENCH_USER = '424242';
const KIT_AUDIENCE = 'bench-kit';

interface EchoStub {
  echo(req: Buffer, cb: (err: ServiceError | null) => void): void;
  echo(req: Buffer, md: Metadata, cb: (err: ServiceError | null) => void): void;
  echo(req: Buffer, md: Metadata, options: { deadline: number }, cb: (err: ServiceError | null) => void): void;
  close(): void;
}

const echoClient = (address: string, creds: ChannelCredentials = credentials.createInsecure(), options: ChannelOptions = {}) =>
  new EchoClient(address, creds, options) as unknown as EchoStub;

/** One call first, so a broken setup (a refused token, a TLS mismatch) fails loudly instead of benchmarking errors. */
const echoOnce = (client: EchoStub, md: Metadata) => new Promise<void>((resolve, reject) => client.echo(ECHO_PAYLOAD, md, (err) => (err ? reject(err) : resolve())));

/**
 * Distinct user tokens as the BFF would mint them for the kit host (the same user, a different
 * name each, so each is a new token to verify), signed before the window so that signing them
 * (tens of µs each, client CPU) does not limit the calls/s measured; signed on the spot if the
 * window outruns the estimate.
 */
function freshTokens(count: number): { next(): string; signedLate(): number } {
  const key = devSigningKey('bff');
  let n = 0;
  const mint = () => {
    const iat = Math.floor(Date.now() / 1000);
    return signJwt({ kind: 'user', sub: BENCH_USER, role: 'streamer', name: `bench ${n++}`, aud: KIT_AUDIENCE, iat, exp: iat + 600 }, 'bff', key);
  };
  const pool = Array.from({ length: count }, mint);
  let used = 0;
  let late = 0;
  return {
    next: () => {
      if (used < pool.length) return pool[used++]!;
      late++;
      return mint();
    },
    signedLate: () => late,
  };
}

const signedUs = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(Math.round(x))}`;
const median = (xs: number[]) => {
  const s = [...xs].sort((p, q) => p - q);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const spread = (xs: number[]) => `median ${signedUs(median(xs))}, range ${signedUs(Math.min(...xs))} … ${signedUs(Math.max(...xs))} µs/call`;

/**
 * The token and TLS rows. Two kit hosts: one plaintext (named bench-kit), one with mutual TLS
 * (named room, with room's development certificate, demanding a client certificate; the client
 * presents the operator's and checks the server's for the name `room`, as a mesh client does
 * whatever address it dials). (a), (b) and (b) under TLS are measured in alternating half-second
 * slices, so that differences of a few µs are not lost in the machine's changing background load;
 * (c) follows on its own (it fills the verifier's cache with tokens that are never reused).
 */
async function benchTokens(step: string, opts: MeasureOpts, signal: AbortSignal): Promise<{ rows: KitRow[]; notes: string[] }> {
  const tlsLabel = 'kit host Echo (b) under mutual TLS';
  let tlsProblem: string | undefined;
  try {
    ensureDevCerts(DEV_TLS_DIR, { log: (line) => say(line) });
  } catch (err) {
    tlsProblem = (err as Error).message;
    say(`${step} the mutual TLS row is skipped: ${tlsProblem}`);
  }
  say(`${step} starting dist/scripts/bench/kit-server.js as ${KIT_AUDIENCE} (plaintext)${tlsProblem ? '' : ' and as room (GRPC_TLS_DIR)'}`);
  const kitEnv = { METRICS_PORT: '0', LOG_LEVEL: 'info' };
  const plainServer = await startServer('kit host Echo', KIT_SERVER(), { ...kitEnv, BENCH_KIT_SERVICE: KIT_AUDIENCE }, true, signal);
  const closers: Array<() => Promise<void> | void> = [() => stopServer(plainServer)];
  try {
    const plain = echoClient(plainServer.address);
    closers.unshift(() => plain.close());
    const md = bearer(devUserToken(BENCH_USER, 'streamer', 'bench', { audience: [KIT_AUDIENCE] }));
    await echoOnce(plain, md);
    const variants: Variant[] = [
      { label: 'kit host Echo (a) no token', server: plainServer, fire: (done) => void plain.echo(ECHO_PAYLOAD, (err) => done(err)) },
      { label: 'kit host Echo (b) user token, cached', server: plainServer, fire: (done) => void plain.echo(ECHO_PAYLOAD, md, (err) => done(err)) },
    ];
    if (!tlsProblem) {
      const service = 'room';
      const tlsDir = join(DEV_TLS_DIR, service);
      const channel = operatorChannel(service, join(DEV_TLS_DIR, 'operator'));
      const tlsServer = await startServer(tlsLabel, KIT_SERVER(), { ...kitEnv, BENCH_KIT_SERVICE: service, GRPC_TLS_DIR: tlsDir }, true, signal, undefined, channel);
      closers.push(() => stopServer(tlsServer));
      // A plaintext call must be refused, or the row would measure plaintext.
      const probe = echoClient(tlsServer.address);
      const refused = await new Promise<boolean>((resolve) => probe.echo(ECHO_PAYLOAD, new Metadata(), { deadline: Date.now() + 5000 }, (err) => resolve(err !== null)));
      probe.close();
      if (!refused) throw new Error(`${tlsLabel}: the server answered a plaintext call; GRPC_TLS_DIR was not applied`);
      const tls = echoClient(tlsServer.address, channel.credentials, channel.options);
      closers.unshift(() => tls.close());
      const tlsMd = bearer(devUserToken(BENCH_USER, 'streamer', 'bench', { audience: [service] }));
      await echoOnce(tls, tlsMd);
      say(`${step} ${tlsLabel}: server ${tlsServer.address} (certificate ${tlsDir}), client certificate ${join(DEV_TLS_DIR, 'operator')}`);
      variants.push({ label: tlsLabel, server: tlsServer, fire: (done) => void tls.echo(ECHO_PAYLOAD, tlsMd, (err) => done(err)) });
    }
    const { rows, deltas } = await measureInterleaved(step, variants, opts, signal);
    const [a, b, t] = rows as [Row, Row, Row | undefined];

    // (c): upper bound on its calls is (a)'s rate over the warm-up and the window, with a margin.
    const estimate = Math.min(300_000, Math.ceil(a.callsPerSec * (opts.warmup + opts.seconds) * 1.15) + 1000);
    say(`${step}(c) signing ${formatK(estimate)} distinct tokens before the window`);
    const tokens = freshTokens(estimate);
    await echoOnce(plain, bearer(tokens.next()));
    const c = await measure(`${step}(c)`, 'kit host Echo (c) fresh token per call', plainServer, (done) => void plain.echo(ECHO_PAYLOAD, bearer(tokens.next()), (err) => done(err)), opts, signal);
    if (tokens.signedLate() > 0) say(`${step}(c) note: ${tokens.signedLate()} tokens were signed during the calls (the estimate was short)`);

    const bOver = b.serverCpuUsPerCall - a.serverCpuUsPerCall;
    const out: KitRow[] = [
      { ...a, target: 'baseline for (b), (c)' },
      { ...b, target: `(b) − (a) ≤ +15 µs/call: ${signedUs(bOver)} µs — ${bOver <= 15 ? 'met' : 'NOT met'}` },
      { ...c, target: `none (uncached verify): ${signedUs(c.serverCpuUsPerCall - a.serverCpuUsPerCall)} µs/call over (a)` },
    ];
    const notes = [`(b) − (a) per slice pair: ${spread(deltas[1]!)}`];
    if (t) {
      out.push({ ...t, target: `none (for scale): ${signedUs(t.serverCpuUsPerCall - b.serverCpuUsPerCall)} µs/call, ${(t.callsPerSec / b.callsPerSec).toFixed(2)}× calls/s vs (b)` });
      notes.push(`(b) under TLS − (b) per slice pair: ${spread(deltas[2]!.map((x, k) => x - deltas[1]![k]!))}`);
    } else out.push(skippedRow(tlsLabel, tlsProblem ?? 'no certificates'));
    return { rows: out, notes };
  } finally {
    for (const close of closers) await close();
  }
}

// ---------------------------------------------------------------------------------------------
// Tracing: the same Echo with OpenTelemetry off, on at 1% and on at 100%

/**
 * Three kit hosts, identical but for their OTEL_* environment: tracing off (no endpoint: the SDK
 * is not even loaded), and on with parent-based ratio sampling at 1% and at 100%, exporting over
 * OTLP/HTTP to a sink in this process. The calls carry no trace context, so each server span is a
 * root the sampler decides on. Measured in alternating slices like the token rows, so the three
 * see the same background load. Target: ≤ 10% throughput cost at 1%.
 */
async function benchTracing(step: string, opts: MeasureOpts, signal: AbortSignal): Promise<{ rows: KitRow[]; notes: string[] }> {
  const sink = await startOtlpSink();
  const closers: Array<() => Promise<void> | void> = [() => sink.close()];
  try {
    const md = bearer(devUserToken(BENCH_USER, 'streamer', 'bench', { audience: [KIT_AUDIENCE] }));
    const variants: Variant[] = [];
    for (const mode of TRACING_MODES) {
      const label = `kit host Echo (b), ${mode.label}`;
      say(`${step} ${label}: starting dist/scripts/bench/kit-server.js${mode.ratio === undefined ? '' : ` exporting to ${sink.url}`}`);
      const server = await startServer(label, KIT_SERVER(), { METRICS_PORT: '0', LOG_LEVEL: 'info', BENCH_KIT_SERVICE: KIT_AUDIENCE, ...tracingEnv(sink.url, mode.ratio) }, true, signal);
      closers.push(() => stopServer(server));
      const client = echoClient(server.address);
      closers.unshift(() => client.close());
      await echoOnce(client, md);
      variants.push({ label, server, fire: (done) => void client.echo(ECHO_PAYLOAD, md, (err) => done(err)) });
    }
    sink.take();
    const { rows } = await measureInterleaved(step, variants, opts, signal);
    // Let the 100% host's last batch go out before counting.
    await new Promise((resolve) => setTimeout(resolve, 5500));
    const exported = sink.take();
    const [off, one, all] = rows as [Row, Row, Row];
    const cost = (r: Row) => 1 - r.callsPerSec / off.callsPerSec;
    const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
    return {
      rows: [
        { ...off, target: 'baseline for the tracing rows' },
        { ...one, target: `≤ 10% throughput cost at 1%: ${pct(cost(one))} (${signedUs(one.serverCpuUsPerCall - off.serverCpuUsPerCall)} µs/call) — ${cost(one) <= 0.1 ? 'met' : 'NOT met'}` },
        { ...all, target: `none (every call exported): ${pct(cost(all))} (${signedUs(all.serverCpuUsPerCall - off.serverCpuUsPerCall)} µs/call)` },
      ],
      notes: [`tracing rows: the sink received ${exported.requests} OTLP export requests, ${formatK(exported.bytes)} bytes, over the warm-ups and the window`],
    };
  } finally {
    for (const close of closers) await close();
  }
}

// ---------------------------------------------------------------------------------------------
// Report

function table(rows: KitRow[], opts: { seconds: number; concurrency: number; warmup: number }, extraNotes: string[]): string {
  const base = rows[0];
  const out = [
    '| server | calls/s | p50 ms | p99 ms | server CPU µs/call | vs bare | target |',
    '|---|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of rows) {
    if (r.skipped) {
      out.push(`| ${r.label} | skipped: ${r.skipped} | | | | | |`);
      continue;
    }
    const ratio = base && !base.skipped ? `${(r.callsPerSec / base.callsPerSec).toFixed(2)}×` : 'n/a';
    out.push(
      `| ${r.label} | ${Math.round(r.callsPerSec).toLocaleString('en-US')} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${Math.round(r.serverCpuUsPerCall)} | ${ratio} | ${r.target ?? ''} |`,
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
    ...extraNotes.map((n) => `- ${n}`),
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
  say(`plan: 5 steps (10 rows), each row ${opts.warmup}s warm-up + ${opts.seconds}s at ${opts.concurrency} calls in flight ((a), (b) and (b) under TLS in alternating slices; tracing off, 1% and 100% likewise)`);
  ensureDevKeys(undefined, (line) => say(line));

  let infra: InfraHandle | undefined;
  let infraProblem: string | undefined;
  try {
    infra = await ensureInfra(infraUrlsFromEnv(), { dataDir: join(root, '.data'), log: (line) => say(line) });
  } catch (err) {
    if (!(err instanceof InfraError)) throw err;
    infraProblem = err.message;
    say(`Room run will be skipped: ${err.message}`);
  }

  const rows: KitRow[] = [];
  const notes: string[] = [];
  try {
    rows.push(await benchHealth('[1/5]', 'bare grpc-js (Health/Check)', fromRoot('dist', 'scripts', 'bench', 'bare-server.js'), {}, opts, abort.signal));
    rows.push(
      await benchHealth('[2/5]', 'kit host (Health/Check)', fromRoot('dist', 'scripts', 'bench', 'kit-server.js'), { METRICS_PORT: '0', LOG_LEVEL: 'info' }, opts, abort.signal),
    );
    const tokens = await benchTokens('[3/5]', opts, abort.signal);
    rows.push(...tokens.rows);
    notes.push(...tokens.notes);
    if (infraProblem) rows.push(skippedRow('Room GetRoom (local-cache hit)', 'MariaDB/Redis/NATS not available'));
    else rows.push(await benchRoom('[4/5]', 'Room GetRoom (local-cache hit)', opts, abort.signal));
    const tracing = await benchTracing('[5/5]', opts, abort.signal);
    rows.push(...tracing.rows);
    notes.push(...tracing.notes);
  } finally {
    await infra?.stop();
  }

  process.stdout.write(`\n${machine}\n${table(rows, opts, notes)}\n`);
  return 0;
}

runBench(main);
