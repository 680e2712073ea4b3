import { Server, ServerCredentials, status as Code, type ServiceDefinition, type ServiceError, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import * as chatPb from '../../gen/ts/livemesh/chat/v1/chat.js';
import { ChatServiceClient } from '../../gen/ts/livemesh/chat/v1/chat.js';
import { GiftPaidEvent } from '../../gen/ts/livemesh/gift/v1/gift.js';
import * as rankingPb from '../../gen/ts/livemesh/ranking/v1/ranking.js';
import { RankingServiceClient } from '../../gen/ts/livemesh/ranking/v1/ranking.js';
import { errorInfoOf } from '../../kit/grpc-errors.js';
import { ensureGiftPaidStream, giftPaidStreamName, giftPaidSubject } from '../../services/gift/client.js';
import { chatConfigShape, wireChat } from '../../services/chat/service.js';
import { rankingConfigShape, wireRanking } from '../../services/ranking/service.js';
import type { Isolation } from '../../scripts/isolation.js';
import { failure, unaryApi } from './room.js';
import { startInProcess } from './service.js';
import { natsServers } from '../../kit/nats.js';

/**
 * Test support for Chat and Ranking: in-process servers wired exactly as their processes are,
 * promise-returning clients, a publisher of paid-gift events shaped like Gift's relay, and a
 * small stand-in for a service that does not exist on main yet.
 */

/** A Chat server; ROOM_ADDR must point at a Room server (tests start one with startRoom). */
export const startChat = (iso: Isolation, env: Record<string, string>) => startInProcess('chat', chatConfigShape, wireChat, ChatServiceClient, iso, { LEDGER_ADDR: '', ...env });
export type ChatServer = Awaited<ReturnType<typeof startChat>>;

export const startRanking = (iso: Isolation, env: Record<string, string> = {}) => startInProcess('ranking', rankingConfigShape, wireRanking, RankingServiceClient, iso, env);
export type RankingServer = Awaited<ReturnType<typeof startRanking>>;

export const chatApi = (client: ChatServiceClient) => unaryApi(client, chatPb);
export const rankingApi = (client: RankingServiceClient) => unaryApi(client, rankingPb);

/** failure() plus the ErrorInfo metadata (retry_after_ms, mute_end_time, …). */
export async function refusal(p: Promise<unknown>): Promise<Awaited<ReturnType<typeof failure>> & { metadata: Record<string, string> }> {
  let meta: Record<string, string> = {};
  const f = await failure(
    p.catch((err: ServiceError) => {
      meta = errorInfoOf(err.metadata)?.metadata ?? {};
      throw err;
    }),
  );
  return { ...f, metadata: meta };
}

/** The text of the notices untilLive() publishes; follow() keeps them apart from what the test watches. */
const PROBE_TEXT = 'probe: is this stream live yet?';
const isProbe = (r: chatPb.SubscribeResponse) => r.event?.notice?.kind === chatPb.RoomNoticeKind.ROOM_NOTICE_KIND_ANNOUNCEMENT && r.event.notice.text === PROBE_TEXT;

/**
 * Follows a Subscribe stream, collecting what it yields and how it ended. Probe notices from
 * untilLive() are counted in `probes`, not in `got`, so they never show in a test's assertions.
 */
export function follow(client: ChatServiceClient, req: Partial<chatPb.SubscribeRequest>) {
  const stream = client.subscribe(chatPb.SubscribeRequest.fromPartial(req));
  const got: chatPb.SubscribeResponse[] = [];
  const probes = { seen: 0 };
  const state: { ended?: { code: string; reason: string | undefined } } = {};
  stream.on('data', (r: chatPb.SubscribeResponse) => (isProbe(r) ? probes.seen++ : got.push(r)));
  stream.on('error', (err: ServiceError) => (state.ended = { code: Code[err.code] ?? String(err.code), reason: errorInfoOf(err.metadata)?.reason }));
  stream.on('end', () => (state.ended ??= { code: 'OK', reason: undefined }));
  return { stream, got, probes, state, events: () => got.map((r) => r.event as chatPb.RoomEvent) };
}
export type Followed = ReturnType<typeof follow>;

/**
 * Resolves once every stream in `subs` receives live events from the room. A Subscribe stream
 * gets live events only once its replica's NATS subscription for the room is in place, and
 * nothing tells the client when that is: an event published earlier is lost to it, and a fixed
 * sleep is a race a loaded machine loses. So this publishes a CRITICAL probe notice on the room's
 * subject, as Chat publishes events, until each stream has received one (follow() keeps probes
 * out of `got`).
 */
export async function untilLive(nats: { raw(subjectName: string, data: Uint8Array): void; flush(): Promise<unknown> }, roomId: string, ...subs: Followed[]): Promise<void> {
  const probe = chatPb.RoomEvent.encode({
    seq: '0',
    priority: chatPb.EventPriority.EVENT_PRIORITY_CRITICAL,
    eventTime: new Date(),
    roomId,
    notice: { kind: chatPb.RoomNoticeKind.ROOM_NOTICE_KIND_ANNOUNCEMENT, onlineCount: '0', text: PROBE_TEXT, policy: undefined },
  }).finish();
  await eventually(
    async () => {
      for (const s of subs) if (s.state.ended) throw new Error(`the stream ended before it was live: ${JSON.stringify(s.state.ended)}`);
      if (subs.every((s) => s.probes.seen > 0)) return;
      nats.raw(`chat.room.${roomId}`, probe);
      await nats.flush();
      throw new Error(`no probe received yet on ${subs.filter((s) => s.probes.seen === 0).length} of ${subs.length} streams`);
    },
    20_000,
    50,
  );
}

/** Polls until `check` stops throwing; never asserts on speed, only on the eventual state. */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}

