/**
 * `npm run bench:chat`: Chat's SendMessage and fan-out, and Ranking's gift-to-board latency. Every
 * server is its own child process; this process drives the load and is every subscriber.
 *
 *   1. bare grpc-js echo sent a SendMessage-sized request with the same metadata (the baseline);
 *   2. SendMessage, closed loop: messages/s accepted (distinct texts, so nothing merges);
 *   3. bare NATS: publish → subscriber latency at the target rate (the fan-out's own floor);
 *   4. SendMessage at a fixed rate (default 5,000/s, open loop): call → event received, by a NATS
 *      subscriber on the room's subject (what a BFF gateway is) and by a Subscribe stream;
 *   5. Ranking: GiftPaidEvents published to JetStream at a fixed rate over a few rooms, each room
 *      polled with GetRoomRanking; latency = publish → first read showing the gift.
 *
 * Flags: --seconds N (each measured window, default 5), --concurrency N (closed loop, default 32),
 * --warmup N, --rate N (messages/s for step 4, default 5000), --gift-rate N (gifts/s, default 200).
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { ChatServiceClient, RoomEvent, SendMessageRequest, type SubscribeResponse } from '../../gen/ts/livemesh/chat/v1/chat.js';
import { GiftPaidEvent } from '../../gen/ts/livemesh/gift/v1/gift.js';
import { RankingPeriod, RankingServiceClient, type GetRoomRankingResponse } from '../../gen/ts/livemesh/ranking/v1/ranking.js';
import { RoomServiceClient, type CreateRoomResponse } from '../../gen/ts/livemesh/room/v1/room.js';
import { Redis } from 'ioredis';
import type { Role } from '../../kit/identity.js';
import { fromRoot, repoRoot } from '../../kit/paths.js';
import { Boards } from '../../services/ranking/boards.js';
import { Calendar } from '../../services/ranking/calendar.js';
import { chatRoomSubject } from '../../services/chat/store/nats-events.js';
import { ensureGiftPaidStream, giftPaidSubject } from '../../services/gift/client.js';
import { ensureInfra, infraUrlsFromEnv } from '../infra.js';
import { isolate } from '../isolation.js';
import { sharedUserMetadata } from '../tokens.js';
import { EchoClient } from './echo.js';
import { formatK, Interrupted, interruptible, machineLine, measure, runBench, say, setBenchTag, startServer, stopServer, type Row, type Server } from './harness.js';
import { percentile } from '../stats.js';
import { natsServers } from '../../kit/nats.js';

setBenchTag('chat');

const USERS = 10_000;
const GIFT_ROOMS = 5;

function parseFlags(argv: string[]) {
  const opts = { seconds: 5, concurrency: 32, warmup: 1, rate: 5000, giftRate: 200 };
  const names: Record<string, keyof typeof opts> = { '--seconds': 'seconds', '--concurrency': 'concurrency', '--warmup': 'warmup', '--rate': 'rate', '--gift-rate': 'giftRate' };
  for (let i = 0; i < argv.length; i++) {
    const [flag = '', inline] = (argv[i] ?? '').split('=', 2);
    const key = names[flag];
    const value = Number(inline ?? argv[++i]);
    if (!key || !Number.isFinite(value) || value < (key === 'warmup' ? 0 : 0.1)) {
      process.stderr.write(`bench chat: bad argument ${JSON.stringify(argv[i])}; flags: ${Object.keys(names).join(', ')} followed by a number\n`);
      process.exit(2);
    }
    opts[key] = key === 'concurrency' ? Math.round(value) : value;
  }
  return opts;
}

/** A user's token as the BFF mints it, in metadata shared across calls (renewed before it expires). */
const identity = (userId: string, role: Role) => sharedUserMetadata(userId, role);
/** Viewer `i`'s metadata (USERS distinct viewers, each with their own token). */
const viewer = (i: number) => identity(String(100_000 + (i % USERS)), 'viewer');

/**
 * Calls `send(i)` `rate` times a second for `seconds` (open loop: a slow answer does not slow the
 * sending), with at most `maxInflight` outstanding; returns how many were sent and answered.
 */
