/**
 * `npm run bench:bff`: the BFF's room entry next to the smallest HTTP servers, its response
 * sizes, and WebSocket fan-out to one crowded room. Every server is its own child process; this
 * process drives the load (so client and servers share the machine's cores, as in every bench).
 *
 *   1. bare node:http hello-world (GET / → {"hello":"world"});
 *   2. Express hello-world, the same;
 *   3. the BFF's warm `GET /v1/rooms/:id` (a micro-cache hit, brotli, as a phone asks for it),
 *      with all five services as processes behind it and the room filled as mid-show: twelve
 *      gifts, three real gifters on the ranking, twenty chat messages;
 *   4. the room entry's bytes: raw, gzip, br;
 *   5. WebSocket fan-out: --connections protobuf clients in one room, --rate chat events/s
 *      published for --fanout-seconds as Chat publishes them (each appended to the room's
 *      recovery history in Redis first, which gives it its offset, then sent on the room's NATS
 *      subject): events delivered per second across all clients, and append-to-client latency
 *      (sampled frames, every event in them).
 *
 * Flags: --seconds N, --concurrency N, --warmup N (HTTP windows), --connections N (default
 * 10000), --rate N (default 120: 1.2 million events/s offered to 10,000 connections, above the
 * issue's 1 million), --fanout-seconds N (default 10).
 */
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { credentials, type Metadata, status as Code, type ServiceError } from '@grpc/grpc-js';
import { connect } from '@nats-io/transport-node';
import { WebSocket } from 'ws';
import { ChatServiceClient, ListRecentMessagesResponse, SendMessageRequest } from '../../gen/ts/livemesh/chat/v1/chat.js';
import * as giftPb from '../../gen/ts/livemesh/gift/v1/gift.js';
import { LedgerServiceClient, TopUpRequest } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { RoomServiceClient } from '../../gen/ts/livemesh/room/v1/room.js';
import type { Role } from '../../kit/identity.js';
import { fromRoot, repoRoot } from '../../kit/paths.js';
import { ensureInfra, infraUrlsFromEnv } from '../infra.js';
import { isolate } from '../isolation.js';
import { asUser } from '../tokens.js';
import { formatK, Interrupted, interruptible, machineLine, measure, runBench, say, setBenchTag, startProcess, startServer, stopServer, type Fire, type Row, type Server } from './harness.js';
import { percentile, processCpuSeconds } from '../stats.js';
import { Redis } from 'ioredis';
import { roomEvent } from '../../services/chat/events.js';
import { encodeEvent } from '../../services/chat/mapping.js';
import { RedisChatStore } from '../../services/chat/store/redis-chat.js';
import { natsServers } from '../../kit/nats.js';

setBenchTag('bff');

interface Options {
  seconds: number;
  concurrency: number;
  warmup: number;
  connections: number;
  rate: number;
  fanoutSeconds: number;
}

function parseOptions(argv: string[]): Options {
  const opts: Options = { seconds: 5, concurrency: 32, warmup: 1, connections: 10_000, rate: 120, fanoutSeconds: 10 };
  const flags: Record<string, keyof Options> = {
    '--seconds': 'seconds',
    '--concurrency': 'concurrency',
    '--warmup': 'warmup',
    '--connections': 'connections',
    '--rate': 'rate',
    '--fanout-seconds': 'fanoutSeconds',
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag = '', inline] = (argv[i] ?? '').split('=', 2);
    const key = flags[flag];
    const value = Number(inline ?? argv[++i]);
    if (!key || !Number.isFinite(value) || value < 0) {
      process.stderr.write(`bench bff: bad argument ${JSON.stringify(argv[i])}; flags: ${Object.keys(flags).join(', ')} (numbers)\n`);
      process.exit(2);
    }
    opts[key] = value;
  }
  return opts;
}

/** An HTTP server process (the baselines and the BFF), ready once GET /healthz answers 200. */
function startHttp(label: string, script: string, args: string[], env: Record<string, string>, signal: AbortSignal): Promise<Server> {
  return startProcess({ label, script, args, env, what: 'answer /healthz' }, (server) =>
    fetch(`http://${server.address}/healthz`).then(
      (r) => r.ok,
      () => false,
    ),
  signal);
}