/** Passes once a durable consumer of the paid-gift stream has nothing left to deliver or to be acknowledged. */
export async function giftConsumerIdle(iso: Isolation, durable: string): Promise<void> {
  const nc = await connect({ servers: natsServers(iso.urls.natsUrl) });
  try {
    const info = await (await jetstreamManager(nc)).consumers.info(giftPaidStreamName(iso.natsPrefix), durable);
    if (info.num_pending !== 0 || info.num_ack_pending !== 0) throw new Error(`${durable}: ${info.num_pending} pending, ${info.num_ack_pending} unacknowledged`);
  } finally {
    await nc.close();
  }
}

/** A plain NATS connection under the isolation's prefix, for untilLive's probes where no giftPublisher is at hand. */
export async function natsProbe(iso: Isolation) {
  const nc = await connect({ servers: natsServers(iso.urls.natsUrl) });
  return {
    raw(subjectName: string, data: Uint8Array) {
      nc.publish(iso.natsPrefix ? `${iso.natsPrefix}.${subjectName}` : subjectName, data);
    },
    flush: () => nc.flush(),
    close: () => nc.close(),
  };
}

/** Publishes paid-gift events to JetStream the way Gift's outbox relay will (subject, msgID). */
export async function giftPublisher(iso: Isolation) {
  const nc = await connect({ servers: natsServers(iso.urls.natsUrl) });
  await ensureGiftPaidStream(nc, iso.natsPrefix);
  const js = jetstream(nc);
  return {
    async publish(event: Partial<GiftPaidEvent>, msgID?: string) {
      const e = GiftPaidEvent.fromPartial(event);
      return js.publish(giftPaidSubject(iso.natsPrefix, e.roomId), GiftPaidEvent.encode(e).finish(), { msgID: msgID ?? (e.attempt > 0 ? `${e.orderId}-r${e.attempt}` : e.orderId) });
    },
    /** Core publish of raw bytes on any subject under the isolation's prefix. */
    raw(subjectName: string, data: Uint8Array) {
      nc.publish(iso.natsPrefix ? `${iso.natsPrefix}.${subjectName}` : subjectName, data);
    },
    flush: () => nc.flush(),
    close: () => nc.close(),
  };
}

/**
 * A stand-in for a livemesh service that is not on main yet (Ledger's GetBalances, Gift's
 * ListOrders), serving the real contract from test data, so the calling code runs its real gRPC
 * client end to end. Replaced by the real service in the tests once it lands.
 */
export async function startStandIn(definition: ServiceDefinition, impl: UntypedServiceImplementation): Promise<{ address: string; calls: string[]; close(): Promise<void> }> {
  const server = new Server();
  const calls: string[] = [];
  const counted: UntypedServiceImplementation = {};
  for (const [name, fn] of Object.entries(impl)) {
    counted[name] = ((c: unknown, cb: unknown) => {
      calls.push(name);
      return (fn as (c: unknown, cb: unknown) => void)(c, cb);
    }) as never;
  }
  server.addService(definition, counted);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { address: `127.0.0.1:${port}`, calls, close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}
