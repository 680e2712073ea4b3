/**
 * One trace from the phone to the database and on into the consumers: the whole mesh and the BFF
 * as processes, exporting over OTLP/HTTP to a real receiver started here, every trace sampled.
 * One gift sent through the BFF must come back as one connected trace covering the BFF's route,
 * Gift, the Ledger and its MySQL statements, the JetStream publish from the outbox, and the Chat
 * and Ranking consumers' handling of that very order, and the room frame the BFF writes to a viewer.
 */
import { credentials, type Client } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenVerifier as AppTokens } from '../bff/auth.js';
import { DEV_JWT_SECRET, DEV_TOPUP_SECRET } from '../bff/config.js';
import * as giftPb from '../gen/ts/livemesh/gift/v1/gift.js';
import * as roomPb from '../gen/ts/livemesh/room/v1/room.js';
import { isolate } from '../scripts/isolation.js';
import { startMesh, type Mesh } from '../scripts/mesh.js';
import { createLogger } from '../kit/logger.js';
import { inSpan, startTracing } from '../kit/tracing.js';
import { providerTopup } from './support/bff.js';
import { openStream } from './support/bff-stream.js';
import { until } from './support/gift.js';
import { KIND, startOtlpReceiver, type ReceivedSpan } from './support/otlp.js';
import { as, unaryApi } from './support/room.js';

const iso = isolate('tracing');
let mesh: Mesh;
let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
const clients: Client[] = [];

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  mesh = await startMesh({
    replicas: 1,
    env: {
      ...iso.env,
      LOG_LEVEL: 'warn',
      RATE_LIMIT_IP_PER_S: '0',
      RATE_LIMIT_USER_PER_S: '0',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '1',
      // Export within a fraction of a second rather than the default 5 s.
      OTEL_BSP_SCHEDULE_DELAY: '200',
    },
  });
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await mesh?.stop();
  await receiver?.close();
  await iso.cleanup();
});

function api<C extends Client, M extends object>(Ctor: new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => C, service: 'room' | 'gift', pb: M) {
  const c = new Ctor(mesh.addresses(service)[0]!, credentials.createInsecure());
  clients.push(c);
  return unaryApi(c, pb);
}

const describeSpan = (s: ReceivedSpan) => `${s.service}:${s.name}`;