/** A keep-alive GET as a harness Fire: any status but 200 counts as an error named by its status. */
function httpFire(address: string, path: string, headers: Record<string, string>, concurrency: number): Fire {
  const [host, port] = address.split(':') as [string, string];
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  return (done) => {
    const req = request({ host, port: Number(port), path, headers, agent }, (res) => {
      res.resume();
      res.on('end', () => done(res.statusCode === 200 ? null : ({ code: res.statusCode, details: `HTTP ${res.statusCode}` } as unknown as ServiceError)));
    });
    req.on('error', (err) => done({ code: Code.UNAVAILABLE, details: err.message } as ServiceError));
    req.end();
  };
}

/** An operator's admin token: the catalog, and top-ups (which take no user's token). */
function admin(): Metadata {
  return asUser('1', 'admin');
}

function unary<Req, Res>(client: object, method: string, req: Req, md: Metadata): Promise<Res> {
  const fn = (client as Record<string, (r: Req, m: Metadata, cb: (e: ServiceError | null, r: Res) => void) => void>)[method];
  if (!fn) throw new Error(`no method ${method}`);
  return new Promise((resolve, reject) => fn.call(client, req, md, (err, res) => (err ? reject(err) : resolve(res))));
}

/** Response bytes of one GET with the given Accept-Encoding, as sent on the wire. */
function wireBytes(address: string, path: string, encoding: string): Promise<{ bytes: number; encoding: string }> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    request({ host, port: Number(port), path, headers: { 'accept-encoding': encoding } }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => resolve({ bytes, encoding: String(res.headers['content-encoding'] ?? 'identity') }));
    })
      .on('error', reject)
      .end();
  });
}

interface Fanout {
  connections: number;
  connectMs: number;
  published: number;
  delivered: number;
  /** Events the BFF's frames said they left out (sampling past STREAM_SAMPLE_ABOVE viewers). */
  dropped: number;
  seconds: number;
  perSecond: number;
  p50: number;
  p99: number;
  max: number;
  frames: number;
  closedEarly: number;
  /** CPU seconds per second of window: the BFF process, and this (client) process. */
  bffCpu: number;
  clientCpu: number;
}

/** Counts the RoomEvents in a protobuf frame by walking its top-level fields, without decoding them. */
function countEvents(buf: Buffer): { events: number; dropped: number } {
  let n = 0;
  let dropped = 0;
  let i = 0;
  while (i < buf.length) {
    const tag = buf[i++] ?? 0;
    let v = 0;
    let shift = 0;
    for (;;) {
      const b = buf[i++] ?? 0;
      v |= (b & 0x7f) << shift;
      if (b < 0x80) break;
      shift += 7;
    }
    if (tag === 0x18) {
      dropped += v; // field 3, the frame's dropped count (a varint)
      continue;
    }
    i += v; // field 1, a RoomEvent (length-delimited)
    n++;
  }
  return { events: n, dropped };
}

