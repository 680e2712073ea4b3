/**
 * One room's live events on this replica: a NATS subscription that exists only while the replica
 * has viewers in the room, and the batching that turns a burst of events into a few frames.
 *
 * Every viewer of a room gets the same stream, so the per-connection cap (events per second) is
 * applied once per room per tick and each frame is encoded once and written to every socket: at
 * 10,000 viewers the cost of an event is one decode plus one buffer write per viewer, never one
 * encode per viewer. Within a frame, notices come first, then gifts (paid: deferred, never
 * dropped, when over the cap), then chat (sampled down to what the cap leaves), then the latest
 * like burst and online count (coalesced).
 */
import { EventPriority, RoomNoticeKind, RoomEvent } from '../../gen/ts/livemesh/chat/v1/chat.js';
import { presentEvent } from '../present.js';

/** An event decoded once, with its wire bytes kept for protobuf frames and its JSON made on demand. */
export class PreparedEvent {
  private jsonText: string | undefined;

  constructor(
    readonly event: RoomEvent,
    readonly bytes: Uint8Array,
  ) {}

  get json(): string {
    this.jsonText ??= JSON.stringify(presentEvent(this.event));
    return this.jsonText;
  }

  static decode(bytes: Uint8Array): PreparedEvent {
    return new PreparedEvent(RoomEvent.decode(bytes), bytes);
  }

  static of(event: RoomEvent): PreparedEvent {
    return new PreparedEvent(event, RoomEvent.encode(event).finish());
  }
}

export type Format = 'json' | 'protobuf';

/**
 * A complete WebSocket frame (RFC 6455 §5.2) as a server sends it: FIN, the opcode, the payload
 * length, no mask, no extensions (permessage-deflate is off). Built once per room per tick and
 * written as is to every viewer's socket, instead of letting the WebSocket library frame the same
 * bytes again for each of 10,000 viewers.
 */
