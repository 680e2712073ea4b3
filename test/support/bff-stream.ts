import { connect } from '@nats-io/transport-node';
import { WebSocket } from 'ws';
import { EventPriority, ListRecentMessagesResponse, RoomEvent } from '../../gen/ts/livemesh/chat/v1/chat.js';
import type { Isolation } from '../../scripts/isolation.js';
import { natsServers } from '../../kit/nats.js';

/** What a test client saw: JSON control messages, and every event (JSON-presented or decoded protobuf) in arrival order. */
export interface StreamClient {
  ws: WebSocket;
  control: Array<Record<string, unknown>>;
  /** seq and type of every event received, replay frames included. */
  events: Array<{ seq: string; type: string; frame: 'events' | 'replay' }>;
  dropped: number;
  closed: Promise<{ code: number; reason: string }>;
}

/** Opens `GET /v1/rooms/:id/stream` and collects what arrives; resolves once the hello is in. */
export async function openStream(base: string, roomId: string, query = '', opts: { autoPong?: boolean } = {}): Promise<StreamClient> {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/v1/rooms/${roomId}/stream${query ? `?${query}` : ''}`, { autoPong: opts.autoPong ?? true });
  const client: StreamClient = {
    ws,
    control: [],
    events: [],
    dropped: 0,
    closed: new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }))),
  };
  ws.on('message', (data: Buffer, isBinary) => {
    if (isBinary) {
      for (const e of ListRecentMessagesResponse.decode(data).events) client.events.push({ seq: e.seq, type: e.gift ? 'gift' : e.chat ? 'chat' : e.likes ? 'likes' : 'notice', frame: 'events' });
      return;
    }
    const msg = JSON.parse(data.toString()) as { type: string; events?: Array<{ seq: string; type: string }>; dropped?: number };
    if (msg.type === 'events' || msg.type === 'replay') {
      for (const e of msg.events ?? []) client.events.push({ seq: e.seq, type: e.type, frame: msg.type });
      client.dropped += msg.dropped ?? 0;
    } else client.control.push(msg);
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject);
    const check = () => (client.control.some((m) => m.type === 'hello') ? resolve() : setTimeout(check, 5));
    ws.once('open', check);
  });
  return client;
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