async function fanout(bff: Server, iso: { redisUrl: string; redisPrefix: string; natsUrl: string; natsPrefix: string }, roomId: string, opts: Options, signal: AbortSignal): Promise<Fanout> {
  const { natsUrl, natsPrefix } = iso;
  const url = `ws://${bff.address}/v1/rooms/${roomId}/stream?format=protobuf`;
  const sockets: WebSocket[] = [];
  let delivered = 0;
  let dropped = 0;
  let frames = 0;
  let closedEarly = 0;
  let measuring = false;
  let latencies = new Float64Array(1 << 20);
  let samples = 0;
  let lastArrival = 0;
  const onFrame = (data: Buffer, isBinary: boolean) => {
    if (!isBinary || !measuring) return;
    frames++;
    lastArrival = performance.now();
    const counted = countEvents(data);
    delivered += counted.events;
    dropped += counted.dropped;
    // Every 97th frame is decoded in full and each of its events timed (all of them: no
    // favouring the newest event in a batch).
    if (frames % 97 !== 0) return;
    const now = Date.now();
    for (const e of ListRecentMessagesResponse.decode(data).events) {
      if (samples === latencies.length) {
        const bigger = new Float64Array(latencies.length * 2);
        bigger.set(latencies);
        latencies = bigger;
      }
      latencies[samples++] = now - (e.eventTime?.getTime() ?? now);
    }
  };
  const t0 = performance.now();
  for (let opened = 0; opened < opts.connections; ) {
    if (signal.aborted) throw new Interrupted();
    const batch = Math.min(500, opts.connections - opened);
    await Promise.all(
      Array.from(
        { length: batch },
        () =>
          new Promise<void>((resolve, reject) => {
            const ws = new WebSocket(url, { perMessageDeflate: false });
            ws.on('message', onFrame);
            ws.once('open', () => resolve());
            ws.once('error', reject);
            ws.on('close', () => {
              if (measuring) closedEarly++;
            });
            sockets.push(ws);
          }),
      ),
    );
    opened += batch;
    if (opened % 2000 === 0 || opened === opts.connections) say(`[5/5] fan-out: ${formatK(opened)}/${formatK(opts.connections)} connections open`);
  }
  const connectMs = performance.now() - t0;
  const nc = await connect({ servers: natsServers(natsUrl) });
  const subjectName = `${natsPrefix}.chat.room.${roomId}`;
  // Chat's own store and history limits (its defaults): every event is appended to the room's
  // history, which hands out its offset, before it is published, as Chat's RoomStream does.
  const redis = new Redis(iso.redisUrl, { keyPrefix: iso.redisPrefix, enableAutoPipelining: true });
  const store = new RedisChatStore(redis);
  const history = { size: 1000, ttlMs: 600_000 };
  let n = 0;
  let failed = 0;
  const publishOne = () => {
    const id = String(++n);
    const event = roomEvent(roomId, '0', { chat: { messageId: id, senderId: '7001', senderName: 'fan', senderLevel: 3, text: 'what a song!', mergedCount: 1, senderRole: 'viewer' } }, new Date());
    // Replies come back in order on the one connection, so publishes leave in offset order.
    store.append(event, history, Date.now()).then(
      ({ offset }) => nc.publish(subjectName, encodeEvent({ ...event, seq: offset })),
      () => failed++,
    );
  };
  // Warm the path for a second, then measure.
  const every = 1000 / opts.rate;
  const run = async (ms: number) => {
    const start = performance.now();
    let sent = 0;
    while (performance.now() - start < ms && !signal.aborted) {
      const due = Math.floor((performance.now() - start) / every) + 1;
      while (sent < due) {
        publishOne();
        sent++;
      }
      await sleep(5);
    }
    return sent;
  };
  await run(1000);
  await sleep(500);
  measuring = true;
  const start = performance.now();
  const bffCpu0 = processCpuSeconds(bff.pid);
  const clientCpu0 = process.cpuUsage();
  const ticker = setInterval(() => say(`[5/5] fan-out: ${formatK(delivered)} events delivered`), 1000);
  const published = await run(opts.fanoutSeconds * 1000);
  // Let the last tick's frames arrive; the window ends at the last arrival, not after this wait.
  await sleep(1000);
  measuring = false;
  clearInterval(ticker);
  const seconds = (Math.max(lastArrival, start + 1) - start) / 1000;
  const cpuSeconds = (performance.now() - start) / 1000;
  const bffCpu = (processCpuSeconds(bff.pid) - bffCpu0) / cpuSeconds;
  const clientUsage = process.cpuUsage(clientCpu0);
  const clientCpu = (clientUsage.user + clientUsage.system) / 1e6 / cpuSeconds;
  await nc.close();
  await redis.quit();
  if (failed > 0) say(`[5/5] fan-out: ${failed} history appends failed`);
  for (const ws of sockets) ws.terminate();
  const sorted = Float64Array.from(latencies.subarray(0, samples)).sort();
  return {
    connections: opts.connections,
    connectMs,
    published,
    delivered,
    dropped,
    seconds,
    perSecond: delivered / seconds,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted[sorted.length - 1] ?? NaN,
    frames,
    closedEarly,
    bffCpu,
    clientCpu,
  };
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  const abort = interruptible();
  const machine = machineLine();
  say(machine);
  const infra = await ensureInfra(infraUrlsFromEnv(), { dataDir: join(repoRoot(), '.data'), log: (line) => say(line) });
  const iso = isolate('benchbff', 'livemesh_bench');
  const servers: Server[] = [];
  const rows: Row[] = [];
  const stop = async (s: Server) => {
    await stopServer(s);
    servers.splice(servers.indexOf(s), 1);
  };
  const hello = fromRoot('dist', 'scripts', 'bench', 'bff-hello.js');
  const http = { seconds: opts.seconds, concurrency: opts.concurrency, warmup: opts.warmup };
  try {
    say('[1/5] bare node:http hello-world');
    const bare = await startHttp('node:http hello', hello, ['http'], {}, abort.signal);
    servers.push(bare);
    rows.push(await measure('[1/5]', 'node:http hello-world', bare, httpFire(bare.address, '/', { 'accept-encoding': 'br' }, opts.concurrency), http, abort.signal));
    await stop(bare);

    say('[2/5] Express hello-world');
    const ex = await startHttp('express hello', hello, ['express'], {}, abort.signal);
    servers.push(ex);
    rows.push(await measure('[2/5]', 'Express hello-world', ex, httpFire(ex.address, '/', { 'accept-encoding': 'br' }, opts.concurrency), http, abort.signal));
    await stop(ex);

    say(`[3/5] Room, Ledger, Gift, Chat, Ranking and the BFF (database ${iso.database}, Redis prefix ${iso.redisPrefix})`);
    const common = { ...iso.env, METRICS_PORT: '-1', LOG_LEVEL: 'warn', DRAIN_GRACE_MS: '0' };
    const service = async (name: string, env: Record<string, string>) => {
      const s = await startServer(name, fromRoot('dist', 'services', name, 'main.js'), { ...common, MYSQL_DATABASE: `${iso.database}_${name}`, ...env }, false, abort.signal);
      servers.push(s);
      return s.address;
    };
    const roomAddr = await service('room', {});
    const ledgerAddr = await service('ledger', {});
    const giftAddr = await service('gift', { ROOM_ADDR: roomAddr, LEDGER_ADDR: ledgerAddr });
    const peers = { ROOM_ADDR: roomAddr, GIFT_ADDR: giftAddr, LEDGER_ADDR: ledgerAddr };
    const [chatAddr, rankingAddr] = [await service('chat', peers), await service('ranking', peers)];
    const roomId = await fillRoom({ room: roomAddr, gift: giftAddr, ledger: ledgerAddr, chat: chatAddr });

    const bff = await startHttp(
      'bff',
      fromRoot('dist', 'bff', 'main.js'),
      [],
      {
        ...iso.env,
        ...peers,
        LOG_LEVEL: 'warn',
        METRICS_PORT: '0',
        CHAT_ADDR: chatAddr,
        RANKING_ADDR: rankingAddr,
        // One client address drives all the load: the per-IP limit (still checked in Redis per request) must not refuse it.
        RATE_LIMIT_IP_PER_S: '1000000',
        // Every event to every connection: the room is kept below the sampling threshold (the
        // complete stream a room gets up to STREAM_SAMPLE_ABOVE viewers), so what is measured is
        // delivery, not the sample a crowded room's cap would take of a bursty publisher.
        STREAM_SAMPLE_ABOVE: String(opts.connections),
        STREAM_EVENTS_PER_S: String(Math.max(50, opts.rate * 2)),
        STREAM_TICK_MS: '100',
        DRAIN_GRACE_MS: '0',
      },
      abort.signal,
    );
    servers.push(bff);
    const path = `/v1/rooms/${roomId}`;
    // The ranking is fed asynchronously (paid-gift events): wait until the screen is whole.
    let screen: Screen = { degraded: ['?'], gifts: [], ranking: null, messages: null };
    for (let i = 0; i < 100 && (screen.degraded.length > 0 || (screen.ranking?.length ?? 0) < 3 || (screen.messages?.length ?? 0) < 20); i++) {
      if (i > 0) await sleep(300);
      screen = (await (await fetch(`http://${bff.address}${path}`)).json()) as Screen;
    }
    say(`[3/5] room entry: ${screen.gifts.length} gifts, ranking ${screen.ranking?.length ?? 'null'}, messages ${screen.messages?.length ?? 'null'}, degraded: ${screen.degraded.join(', ') || 'none'}`);
    rows.push(await measure('[3/5]', 'BFF GET /v1/rooms/:id (warm, br)', bff, httpFire(bff.address, path, { 'accept-encoding': 'br, gzip' }, opts.concurrency), http, abort.signal));

    say('[4/5] response bytes');
    const raw = await wireBytes(bff.address, path, 'identity');
    const gz = await wireBytes(bff.address, path, 'gzip');
    const br = await wireBytes(bff.address, path, 'br');

    say(`[5/5] fan-out: ${formatK(opts.connections)} WebSocket connections in room ${roomId}, ${opts.rate} events/s`);
    const fan = await fanout(bff, { redisUrl: iso.urls.redisUrl, redisPrefix: iso.redisPrefix, natsUrl: iso.urls.natsUrl, natsPrefix: iso.natsPrefix }, roomId, opts, abort.signal);
    say(`[5/5] fan-out: ${formatK(fan.delivered)} events in ${fan.seconds.toFixed(1)}s, ${formatK(Math.round(fan.perSecond))}/s, p99 ${fan.p99.toFixed(0)} ms`);

    process.stdout.write(`\n${machine}\n${report(rows, { raw, gz, br }, fan, screen.degraded, opts)}\n`);
    return 0;
  } finally {
    await Promise.all([...servers].map(stopServer));
    const removed = await iso.cleanup();
    say(`removed bench data (${removed} Redis keys, database ${iso.database}*)`);
    await infra.stop();
  }
}