async function paced(rate: number, seconds: number, send: (i: number) => Promise<unknown>, signal: AbortSignal, maxInflight = 4000) {
  const start = performance.now();
  const total = Math.round(rate * seconds);
  let sent = 0;
  let inflight = 0;
  let failed = 0;
  let skipped = 0;
  const errors = new Map<string, number>();
  while (sent + skipped < total) {
    if (signal.aborted) throw new Interrupted();
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate));
    while (sent + skipped < due) {
      if (inflight >= maxInflight) {
        skipped++;
        continue;
      }
      inflight++;
      send(sent++).then(
        () => inflight--,
        (err: ServiceError) => {
          inflight--;
          failed++;
          const k = String(err.code ?? err.message);
          errors.set(k, (errors.get(k) ?? 0) + 1);
        },
      );
    }
    await new Promise((r) => setImmediate(r));
  }
  while (inflight > 0) await sleep(5);
  return { sent, failed, skipped, elapsedS: (performance.now() - start) / 1000, errors };
}

const ms = (a: Float64Array, q: number) => (a.length ? percentile(a, q).toFixed(2) : 'n/a');
const sorted = (a: number[]) => Float64Array.from(a).sort();

async function main(): Promise<number> {
  const opts = parseFlags(process.argv.slice(2));
  const abort = interruptible();
  const machine = machineLine();
  say(machine);
  const infra = await ensureInfra(infraUrlsFromEnv(), { dataDir: join(repoRoot(), '.data'), log: (line) => say(line) });
  const iso = isolate('benchchat', 'livemesh_bench');
  const servers: Server[] = [];
  const closers: Array<() => unknown> = [];
  const rows: Row[] = [];
  const lines: string[] = [];
  try {
    const sample = SendMessageRequest.fromPartial({ roomId: '1000', text: 'message 1234567 from the benchmark', clientMessageId: 'b-1234567', senderName: 'viewer 1234' });
    const payload = Buffer.from(SendMessageRequest.encode(sample).finish());
    say('[1/5] bare grpc-js echo server');
    const bare = await startServer('bare grpc-js', fromRoot('dist', 'scripts', 'bench', 'bare-server.js'), {}, true, abort.signal);
    servers.push(bare);
    const echo = new EchoClient(bare.address, credentials.createInsecure()) as unknown as { echo(b: Buffer, md: Metadata, cb: (e: ServiceError | null) => void): void; close(): void };
    rows.push(await measure('[1/5]', `bare grpc-js echo (${payload.length} B)`, bare, (done) => void echo.echo(payload, viewer(0), (err) => done(err)), opts, abort.signal));
    echo.close();
    await stopServer(bare);
    servers.splice(servers.indexOf(bare), 1);

    say(`[2/5] Room and Chat (Redis prefix ${iso.redisPrefix}, NATS prefix ${iso.natsPrefix})`);
    const base = { ...iso.env, METRICS_PORT: '0', LOG_LEVEL: 'warn' };
    const room = await startServer('room', fromRoot('dist', 'services', 'room', 'main.js'), base, false, abort.signal);
    servers.push(room);
    const chat = await startServer('chat', fromRoot('dist', 'services', 'chat', 'main.js'), { ...base, ROOM_ADDR: room.address, CHAT_RATE_BURST: '1000', CHAT_RATE_PER_MIN: '60000' }, false, abort.signal);
    servers.push(chat);
    const rooms = new RoomServiceClient(room.address, credentials.createInsecure());
    const chats = new ChatServiceClient(chat.address, credentials.createInsecure());
    closers.push(() => rooms.close(), () => chats.close());
    const created = await new Promise<CreateRoomResponse>((ok, fail) =>
      rooms.createRoom({ streamerId: '0', title: 'bench chat', category: 'music', coverKey: '', notice: '', requestId: 'bench-chat' }, identity('424242', 'streamer'), (e, r) => (e ? fail(e) : ok(r))),
    );
    const roomId = created.room?.roomId ?? '0';
    let n = 0;
    const sendMessage = (text: string, cb: (err: ServiceError | null) => void) => {
      const i = n++;
      chats.sendMessage({ roomId, text, clientMessageId: `b-${i}`, senderName: `viewer ${i % USERS}` }, viewer(i), (err) => cb(err));
    };
    rows.push(await measure('[2/5]', 'Chat SendMessage (published, not merged)', chat, (done) => sendMessage(`message ${n} from the benchmark`, done), opts, abort.signal));

    say(`[3/5] bare NATS publish → subscriber at ${formatK(opts.rate)}/s`);
    const pub = await connect({ servers: natsServers(iso.urls.natsUrl) });
    const subConn = await connect({ servers: natsServers(iso.urls.natsUrl) });
    closers.push(() => pub.close(), () => subConn.close());
    const bareLat: number[] = [];
    const bareSent: number[] = [];
    const bareSubject = `${iso.natsPrefix}.bench.bare`;
    subConn.subscribe(bareSubject, {
      callback: (_e, m) => {
        bareLat.push(performance.now() - (bareSent[Buffer.from(m.data.buffer, m.data.byteOffset, 4).readUInt32BE(0)] ?? 0));
      },
    });
    await subConn.flush();
    const event = RoomEvent.encode({ seq: '1', priority: 2, eventTime: new Date(), roomId, chat: { messageId: '1', senderId: '100001', senderName: 'viewer 1', senderLevel: 0, text: 'message 1234567 from the benchmark', mergedCount: 1, senderRole: 1 } }).finish();
    // async although it awaits nothing: a publish that throws must reach paced as a rejection, counted as a failure.
    // eslint-disable-next-line @typescript-eslint/require-await
    const natsRun = await paced(opts.rate, opts.seconds, async (i) => {
      const data = Buffer.alloc(event.length);
      Buffer.from(event).copy(data);
      data.writeUInt32BE(i, 0);
      bareSent[i] = performance.now();
      pub.publish(bareSubject, data);
    }, abort.signal);
    await pub.flush();
    await sleep(300);
    say(`[3/5] bare NATS: ${bareLat.length}/${natsRun.sent} received, p50 ${ms(sorted(bareLat), 0.5)} ms, p99 ${ms(sorted(bareLat), 0.99)} ms`);

    const stream = chats.subscribe({ roomId, minPriority: 0, replayRecent: 0 });
    let streamEnd = 'open';
    const paced4 = { nats: [] as number[], natsFromPublish: [] as number[], stream: [] as number[] };
    const sentAt = new Map<string, number>();
    const onEvent = (e: RoomEvent, into: number[], fromPublish?: number[]) => {
      const t0 = e.chat ? sentAt.get(e.chat.text) : undefined;
      if (t0 === undefined) return;
      into.push(performance.now() - t0);
      if (fromPublish && e.eventTime) fromPublish.push(Date.now() - e.eventTime.getTime());
    };
    subConn.subscribe(chatRoomSubject(iso.natsPrefix, roomId), { callback: (_e, m) => onEvent(RoomEvent.decode(m.data), paced4.nats, paced4.natsFromPublish) });
    await subConn.flush();
    stream.on('data', (r: SubscribeResponse) => r.event && onEvent(r.event, paced4.stream));
    stream.on('error', (err: ServiceError) => (streamEnd = `ended ${err.code} ${err.details}`));
    closers.push(() => stream.cancel());
    await sleep(300);
    const pacedRuns: string[] = [];
    for (const [step, rate] of [['[4/5]', 1000], ['[4/5]', opts.rate]] as const) {
      say(`${step} SendMessage at ${formatK(rate)}/s → NATS subscriber and Subscribe stream`);
      paced4.nats = [];
      paced4.natsFromPublish = [];
      paced4.stream = [];
      const callMs: number[] = [];
      const run = await paced(rate, opts.seconds, (i) => {
        const text = `paced ${rate} ${i}`;
        const t0 = performance.now();
        sentAt.set(text, t0);
        return new Promise<void>((ok, fail) =>
          chats.sendMessage({ roomId, text, clientMessageId: `p-${rate}-${i}`, senderName: 'viewer' }, viewer(i), (err) => {
            callMs.push(performance.now() - t0);
            if (err) fail(err);
            else ok();
          }),
        );
      }, abort.signal);
      await sleep(500);
      const sentRate = Math.round(run.sent / run.elapsedS);
      say(`${step} ${run.sent} sent in ${run.elapsedS.toFixed(1)}s (${sentRate}/s), ${run.failed} failed, ${run.skipped} not sent (4,000 in flight cap); received: NATS ${paced4.nats.length}, stream ${paced4.stream.length} (${streamEnd})`);
      const [nats, fromPub, strm, calls] = [paced4.nats, paced4.natsFromPublish, paced4.stream, callMs].map(sorted) as [Float64Array, Float64Array, Float64Array, Float64Array];
      pacedRuns.push(
        '',
        `| ${formatK(rate)} msgs/s offered: ${sentRate.toLocaleString('en-US')}/s sent, ${run.failed} failed, ${run.skipped} over the in-flight cap | received | p50 ms | p99 ms | max ms |`,
        '|---|---:|---:|---:|---:|',
        `| Chat's publish (event_time, ms resolution) → NATS subscriber | ${fromPub.length} | ${ms(fromPub, 0.5)} | ${ms(fromPub, 0.99)} | ${ms(fromPub, 1)} |`,
        `| SendMessage call → NATS subscriber (a gateway) | ${nats.length} | ${ms(nats, 0.5)} | ${ms(nats, 0.99)} | ${ms(nats, 1)} |`,
        `| SendMessage call → Subscribe stream (${streamEnd}) | ${strm.length} | ${ms(strm, 0.5)} | ${ms(strm, 0.99)} | ${ms(strm, 1)} |`,
        `| the SendMessage call itself | ${calls.length} | ${ms(calls, 0.5)} | ${ms(calls, 0.99)} | ${ms(calls, 1)} |`,
      );
    }

    say(`[5/5] Ranking: ${opts.giftRate} gifts/s over ${GIFT_ROOMS} rooms, each polled with GetRoomRanking`);
    const ranking = await startServer('ranking', fromRoot('dist', 'services', 'ranking', 'main.js'), base, false, abort.signal);
    servers.push(ranking);
    const boards = new RankingServiceClient(ranking.address, credentials.createInsecure());
    closers.push(() => boards.close());
    await ensureGiftPaidStream(pub, iso.natsPrefix);
    const js = jetstream(pub);
    const publishedAt: number[][] = Array.from({ length: GIFT_ROOMS }, () => []);
    const seen = Array.from({ length: GIFT_ROOMS }, () => 0);
    const visible: number[] = [];
    const applied: number[] = [];
    const seenInRedis = Array.from({ length: GIFT_ROOMS }, () => 0);
    const redis = new Redis(iso.urls.redisUrl, { keyPrefix: iso.redisPrefix });
    closers.push(() => redis.disconnect());
    const boardKeys = new Boards(new Calendar('UTC'));
    let polling = true;
    let polls = 0;
    // Beside the RPC: the board in Redis itself, to split the consumer's lag from the snapshot's age.
    const redisPollers = Array.from({ length: GIFT_ROOMS }, async (_, r) => {
      while (polling) {
        const score = Number((await redis.hget(`${boardKeys.room(String(5000 + r), 'day', Date.now()).key}:h`, `s:${7000 + r}`)) ?? 0);
        const now = performance.now();
        for (let k = (seenInRedis[r] ?? 0) + 1; k <= score; k++) applied.push(now - (publishedAt[r]?.[k] ?? now));
        seenInRedis[r] = Math.max(seenInRedis[r] ?? 0, score);
        await sleep(10);
      }
    });
    const pollers = Array.from({ length: GIFT_ROOMS }, async (_, r) => {
      while (polling) {
        const res = await new Promise<GetRoomRankingResponse | undefined>((ok) =>
          boards.getRoomRanking({ roomId: String(5000 + r), period: RankingPeriod.RANKING_PERIOD_DAY, limit: 1 }, new Metadata(), (e, x) => ok(e ? undefined : x)),
        );
        polls++;
        const now = performance.now();
        const score = Number(res?.entries[0]?.scoreMinor ?? 0);
        for (let k = (seen[r] ?? 0) + 1; k <= score; k++) visible.push(now - (publishedAt[r]?.[k] ?? now));
        seen[r] = Math.max(seen[r] ?? 0, score);
        await sleep(10);
      }
    });
    let orderId = 1;
    const giftRun = await paced(opts.giftRate, opts.seconds, async (i) => {
      const r = i % GIFT_ROOMS;
      const k = Math.floor(i / GIFT_ROOMS) + 1;
      const e = GiftPaidEvent.fromPartial({ orderId: String(orderId++), roomId: String(5000 + r), streamerId: String(6000 + r), senderId: String(7000 + r), senderName: 'gifter', giftId: '1', count: 1, amountMinor: '1', paidTime: new Date() });
      (publishedAt[r] as number[])[k] = performance.now();
      await js.publish(giftPaidSubject(iso.natsPrefix, e.roomId), GiftPaidEvent.encode(e).finish(), { msgID: e.orderId });
    }, abort.signal);
    const deadline = performance.now() + 15_000;
    while (visible.length < giftRun.sent - giftRun.failed && performance.now() < deadline) await sleep(50);
    polling = false;
    await Promise.all([...pollers, ...redisPollers]);
    say(`[5/5] ${giftRun.sent} gifts published, ${visible.length} seen on the boards, ${polls} GetRoomRanking polls`);

    const acceptedPerSec = rows[1]?.callsPerSec ?? 0;
    const bareS = sorted(bareLat);
    const vis = sorted(visible);
    const app = sorted(applied);
    lines.push(
      `${opts.concurrency} calls in flight over one channel, ${opts.warmup}s warm-up, ${opts.seconds}s measured per row; server CPU from /proc/<pid>/stat.`,
      '',
      '| server / call | calls/s | p50 ms | p99 ms | server CPU µs/call | errors | vs bare |',
      '|---|---:|---:|---:|---:|---:|---:|',
      ...rows.map((r, i) => `| ${r.label} | ${Math.round(r.callsPerSec).toLocaleString('en-US')} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${Math.round(r.serverCpuUsPerCall)} | ${r.errors} | ${i === 0 ? '1.00×' : `${(r.callsPerSec / (rows[0]?.callsPerSec ?? 1)).toFixed(2)}×`} |`),
      '',
      `Messages accepted by SendMessage (closed loop): ${Math.round(acceptedPerSec).toLocaleString('en-US')}/s.`,
      '',
      `| bare NATS publish → subscriber at ${formatK(opts.rate)}/s (baseline) | received | p50 ms | p99 ms | max ms |`,
      '|---|---:|---:|---:|---:|',
      `| one publisher connection, one subscriber connection | ${bareLat.length} | ${ms(bareS, 0.5)} | ${ms(bareS, 0.99)} | ${ms(bareS, 1)} |`,
      ...pacedRuns,
      '',
      `| gift event → visible in GetRoomRanking (${giftRun.sent} gifts at ${opts.giftRate}/s, ${GIFT_ROOMS} rooms polled every ~10 ms) | p50 ms | p99 ms | max ms |`,
      '|---|---:|---:|---:|',
      `| JetStream publish → ranking consumer → Redis → replica snapshot → read | ${ms(vis, 0.5)} | ${ms(vis, 0.99)} | ${ms(vis, 1)} |`,
      `| of which: JetStream publish → applied in Redis (read directly, every ~10 ms) | ${ms(app, 0.5)} | ${ms(app, 0.99)} | ${ms(app, 1)} |`,
      '',
      `Targets: publish-to-subscriber p99 < 20 ms at 5,000 msgs/s; ranking visible within 1 s at p99 (measured ${ms(vis, 0.99)} ms).`,
    );
    process.stdout.write(`\n${machine}\n${lines.join('\n')}\n`);
    return 0;
  } finally {
    for (const close of closers) {
      try {
        await close();
      } catch {
        // already closed
      }
    }
    await Promise.all(servers.map(stopServer));
    const keys = await iso.cleanup();
    say(`cleanup: dropped database ${iso.database}, ${keys} Redis key(s) and the bench's JetStream streams`);
    await infra.stop();
  }
}

runBench(main);