export function wsFrame(payload: Buffer, binary: boolean): Buffer {
  const opcode = binary ? 0x82 : 0x81;
  const n = payload.length;
  const header = n < 126 ? Buffer.from([opcode, n]) : n < 65536 ? Buffer.from([opcode, 126, n >> 8, n & 0xff]) : Buffer.alloc(10);
  if (n >= 65536) {
    header[0] = opcode;
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([header, payload]);
}

/** A frame as both encodings, each built only if some viewer wants it. */
export class Frame {
  private text: string | undefined;
  private binary: Buffer | undefined;
  private readonly framed: Partial<Record<Format, Buffer>> = {};

  constructor(
    readonly type: 'events' | 'replay',
    readonly events: PreparedEvent[],
    /** Chat events this tick left out to stay under the cap. */
    readonly dropped = 0,
  ) {}

  /** `{"type":"events","events":[…],"dropped":n}`, spliced from each event's cached JSON. */
  get json(): string {
    this.text ??= `{"type":"${this.type}","events":[${this.events.map((e) => e.json).join(',')}],"dropped":${this.dropped}}`;
    return this.text;
  }

  /**
   * A `livemesh.chat.v1.ListRecentMessagesResponse` (field 1: repeated RoomEvent), built by
   * concatenating each event's wire bytes behind its tag and length: no re-encoding.
   */
  get protobuf(): Buffer {
    if (!this.binary) {
      const parts: Buffer[] = [];
      for (const e of this.events) parts.push(Buffer.from([0x0a]), varint(e.bytes.length), Buffer.from(e.bytes.buffer, e.bytes.byteOffset, e.bytes.byteLength));
      this.binary = Buffer.concat(parts);
    }
    return this.binary;
  }

  /** The whole WebSocket frame for `format`, ready to write to a socket. */
  wire(format: Format): Buffer {
    return (this.framed[format] ??= wsFrame(format === 'json' ? Buffer.from(this.json) : this.protobuf, format === 'protobuf'));
  }
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

export interface FeedLimits {
  /** Events per second each connection may receive (notices excepted). */
  eventsPerS: number;
  /** Tick length; the cap per tick is eventsPerS × tickMs / 1000. */
  tickMs: number;
  /** Gifts held back by the cap beyond this are dropped (a room far past any sane rate). */
  maxPendingGifts: number;
}

export type Kind = 'notice' | 'gift' | 'chat' | 'likes' | 'online';

export function kindOf(e: RoomEvent): Kind {
  if (e.gift) return 'gift';
  if (e.chat) return 'chat';
  if (e.likes) return 'likes';
  if (e.notice?.kind === RoomNoticeKind.ROOM_NOTICE_KIND_ONLINE_COUNT) return 'online';
  if (e.notice || e.priority === EventPriority.EVENT_PRIORITY_CRITICAL) return 'notice';
  return 'chat';
}

/** Batches and caps one room's events; `tick()` returns the frame to send, if any. */
export class RoomFeed {
  private notices: PreparedEvent[] = [];
  private gifts: PreparedEvent[] = [];
  private chats: PreparedEvent[] = [];
  private likes: PreparedEvent | undefined;
  private online: PreparedEvent | undefined;
  private tokens: number;
  private readonly perTick: number;
  droppedGifts = 0;
  droppedChats = 0;

  constructor(private readonly limits: FeedLimits) {
    this.perTick = (limits.eventsPerS * limits.tickMs) / 1000;
    this.tokens = this.perTick;
  }

  get pending(): boolean {
    return this.notices.length + this.gifts.length + this.chats.length > 0 || this.likes !== undefined || this.online !== undefined;
  }

  push(e: PreparedEvent): void {
    switch (kindOf(e.event)) {
      case 'notice':
        this.notices.push(e);
        break;
      case 'gift':
        if (this.gifts.length >= this.limits.maxPendingGifts) this.droppedGifts++;
        else this.gifts.push(e);
        break;
      case 'chat':
        this.chats.push(e);
        break;
      case 'likes':
        this.likes = e;
        break;
      case 'online':
        this.online = e;
        break;
    }
  }

  /**
   * Spends this tick's budget: all notices; gifts in order while tokens last (the rest wait for
   * the next tick); a uniform sample of chat for what is left (the rest are dropped: chat is a
   * river, a late message is worse than a missing one); then the latest likes and online count.
   * Unused budget carries over for one tick, so a quiet second followed by a burst is smoothed.
   */
  tick(sample: (n: number, k: number) => number[] = sampleIndexes): Frame | undefined {
    if (!this.pending) {
      this.tokens = Math.min(this.tokens + this.perTick, this.perTick * 2);
      return undefined;
    }
    this.tokens = Math.min(this.tokens + this.perTick, this.perTick * 2);
    const out: PreparedEvent[] = this.notices;
    this.notices = [];
    let budget = Math.floor(this.tokens);
    const gifts = this.gifts.splice(0, budget);
    out.push(...gifts);
    budget -= gifts.length;
    let dropped = 0;
    if (this.chats.length <= budget) {
      out.push(...this.chats);
      budget -= this.chats.length;
    } else {
      for (const i of sample(this.chats.length, budget)) out.push(this.chats[i] as PreparedEvent);
      dropped = this.chats.length - budget;
      budget = 0;
    }
    this.chats = [];
    for (const low of [this.likes, this.online]) {
      if (low && budget > 0) {
        out.push(low);
        budget--;
      }
    }
    this.likes = undefined;
    this.online = undefined;
    this.droppedChats += dropped;
    this.tokens -= Math.floor(this.tokens) - budget;
    return out.length > 0 || dropped > 0 ? new Frame('events', out, dropped) : undefined;
  }
}

/** k distinct indexes out of n, uniformly, in increasing order (so sampled chat keeps its order). */
function sampleIndexes(n: number, k: number): number[] {
  if (k <= 0) return [];
  const picked = new Set<number>();
  // Floyd's algorithm: k iterations, no array of size n.
  for (let j = n - k; j < n; j++) {
    const t = Math.floor(Math.random() * (j + 1));
    picked.add(picked.has(t) ? j : t);
  }
  return [...picked].sort((a, b) => a - b);
}