interface Screen {
  degraded: string[];
  gifts: unknown[];
  ranking: unknown[] | null;
  messages: unknown[] | null;
}

/** A user's token as the BFF mints it. */
function identity(userId: string, role: Role): Metadata {
  return asUser(userId, role);
}

/**
 * A room as a phone sees it mid-show: live, a twelve-gift bar, three gifters on the ranking (real
 * gifts: top-ups through the Ledger, SendGift through Gift) and twenty chat messages in Chat.
 */
async function fillRoom(addr: { room: string; gift: string; ledger: string; chat: string }): Promise<string> {
  const insecure = credentials.createInsecure();
  const roomClient = new RoomServiceClient(addr.room, insecure);
  const giftClient = new giftPb.GiftServiceClient(addr.gift, insecure);
  const ledgerClient = new LedgerServiceClient(addr.ledger, insecure);
  const chatClient = new ChatServiceClient(addr.chat, insecure);
  try {
    const streamer = identity('5100', 'streamer');
    const created = await unary<object, { room?: { roomId: string } }>(
      roomClient,
      'createRoom',
      { streamerId: '5100', title: 'Bench night: songs and stories', category: 'music', coverKey: 'covers/5100/bench.jpg', notice: 'Welcome! Be kind in chat; top gifters get a shout-out.', requestId: 'bench-room-1' },
      streamer,
    );
    const roomId = created.room?.roomId ?? '0';
    await unary(roomClient, 'startLive', { roomId }, streamer);
    const giftIds: string[] = [];
    for (const [i, name] of ['rose', 'heart', 'lollipop', 'star', 'crown', 'rocket', 'yacht', 'castle', 'unicorn', 'fireworks', 'planet', 'galaxy'].entries()) {
      const res = await unary<giftPb.UpsertGiftRequest, giftPb.UpsertGiftResponse>(
        giftClient,
        'upsertGift',
        giftPb.UpsertGiftRequest.fromPartial({ gift: { name, priceMinor: String(10 ** (1 + (i % 6))), iconKey: `gifts/icons/${name}@3x.png`, effectKey: `gifts/effects/${name}.svga` } }),
        admin(),
      );
      giftIds.push(res.gift?.giftId ?? '0');
    }
    await unary(giftClient, 'upsertGiftGroup', giftPb.UpsertGiftGroupRequest.fromPartial({ giftGroup: { name: 'standard', giftIds, isDefault: true } }), admin());
    for (const [i, name] of ['Moonlight Fan', 'Lucky Star', 'Night Owl'].entries()) {
      const viewer = String(7001 + i);
      await unary(ledgerClient, 'topUp', TopUpRequest.fromPartial({ ownerId: viewer, amountMinor: '1000000', paymentReference: `bench-pay-${viewer}`, provider: 'bench' }), admin());
      await unary(
        giftClient,
        'sendGift',
        giftPb.SendGiftRequest.fromPartial({ idempotencyKey: `bench-gift-${viewer}`, roomId, giftId: giftIds[i] ?? '0', count: 3 - i, senderName: name }),
        identity(viewer, 'viewer'),
      );
    }
    // Twenty different texts: Chat merges identical messages sent close together into one.
    const lines = ['what a song!', 'hello from Shanghai', 'encore!!', 'this is my favourite', 'can you sing it again?', 'the guitar sounds great', 'first time here, love it'];
    for (let i = 0; i < 20; i++) {
      const viewer = String(8001 + i);
      const text = `${lines[i % lines.length] ?? ''}${i >= lines.length ? ` (${i})` : ''}`;
      await unary(chatClient, 'sendMessage', SendMessageRequest.fromPartial({ roomId, text, clientMessageId: `bench-msg-${i}`, senderName: `viewer${viewer}` }), identity(viewer, 'viewer'));
    }
    return roomId;
  } finally {
    for (const c of [roomClient, giftClient, ledgerClient, chatClient]) c.close();
  }
}

