/**
 * `npm run bench:gift`: SendGift end to end — Gift → Ledger, durable in MariaDB, events through
 * JetStream — with Room, Ledger and Gift each in their own process.
 *
 *   baselines: a bare grpc-js echo server, and the same MariaDB's raw single-row INSERT rate
 *              (autocommit) at the same concurrency;
 *   A. many viewers sending to many rooms (closed loop, --concurrency calls in flight);
 *   B. every viewer sending to one hot room;
 *   C. open loop at half of A's rate: latency when not saturated, and for a sample of orders the
 *      time from the send until the order is DONE (its EXP granted and its combo recorded);
 *   plus the bytes of a 30-gift list before and after compression (what Redis keeps).
 *
 * Chat and Ranking are not started: the orders here are DONE once Gift's own effects are
 * (GIFT_REQUIRED_EFFECTS=exp,combo). Flags: --seconds N (default 8), --concurrency N (default 64), --warmup N.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import mysql from 'mysql2/promise';
import {
  GiftServiceClient,
  OrderState,
  type GetOrderRequest,
  type GetOrderResponse,
  type ListRoomGiftsRequest,
  type ListRoomGiftsResponse,
  type SendGiftRequest,
  type SendGiftResponse,
  type UpsertGiftRequest,
  type UpsertGiftResponse,
} from '../../gen/ts/livemesh/gift/v1/gift.js';
import { LedgerServiceClient } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { RoomServiceClient, type CreateRoomRequest, type CreateRoomResponse } from '../../gen/ts/livemesh/room/v1/room.js';
import { encodeGiftList } from '../../services/gift/store/redis-catalog.js';
import { mysqlOptions, quoteIdent } from '../../services/kit/mysql.js';
import { fromRoot, repoRoot } from '../../services/kit/paths.js';
import { ensureInfra, infraUrlsFromEnv } from '../infra.js';
import { isolate } from '../isolation.js';
import { EchoClient } from './echo.js';
import { formatK, Interrupted, interruptible, machineLine, measure, parseArgs, percentile, runBench, say, setBenchTag, startServer, stopServer, type Row, type Server } from './harness.js';

setBenchTag('gift');

const VIEWERS = 2000;
const ROOMS = 50;
const STREAMER_BASE = 800_000;
const VIEWER_BASE = 900_000;

const md = (userId: string, role: string) => {
  const m = new Metadata();
  m.set('lm-user-id', userId);
  m.set('lm-role', role);
  return m;
};
const ADMIN = md('1', 'admin');
const VIEWER_MD = Array.from({ length: VIEWERS }, (_, i) => md(String(VIEWER_BASE + i), 'viewer'));

function rpc<Req, Res>(fn: (req: Req, m: Metadata, cb: (err: ServiceError | null, res: Res) => void) => unknown, self: unknown, req: Req, m: Metadata): Promise<Res> {
  return new Promise((resolve, reject) => fn.call(self, req, m, (err: ServiceError | null, res: Res) => (err ? reject(err) : resolve(res))));
}

interface EchoStub {
  echo(req: Buffer, m: Metadata, cb: (err: ServiceError | null, res: Buffer) => void): void;
  close(): void;
}

/** Raw MariaDB: single-row INSERT transactions (autocommit), `concurrency` connections, for `ms`. */
async function rawInsertRate(url: string, database: string, concurrency: number, ms: number): Promise<number> {
  const admin = await mysql.createConnection(mysqlOptions(url));
  await admin.query(`CREATE DATABASE IF NOT EXISTS ${quoteIdent(database)}`);
  await admin.end();
  const pool = mysql.createPool({ ...mysqlOptions(url, database), connectionLimit: concurrency });
  try {
    await pool.query('CREATE TABLE IF NOT EXISTS raw_insert (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, a BIGINT NOT NULL, b VARCHAR(64) NOT NULL, t DATETIME(3) NOT NULL) ENGINE=InnoDB');
    let n = 0;
    const end = performance.now() + ms;
    await Promise.all(
      Array.from({ length: concurrency }, async (_, w) => {
        while (performance.now() < end) {
          await pool.execute('INSERT INTO raw_insert (a, b, t) VALUES (?, ?, ?)', [w, `row-${n}`, new Date()]);
          n++;
        }
      }),
    );
    return n / (ms / 1000);
  } finally {
    await pool.end();
  }
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2), { seconds: 8, concurrency: 64, warmup: 1 });
  const abort = interruptible();
  const machine = machineLine();
  say(machine);
  const urls = infraUrlsFromEnv();
  const infra = await ensureInfra(urls, { dataDir: join(repoRoot(), '.data'), log: (l) => say(l) });
  const iso = isolate('benchgift', 'livemesh_bench');
  const servers: Server[] = [];
  const closers: Array<{ close(): void }> = [];
  const rows: Row[] = [];
  try {
    say('[1/7] bare grpc-js echo');
    const bare = await startServer('bare', fromRoot('dist', 'scripts', 'bench', 'bare-server.js'), {}, true, abort.signal);
    const echo = new EchoClient(bare.address, credentials.createInsecure()) as unknown as EchoStub;
    const payload = Buffer.alloc(60, 7);
    rows.push(await measure('[1/7]', 'bare grpc-js echo', bare, (done) => void echo.echo(payload, VIEWER_MD[0]!, (err) => done(err)), opts, abort.signal));
    echo.close();
    await stopServer(bare);

    say(`[2/7] raw MariaDB single-row INSERT, autocommit, ${opts.concurrency} connections, ${opts.seconds}s`);
    const rawRate = await rawInsertRate(urls.mysqlUrl, `${iso.database}_raw`, opts.concurrency, opts.seconds * 1000);
    say(`[2/7] raw inserts: ${Math.round(rawRate)}/s`);

    say('[3/7] starting Room, Ledger and Gift');
    const common = { ...iso.env, METRICS_PORT: '-1', LOG_LEVEL: 'warn' };
    const room = await startServer('room', fromRoot('dist', 'services', 'room', 'main.js'), common, false, abort.signal);
    servers.push(room);
    const ledger = await startServer('ledger', fromRoot('dist', 'services', 'ledger', 'main.js'), { ...common, MYSQL_DATABASE: `${iso.database}_ledger` }, false, abort.signal);
    servers.push(ledger);
    const gift = await startServer(
      'gift',
      fromRoot('dist', 'services', 'gift', 'main.js'),
      { ...common, MYSQL_DATABASE: `${iso.database}_gift`, ROOM_ADDR: room.address, LEDGER_ADDR: ledger.address, GIFT_REQUIRED_EFFECTS: 'exp,combo', MYSQL_POOL_SIZE: '20' },
      false,
      abort.signal,
    );
    servers.push(gift);
    const roomC = new RoomServiceClient(room.address, credentials.createInsecure());
    const ledgerC = new LedgerServiceClient(ledger.address, credentials.createInsecure());
    const giftC = new GiftServiceClient(gift.address, credentials.createInsecure());
    closers.push(roomC, ledgerC, giftC);

    say(`[4/7] catalog (30 gifts), ${ROOMS} live rooms, ${VIEWERS} viewers with COIN`);
    const giftIds: string[] = [];
    for (let i = 0; i < 30; i++) {
      const res = await rpc<UpsertGiftRequest, UpsertGiftResponse>(giftC.upsertGift, giftC, { gift: { giftId: '0', name: `gift ${i}`, priceMinor: '10', iconKey: `icons/2026/gift-${i}@3x.png`, effectKey: `fx-${i % 5}`, status: 1, version: '0', updateTime: undefined }, expectedVersion: '0' }, ADMIN);
      giftIds.push(res.gift!.giftId);
    }
    await rpc(giftC.upsertGiftGroup, giftC, { giftGroup: { giftGroupId: '0', name: 'standard', giftIds, isDefault: true, version: '0', updateTime: undefined }, expectedVersion: '0' }, ADMIN);
    const roomIds: string[] = [];
    for (let i = 0; i < ROOMS; i++) {
      const streamer = md(String(STREAMER_BASE + i), 'streamer');
      const r = await rpc<CreateRoomRequest, CreateRoomResponse>(roomC.createRoom, roomC, { streamerId: '0', title: `room ${i}`, category: 'music', coverKey: '', notice: '', requestId: `b${i}` }, streamer);
      await rpc(roomC.startLive, roomC, { roomId: r.room!.roomId }, streamer);
      roomIds.push(r.room!.roomId);
    }
    for (let i = 0; i < VIEWERS; i += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, VIEWERS - i) }, (_, j) =>
          rpc(ledgerC.topUp, ledgerC, { ownerId: String(VIEWER_BASE + i + j), amountMinor: '100000000', paymentReference: `bench-${i + j}`, provider: 'bench' }, ADMIN),
        ),
      );
    }
    const list = await rpc<ListRoomGiftsRequest, ListRoomGiftsResponse>(giftC.listRoomGifts, giftC, { roomId: roomIds[0]!, ifNoneMatch: '' }, VIEWER_MD[0]!);
    const raw = encodeGiftList(list.gifts.map((g) => ({ ...g, status: 'active' as const, updatedAt: g.updateTime ?? new Date() })));
    const zipped = gzipSync(raw);

    let seq = 0;
    const sendTo = (pickRoom: () => string) => (done: (err: ServiceError | null) => void) => {
      const v = seq++ % VIEWERS;
      const req: SendGiftRequest = { idempotencyKey: `b-${seq}`, roomId: pickRoom(), giftId: giftIds[seq % giftIds.length]!, count: 1, expectedUnitPriceMinor: '0', senderName: `viewer ${v}` };
      giftC.sendGift(req, VIEWER_MD[v]!, (err) => done(err));
    };
    rows.push(await measure('[5/7]', `A. SendGift, ${VIEWERS} viewers → ${ROOMS} rooms`, gift, sendTo(() => roomIds[seq % ROOMS]!), opts, abort.signal));
    rows.push(await measure('[6/7]', `B. SendGift, ${VIEWERS} viewers → 1 hot room`, gift, sendTo(() => roomIds[0]!), opts, abort.signal));

    const rate = Math.max(10, Math.round((rows[2]?.callsPerSec ?? 100) / 2));
    say(`[7/7] C. open loop at ${rate}/s (half of A) for ${opts.seconds}s`);
    const latencies: number[] = [];
    const sampled: string[] = [];
    let errors = 0;
    await new Promise<void>((resolve) => {
      const start = performance.now();
      let sent = 0;
      let inflight = 0;
      let finished = false;
      const timer = setInterval(() => {
        const due = Math.floor(((performance.now() - start) / 1000) * rate);
        if (performance.now() - start >= opts.seconds * 1000 || abort.signal.aborted) {
          clearInterval(timer);
          finished = true;
          if (inflight === 0) resolve();
          return;
        }
        for (; sent < due; sent++) {
          const t0 = performance.now();
          const v = seq++ % VIEWERS;
          inflight++;
          giftC.sendGift(
            { idempotencyKey: `c-${seq}`, roomId: roomIds[seq % ROOMS]!, giftId: giftIds[0]!, count: 1, expectedUnitPriceMinor: '0', senderName: '' },
            VIEWER_MD[v]!,
            (err: ServiceError | null, res: SendGiftResponse) => {
              inflight--;
              latencies.push(performance.now() - t0);
              if (err) errors++;
              else if (sent % 10 === 0 && res.order) sampled.push(res.order.orderId);
              if (finished && inflight === 0) resolve();
            },
          );
        }
      }, 2);
    });
    if (abort.signal.aborted) throw new Interrupted();
    const sortedC = Float64Array.from(latencies).sort();
    say(`C: ${latencies.length} sends, p50 ${percentile(sortedC, 0.5).toFixed(2)} ms, p99 ${percentile(sortedC, 0.99).toFixed(2)} ms, errors ${errors}; waiting for ${sampled.length} sampled orders to be DONE`);
    const doneMs: number[] = [];
    const deadline = Date.now() + 60_000;
    for (const orderId of sampled) {
      for (;;) {
        const o = (await rpc<GetOrderRequest, GetOrderResponse>(giftC.getOrder, giftC, { orderId }, ADMIN)).order;
        if (o?.state === OrderState.ORDER_STATE_DONE && o.endTime && o.createTime) {
          doneMs.push(o.endTime.getTime() - o.createTime.getTime());
          break;
        }
        if (Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const sortedDone = Float64Array.from(doneMs).sort();

    const [echoRow, a, b] = rows;
    const fmt = (r: Row | undefined) =>
      r ? `| ${r.label} | ${Math.round(r.callsPerSec).toLocaleString('en-US')} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.errors}${r.errors ? ` (${r.errorKinds})` : ''} |` : '';
    process.stdout.write(
      [
        '',
        machine,
        `${opts.concurrency} calls in flight, ${opts.warmup}s warm-up, ${opts.seconds}s measured; Room, Ledger (2 shards) and Gift each one process; GIFT_REQUIRED_EFFECTS=exp,combo.`,
        '',
        '| run | calls/s | p50 ms | p99 ms | errors |',
        '|---|---:|---:|---:|---:|',
        fmt(echoRow),
        `| raw MariaDB single-row INSERT (autocommit, ${opts.concurrency} connections) | ${Math.round(rawRate).toLocaleString('en-US')} | | | |`,
        fmt(a),
        fmt(b),
        `| C. SendGift open loop at ${rate}/s | ${Math.round(latencies.length / opts.seconds).toLocaleString('en-US')} | ${percentile(sortedC, 0.5).toFixed(2)} | ${percentile(sortedC, 0.99).toFixed(2)} | ${errors} |`,
        '',
        `A / raw inserts: ${a ? (a.callsPerSec / rawRate).toFixed(2) : 'n/a'}×; B / A: ${a && b ? (b.callsPerSec / a.callsPerSec).toFixed(2) : 'n/a'}×`,
        `Send → DONE (server times, ${doneMs.length}/${sampled.length} sampled orders from C): p50 ${percentile(sortedDone, 0.5).toFixed(0)} ms, p99 ${percentile(sortedDone, 0.99).toFixed(0)} ms`,
        `Gift list of ${list.gifts.length} gifts in Redis: ${raw.length} bytes of protobuf, ${zipped.length} bytes gzip (${((zipped.length / raw.length) * 100).toFixed(0)}%)`,
        `Targets: A ≥ 2,000 sends/s; C p99 ≤ 25 ms; send → DONE p99 ≤ 1,000 ms. Total sends: ${formatK(seq)}.`,
        '',
      ].join('\n'),
    );
    return 0;
  } finally {
    for (const c of closers) c.close();
    await Promise.all(servers.map(stopServer));
    const keys = await iso.cleanup();
    say(`cleanup: dropped ${iso.database}* databases, ${keys} Redis keys and the bench's streams`);
    await infra.stop();
  }
}

runBench(main);
