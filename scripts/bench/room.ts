/**
 * `npm run bench:room`: the Room read path against a bare grpc-js server, and cross-region
 * visibility of writes. Every server is its own child process; this process drives the load.
 *
 *   1. bare grpc-js echo (the baseline: grpc-js's own cost per call), sent a payload the size of
 *      a GetRoom response with the same identity metadata, so client and wire costs match;
 *   2. Room GetRoom for one room, a local-cache hit (what a hot room costs per viewer read);
 *   3. Room BatchGetRooms of 100 rooms, all fields (local cache) and with a two-field read mask
 *      (one Redis pipeline of 100 HMGETs per call);
 *   4. write-to-visibility: UpdateRoom in region "east", then GetRoom against a replica of region
 *      "west" (its own Redis database) until it answers the new version; 200 writes, one at a time;
 *   5. Redis bytes per room (MEMORY USAGE), a typical room and the largest the limits allow.
 *
 * Flags: --seconds N (each measured window, default 5), --concurrency N (default 32), --warmup N.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { credentials, type Metadata, type ServiceError } from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import {
  RoomServiceClient,
  type CreateRoomRequest,
  type CreateRoomResponse,
  type GetRoomRequest,
  GetRoomResponse,
  type Room,
  type UpdateRoomRequest,
  type UpdateRoomResponse,
} from '../../gen/ts/livemesh/room/v1/room.js';
import type { Role } from '../../kit/identity.js';
import { fromRoot, repoRoot } from '../../kit/paths.js';
import { roomKey } from '../../services/room/store/redis-rooms.js';
import { ensureInfra, infraUrlsFromEnv } from '../infra.js';
import { isolate, type Isolation } from '../isolation.js';
import { sharedUserMetadata } from '../tokens.js';
import { EchoClient } from './echo.js';
import { formatK, Interrupted, interruptible, machineLine, measure, parseArgs, runBench, say, setBenchTag, startServer, stopServer, type BenchOptions, type Row, type Server } from './harness.js';
import { percentile } from '../stats.js';

setBenchTag('room');

const WEST_DB = 3;
const WRITES = 200;

/** A user's token as the BFF mints it, in metadata shared across calls (renewed before it expires). */
const identity = (userId: string, role: Role) => sharedUserMetadata(userId, role);
const STREAMER = () => identity('424242', 'streamer');

/** A room like the ones the bench creates, to size the echo baseline's payload. */
const SAMPLE_ROOM: Room = {
  roomId: '1000',
  streamerId: '424242',
  title: 'bench room 0',
  category: 'music',
  coverKey: 'covers/2026/11/bench.jpg',
  notice: 'welcome to the benchmark',
  status: 1,
  giftGroupId: '0',
  version: '1',
  createTime: new Date(),
  updateTime: new Date(),
  liveStartTime: undefined,
};

interface EchoStub {
  echo(req: Buffer, md: Metadata, cb: (err: ServiceError | null, res: Buffer) => void): void;
  close(): void;
}
const VIEWER = () => identity('7', 'viewer');

const done = <T>(resolve: (v: T) => void, reject: (e: Error) => void) => (err: Error | null, res: T) => (err ? reject(err) : resolve(res));
const createRoom = (c: RoomServiceClient, req: CreateRoomRequest) => new Promise<CreateRoomResponse>((ok, fail) => c.createRoom(req, STREAMER(), done(ok, fail)));
const updateRoom = (c: RoomServiceClient, req: UpdateRoomRequest) => new Promise<UpdateRoomResponse>((ok, fail) => c.updateRoom(req, STREAMER(), done(ok, fail)));
const getRoom = (c: RoomServiceClient, req: GetRoomRequest) => new Promise<GetRoomResponse>((ok, fail) => c.getRoom(req, VIEWER(), done(ok, fail)));

function westRedisUrl(iso: Isolation): string {
  const u = new URL(iso.urls.redisUrl);
  u.pathname = `/${WEST_DB}`;
  return u.toString();
}