function report(rows: Row[], bytes: { raw: { bytes: number }; gz: { bytes: number; encoding: string }; br: { bytes: number; encoding: string } }, fan: Fanout, degraded: string[], opts: Options): string {
  const express = rows.find((r) => r.label.startsWith('Express'))?.callsPerSec ?? NaN;
  const n = (x: number) => Math.round(x).toLocaleString('en-US');
  const lines = [
    `HTTP: ${opts.concurrency} requests in flight, ${opts.seconds}s windows after ${opts.warmup}s warm-up, keep-alive, Accept-Encoding br.`,
    '',
    '| server / request | req/s | p50 ms | p99 ms | server CPU µs/req | errors | vs Express hello |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.label} | ${n(r.callsPerSec)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${n(r.serverCpuUsPerCall)} | ${r.errors} | ${(r.callsPerSec / express).toFixed(2)}× |`),
    '',
    `Room entry bytes (room, online count, 12 gifts, top-3 ranking, last 20 messages${degraded.length ? `; degraded: ${degraded.join(', ')}` : ''}):`,
    '',
    '| encoding | bytes |',
    '|---|---:|',
    `| raw JSON | ${n(bytes.raw.bytes)} |`,
    `| ${bytes.gz.encoding} | ${n(bytes.gz.bytes)} |`,
    `| ${bytes.br.encoding} | ${n(bytes.br.bytes)} |`,
    '',
    `WebSocket fan-out: ${n(fan.connections)} protobuf connections in one room (opened in ${(fan.connectMs / 1000).toFixed(1)} s), ${opts.rate} chat events/s published for ${opts.fanoutSeconds} s (${n(opts.rate * fan.connections)} events/s offered), each appended to the room's recovery history before it is published, the room below the sampling threshold (every event to every connection), 100 ms frames; delivered/s over the window from the first publish to the last arrival.`,
    '',
    '| events published | events delivered | delivered/s | frames | events dropped (frames) | p50 ms | p99 ms | max ms | dropped connections | BFF CPU | client CPU |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    `| ${n(fan.published)} | ${n(fan.delivered)} | ${n(fan.perSecond)} | ${n(fan.frames)} | ${n(fan.dropped)} | ${fan.p50.toFixed(0)} | ${fan.p99.toFixed(0)} | ${fan.max.toFixed(0)} | ${fan.closedEarly} | ${fan.bffCpu.toFixed(2)} | ${fan.clientCpu.toFixed(2)} |`,
    '',
    'CPU columns: CPU-seconds per second of the window (2.00 would be both cores).',
  ];
  return lines.join('\n');
}

runBench(main);