describe('tracing (OpenTelemetry over OTLP/HTTP)', () => {
  it('one gift through the BFF is one trace: BFF route → Gift → Ledger → MySQL, the JetStream publish, and the Chat and Ranking consumers', async () => {
    const rooms = api(roomPb.RoomServiceClient, 'room', roomPb);
    const gifts = api(giftPb.GiftServiceClient, 'gift', giftPb);
    const streamer = as('9101', 'streamer');
    const room = (await rooms.createRoom({ title: 'traced stage', requestId: 'trace-room' }, streamer)).room!;
    await rooms.startLive({ roomId: room.roomId }, streamer);
    const admin = as('1', 'admin');
    const rose = (await gifts.upsertGift({ gift: { name: 'rose', priceMinor: '100', iconKey: 'i/rose.png', effectKey: 'rose' } }, admin)).gift!;
    await gifts.upsertGiftGroup({ giftGroup: { name: 'standard', giftIds: [rose.giftId], isDefault: true } }, admin);
    const top = await providerTopup(mesh.bffUrl, DEV_TOPUP_SECRET, { paymentReference: 'trace-pay-1', userId: '9102', amountMinor: '1000', provider: 'test' });
    expect(top.status, await top.clone().text()).toBe(201);

    // A viewer in the room: the gift's room frame, written to its socket, belongs to the trace too.
    const viewer = await openStream(mesh.bffUrl, room.roomId);
    const token = await new AppTokens(DEV_JWT_SECRET).sign({ userId: '9102', role: 'viewer', name: 'Fan' });
    const sent = await until(
      'the gift to be accepted (the BFF caches the room a moment)',
      () => fetch(`${mesh.bffUrl}/v1/rooms/${room.roomId}/gifts`, { method: 'POST', body: JSON.stringify({ giftId: rose.giftId, count: 1 }), headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'idempotency-key': 'trace-gift-1' } }),
      (res) => res.status === 201 || res.status === 200,
    );
    const { order } = (await sent.json()) as { order: { id: string } };
    await until('the order to be DONE', () => gifts.getOrder({ orderId: order.id }, admin), (o) => o.order?.state === giftPb.OrderState.ORDER_STATE_DONE, 30_000);

    // The consumers' spans name the order; their trace is the gift's.
    const consumersOf = () => receiver.spans.filter((s) => s.kind === KIND.consumer && s.attributes['livemesh.orderId'] === order.id);
    const consumed = await until('the Chat and Ranking consumers’ spans for the order', consumersOf, (spans) => ['chat', 'ranking'].every((svc) => spans.some((s) => s.service === svc)), 30_000);
    const traceIds = new Set(consumed.map((s) => s.traceId));
    expect(traceIds.size, consumed.map(describeSpan).join(', ')).toBe(1);
    const traceId = [...traceIds][0]!;

    // Spans of one trace arrive from six processes in separate exports: wait until every part is in.
    const inTrace = () => receiver.spans.filter((s) => s.traceId === traceId);
    const has = {
      bffRoute: (s: ReceivedSpan) => s.service === 'bff' && s.kind === KIND.server && s.attributes['http.route'] === '/v1/rooms/:id/gifts',
      bffCallsGift: (s: ReceivedSpan) => s.service === 'bff' && s.kind === KIND.client && s.name === 'livemesh.gift.v1.GiftService/SendGift',
      giftServes: (s: ReceivedSpan) => s.service === 'gift' && s.kind === KIND.server && s.name === 'livemesh.gift.v1.GiftService/SendGift',
      giftCallsLedger: (s: ReceivedSpan) => s.service === 'gift' && s.kind === KIND.client && s.attributes['rpc.service'] === 'livemesh.ledger.v1.LedgerService',
      ledgerServes: (s: ReceivedSpan) => s.service === 'ledger' && s.kind === KIND.server,
      ledgerMysql: (s: ReceivedSpan) => s.service === 'ledger' && s.kind === KIND.client && s.attributes['db.system.name'] === 'mysql',
      giftMysql: (s: ReceivedSpan) => s.service === 'gift' && s.kind === KIND.client && s.attributes['db.system.name'] === 'mysql' && /outbox/.test(s.attributes['db.query.text'] ?? ''),
      publish: (s: ReceivedSpan) => s.service === 'gift' && s.kind === KIND.producer && /gift\.paid/.test(s.name),
      chatConsumer: (s: ReceivedSpan) => s.service === 'chat' && s.kind === KIND.consumer && s.attributes['messaging.consumer.group.name'] === 'chat-barrage',
      rankingConsumer: (s: ReceivedSpan) => s.service === 'ranking' && s.kind === KIND.consumer && s.attributes['messaging.consumer.group.name'] === 'ranking-boards',
      roomFrame: (s: ReceivedSpan) => s.service === 'bff' && s.name === 'ws room frame send',
    };
    const missing = (spans: ReceivedSpan[]) => Object.entries(has).filter(([, test]) => !spans.some(test)).map(([name]) => name);
    // Every span's parent is in the trace too: one connected tree (parents end, and so are
    // exported, after their children, so this also waits for the last exports).
    const orphans = (spans: ReceivedSpan[]) => {
      const ids = new Set(spans.map((s) => s.spanId));
      return spans.filter((s) => s.parentSpanId !== '' && !ids.has(s.parentSpanId)).map(describeSpan);
    };
    const spans = await until('every part of the gift’s trace to be exported', inTrace, (s) => missing(s).length === 0 && orphans(s).length === 0, 30_000).catch(() => inTrace());
    expect(missing(spans), spans.map(describeSpan).join('\n')).toEqual([]);
    expect(orphans(spans)).toEqual([]);
    // Its only root is the BFF's route.
    const roots = spans.filter((s) => s.parentSpanId === '');
    expect(roots.map(describeSpan)).toEqual([describeSpan(spans.find(has.bffRoute)!)]);

    // The causal chain, parent by parent: consumer ← publish ← … ← the BFF's route.
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const chain = (s: ReceivedSpan) => {
      const out: string[] = [];
      for (let at: ReceivedSpan | undefined = s; at; at = byId.get(at.parentSpanId)) out.push(describeSpan(at));
      return out;
    };
    const rankingChain = chain(spans.find(has.rankingConsumer)!);
    expect(rankingChain[1]).toMatch(/^gift:.*gift\.paid.* publish$/);
    expect(rankingChain.at(-1)).toBe(describeSpan(spans.find(has.bffRoute)!));
    // Chat's barrage event carried the consumer's context over core NATS to the BFF's gateway.
    expect(chain(spans.find(has.roomFrame)!)[1]).toMatch(/^chat:/);
    expect(viewer.events.some((e) => e.type === 'gift')).toBe(true);
    viewer.ws.close();
    const ledgerMysqlChain = chain(spans.find(has.ledgerMysql)!);
    expect(ledgerMysqlChain).toEqual(expect.arrayContaining([expect.stringMatching(/^ledger:livemesh\.ledger\.v1\.LedgerService\//), 'gift:livemesh.gift.v1.GiftService/SendGift', 'bff:livemesh.gift.v1.GiftService/SendGift']));
  }, 90_000);

  it("a caller's traceparent is continued: the BFF's route span is a child of the phone's span", async () => {
    const res = await fetch(`${mesh.bffUrl}/v1/rooms/1/gifts`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' } });
    expect(res.status).toBeGreaterThanOrEqual(400);
    const spans = await until('the request’s span', () => receiver.spans.filter((s) => s.traceId === '0af7651916cd43dd8448eb211c80319c'), (s) => s.length > 0, 15_000);
    expect(spans.find((s) => s.service === 'bff' && s.kind === KIND.server)?.parentSpanId).toBe('b7ad6b7169203331');
  });

  it('log lines written inside a span carry its trace_id; lines outside carry none', async () => {
    // This test process traces too (to the same receiver), with the logger every process uses.
    const tracing = await startTracing('tracing-test', 'r0', { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
    const lines: string[] = [];
    const log = createLogger({ service: 'tracing-test', replica: 'r0', level: 'info' }, { write: (line: string) => void lines.push(line) });
    let traceId = '';
    await inSpan('logged work', {}, async (span) => {
      traceId = span.spanContext().traceId;
      await new Promise((resolve) => setTimeout(resolve, 5));
      log.info('inside');
    });
    log.info('outside');
    await tracing.shutdown();
    const [inside, outside] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(inside).toMatchObject({ msg: 'inside', trace_id: traceId });
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(outside).toMatchObject({ msg: 'outside' });
    expect(outside).not.toHaveProperty('trace_id');
  });
});
