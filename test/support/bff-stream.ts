import { connect } from '@nats-io/transport-node';
import { WebSocket } from 'ws';
import { EventPriority, ListRecentMessagesResponse, RoomEvent } from '../../gen/ts/livemesh/chat/v1/chat.js';
import type { Isolation } from '../../scripts/isolation.js';
import { natsServers } from '../../kit/nats.js';
import { streamMessage } from '../../bff/responses.js';

/** A presented event, typed loosely: tests walk it field by field. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- deliberately `any`, as json() in bff.ts
type Presented = Record<string, any>;

/** An event as a test looks at it: seq, type, which frame kind brought it, and (JSON clients) the presented event. */
export interface SeenEvent {
  seq: string;
  type: string;
  frame: 'events' | 'replay';
  body?: Presented;
}

/** What a test client saw: JSON control messages, and every event (JSON-presented or decoded protobuf) in arrival order. */
export interface StreamClient {
  ws: WebSocket;
  control: Array<Record<string, unknown>>;
  /** The hello (always the first control message). */
  hello: Record<string, unknown>;
  /** seq and type of every event received, replay frames included. */
  events: SeenEvent[];
  /** The dropped count of each events frame, in arrival order. */
  frameDrops: number[];
  dropped: number;
  closed: Promise<{ code: number; reason: string }>;
}

const violations: string[] = [];

/**
 * JSON messages any stream opened here received that do not match their documented schema
 * (bff/responses.ts, the OpenAPI document's Stream* components); reading them clears the list.
 */
export function undocumentedMessages(): string[] {
  return violations.splice(0);
}

/** Opens `GET /v1/rooms/:id/stream` and collects what arrives; resolves once the hello is in. */
export async function openStream(base: string, roomId: string, query = '', opts: { autoPong?: boolean } = {}): Promise<StreamClient> {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/v1/rooms/${roomId}/stream${query ? `?${query}` : ''}`, { autoPong: opts.autoPong ?? true });
  const client: StreamClient = {
    ws,
    control: [],
    hello: {},
    events: [],
    frameDrops: [],
    dropped: 0,
    closed: new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }))),
  };
  ws.on('message', (data: Buffer, isBinary) => {
    if (isBinary) {
      const frame = ListRecentMessagesResponse.decode(data);
      for (const e of frame.events) client.events.push({ seq: e.seq, type: e.gift ? 'gift' : e.chat ? 'chat' : e.likes ? 'likes' : e.room ? 'room' : 'notice', frame: 'events' });
      client.frameDrops.push(frame.dropped);
      client.dropped += frame.dropped;
      return;
    }
    const raw: unknown = JSON.parse(data.toString());
    const documented = streamMessage.safeParse(raw);
    if (!documented.success) violations.push(`${data.toString().slice(0, 300)}: ${documented.error.message.slice(0, 500)}`);
    const msg = raw as { type: string; events?: Array<Presented & { seq: string; type: string }>; dropped?: number };
    if (msg.type === 'events' || msg.type === 'replay') {
      for (const e of msg.events ?? []) client.events.push({ seq: e.seq, type: e.type, frame: msg.type, body: e });
      if (msg.type === 'events') client.frameDrops.push(msg.dropped ?? 0);
      client.dropped += msg.dropped ?? 0;
    } else {
      if (msg.type === 'hello') client.hello = msg;
      client.control.push(msg);
    }
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject);
    const check = () => (client.control.some((m) => m.type === 'hello') ? resolve() : setTimeout(check, 5));
    ws.once('open', check);
  });
  return client;
}

/** The offset a client reconnects with: its last event's seq, or the hello's offset when it saw none since. */
export function lastOffset(c: StreamClient): string {
  const seqs = c.events.map((e) => BigInt(e.seq));
  const fromHello = BigInt((c.hello.offset as string | null) ?? '0');
  return String(seqs.reduce((a, b) => (b > a ? b : a), fromHello));
}

/** The upgrade refusal a client gets: HTTP status and the JSON body. */
export function refusal(base: string, path: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}${path}`);
    ws.on('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) }));
    });
    ws.on('open', () => {
      ws.terminate();
      reject(new Error(`${path} was accepted`));
    });
    ws.on('error', () => undefined);
  });
}

/** Publishes RoomEvents on a room's subject exactly as Chat does (protobuf on `chat.room.<id>`). */
export async function roomPublisher(iso: Isolation) {
  const nc = await connect({ servers: natsServers(iso.urls.natsUrl) });
  let seq = 0;
  return {
    publish(roomId: string, payload: Partial<RoomEvent>): string {
      const event = RoomEvent.fromPartial({ seq: String(++seq), roomId, eventTime: new Date(), priority: EventPriority.EVENT_PRIORITY_NORMAL, ...payload });
      nc.publish(`${iso.natsPrefix}.chat.room.${roomId}`, RoomEvent.encode(event).finish());
      return event.seq;
    },
    chat(roomId: string, text = 'hello'): string {
      return this.publish(roomId, { chat: { messageId: String(seq + 1), senderId: '7', senderName: 'fan', senderLevel: 1, text, mergedCount: 1, senderRole: 1 } });
    },
    gift(roomId: string, senderName = 'fan'): string {
      return this.publish(roomId, { priority: EventPriority.EVENT_PRIORITY_HIGH, gift: { orderId: String(seq + 1), senderId: '7', senderName, senderLevel: 1, giftId: '1', count: 1, comboCount: '1', amountMinor: '100' } });
    },
    flush: () => nc.flush(),
    close: () => nc.close(),
  };
}