async function createRooms(client: RoomServiceClient, n: number, tag: string, fields: Partial<Room> = {}): Promise<Room[]> {
  const out: Room[] = [];
  for (let i = 0; i < n; i += 20) {
    const batch = Array.from({ length: Math.min(20, n - i) }, (_, j) =>
      createRoom(client, {
        streamerId: '0',
        title: `bench room ${i + j}`,
        category: 'music',
        coverKey: 'covers/2026/11/bench.jpg',
        notice: 'welcome to the benchmark',
        requestId: `${tag}-${i + j}`,
        ...fields,
      }).then((r) => r.room as Room),
    );
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

interface Visibility {
  fromCallMs: Float64Array;
  fromAckMs: Float64Array;
  writeMs: Float64Array;
}

/** Writes in the east, one at a time, and polls the west replica until each new version shows. */
async function measureVisibility(east: RoomServiceClient, west: RoomServiceClient, room: Room, signal: AbortSignal): Promise<Visibility> {
  const fromCall = new Float64Array(WRITES);
  const fromAck = new Float64Array(WRITES);
  const write = new Float64Array(WRITES);
  for (let i = 0; i < WRITES; i++) {
    if (signal.aborted) throw new Interrupted();
    const t0 = performance.now();
    const res = await updateRoom(east, { roomId: room.roomId, room: { ...room, title: `title ${i}` }, updateMask: ['title'], expectedVersion: '0' });
    const t1 = performance.now();
    const version = res.room?.version;
    for (;;) {
      const seen = await getRoom(west, { roomId: room.roomId, readMask: ['version'] });
      if (seen.room?.version === version) break;
      if (performance.now() - t1 > 10_000) throw new Error(`west never served version ${version} of room ${room.roomId}`);
    }
    const t2 = performance.now();
    fromCall[i] = t2 - t0;
    fromAck[i] = t2 - t1;
    write[i] = t1 - t0;
    if ((i + 1) % 50 === 0) say(`[5/6] visibility: ${i + 1}/${WRITES} writes seen in the west`);
  }
  return { fromCallMs: fromCall.sort(), fromAckMs: fromAck.sort(), writeMs: write.sort() };
}

async function roomBytes(client: RoomServiceClient, iso: Isolation): Promise<{ typical: number; worst: number }> {
  const [typical] = await createRooms(client, 1, 'bytes-typical', { title: '周五晚上的卡拉OK 一起唱', notice: '九点开始点歌，欢迎大家', coverKey: 'covers/2026/11/abc123.jpg' });
  const [worst] = await createRooms(client, 1, 'bytes-worst', { title: '😀'.repeat(100), notice: '😀'.repeat(200), coverKey: 'k'.repeat(200), category: 'c'.repeat(32) });
  const redis = new Redis(iso.urls.redisUrl, { keyPrefix: iso.redisPrefix });
  try {
    return {
      typical: Number(await redis.memory('USAGE', roomKey(typical?.roomId ?? '0'), 'SAMPLES', 0)),
      worst: Number(await redis.memory('USAGE', roomKey(worst?.roomId ?? '0'), 'SAMPLES', 0)),
    };
  } finally {
    redis.disconnect();
  }
}

function fmtRow(r: Row, base: Row | undefined, unit = ''): string {
  const ratio = base ? `${(r.callsPerSec / base.callsPerSec).toFixed(2)}×` : '1.00×';
  return `| ${r.label} | ${Math.round(r.callsPerSec).toLocaleString('en-US')}${unit} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${Math.round(r.serverCpuUsPerCall)} | ${r.errors} | ${ratio} |`;
}

function report(rows: Row[], vis: Visibility, bytes: { typical: number; worst: number }, opts: BenchOptions): string {
  const [bare, ...rest] = rows;
  const getRoom = rows[1];
  const ms = (a: Float64Array, q: number) => percentile(a, q).toFixed(2);
  return [
    `${opts.concurrency} calls in flight over one channel, ${opts.warmup}s warm-up, ${opts.seconds}s measured per row; server CPU from /proc/<pid>/stat.`,
    '',
    '| server / call | calls/s | p50 ms | p99 ms | server CPU µs/call | errors | vs bare |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...(bare ? [fmtRow(bare, undefined)] : []),
    ...rest.map((r) => fmtRow(r, bare)),
    '',
    `GetRoom (cache hit) / bare grpc-js echo: ${bare && getRoom ? (getRoom.callsPerSec / bare.callsPerSec).toFixed(2) : 'n/a'}× (target ≥ 0.70)`,
    `BatchGetRooms(100): rooms/s = calls/s × 100 (${rows
      .slice(2)
      .map((r) => `${r.label}: ${formatK(Math.round(r.callsPerSec * 100))} rooms/s`)
      .join('; ')})`,
    '',
    `| write → visible in region west (${WRITES} writes) | p50 ms | p99 ms | max ms |`,
    '|---|---:|---:|---:|',
    `| from the UpdateRoom call | ${ms(vis.fromCallMs, 0.5)} | ${ms(vis.fromCallMs, 0.99)} | ${ms(vis.fromCallMs, 1)} |`,
    `| from its acknowledgement | ${ms(vis.fromAckMs, 0.5)} | ${ms(vis.fromAckMs, 0.99)} | ${ms(vis.fromAckMs, 1)} |`,
    `| the UpdateRoom call itself (MySQL + Redis + JetStream) | ${ms(vis.writeMs, 0.5)} | ${ms(vis.writeMs, 0.99)} | ${ms(vis.writeMs, 1)} |`,
    '',
    `Invalidation p99 (from the call) ${ms(vis.fromCallMs, 0.99)} ms (target < 50 ms).`,
    `Redis bytes per room (MEMORY USAGE): typical ${bytes.typical}, largest the limits allow ${bytes.worst}.`,
  ].join('\n');
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const abort = interruptible();
  const machine = machineLine();
  say(machine);
  const infra = await ensureInfra(infraUrlsFromEnv(), { dataDir: join(repoRoot(), '.data'), log: (line) => say(line) });
  const iso = isolate('benchroom', 'livemesh_bench');
  const servers: Server[] = [];
  const clients: Array<{ close(): void }> = [];
  const rows: Row[] = [];
  try {
    say(`[1/6] bare grpc-js echo server`);
    const bare = await startServer('bare grpc-js', fromRoot('dist', 'scripts', 'bench', 'bare-server.js'), {}, true, abort.signal);
    servers.push(bare);
    const echo = new EchoClient(bare.address, credentials.createInsecure()) as unknown as EchoStub;
    clients.push(echo);
    const payload = Buffer.from(GetRoomResponse.encode({ room: SAMPLE_ROOM }).finish());
    rows.push(await measure('[1/6]', `bare grpc-js echo (${payload.length} B)`, bare, (done) => void echo.echo(payload, VIEWER(), (err) => done(err)), opts, abort.signal));
    await stopServer(bare);
    servers.splice(servers.indexOf(bare), 1);

    const roomScript = fromRoot('dist', 'services', 'room', 'main.js');
    const roomEnv = { ...iso.env, METRICS_PORT: '0', LOG_LEVEL: 'warn' };
    say(`[2/6] Room east (database ${iso.database}, Redis prefix ${iso.redisPrefix})`);
    const east = await startServer('room east', roomScript, { ...roomEnv, REGION: 'east' }, false, abort.signal);
    servers.push(east);
    const eastClient = new RoomServiceClient(east.address, credentials.createInsecure());
    clients.push(eastClient);
    const [hot] = await createRooms(eastClient, 1, 'hot');
    const getReq = { roomId: hot?.roomId ?? '0', readMask: undefined };
    rows.push(await measure('[2/6]', 'Room GetRoom (local-cache hit)', east, (done) => void eastClient.getRoom(getReq, VIEWER(), (err) => done(err)), opts, abort.signal));

    say('[3/6] creating 100 rooms for BatchGetRooms');
    const hundred = (await createRooms(eastClient, 100, 'batch')).map((r) => r.roomId);
    const full = { roomIds: hundred, readMask: undefined };
    rows.push(await measure('[3/6]', 'Room BatchGetRooms(100), all fields', east, (done) => void eastClient.batchGetRooms(full, VIEWER(), (err) => done(err)), opts, abort.signal));
    const masked = { roomIds: hundred, readMask: ['title', 'status'] };
    rows.push(
      await measure('[4/6]', 'Room BatchGetRooms(100), mask title,status (Redis)', east, (done) => void eastClient.batchGetRooms(masked, VIEWER(), (err) => done(err)), opts, abort.signal),
    );

    say(`[5/6] Room west (Redis database ${WEST_DB}) for write-to-visibility`);
    const west = await startServer('room west', roomScript, { ...roomEnv, REGION: 'west', REDIS_URL: westRedisUrl(iso) }, false, abort.signal);
    servers.push(west);
    const westClient = new RoomServiceClient(west.address, credentials.createInsecure());
    clients.push(westClient);
    const vis = await measureVisibility(eastClient, westClient, hot as Room, abort.signal);

    say('[6/6] Redis bytes per room');
    const bytes = await roomBytes(eastClient, iso);
    process.stdout.write(`\n${machine}\n${report(rows, vis, bytes, opts)}\n`);
    return 0;
  } finally {
    for (const c of clients) c.close();
    await Promise.all(servers.map(stopServer));
    const west = new Redis(westRedisUrl(iso));
    const westKeys = await west.keys(`${iso.redisPrefix}*`);
    if (westKeys.length > 0) await west.del(...westKeys);
    west.disconnect();
    const keys = await iso.cleanup();
    say(`cleanup: dropped database ${iso.database}, ${keys + westKeys.length} Redis key(s) and the bench's JetStream stream`);
    await infra.stop();
  }
}

runBench(main);
