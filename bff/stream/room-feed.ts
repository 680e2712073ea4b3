/**
 * One room's live events on this replica: the batching that turns a burst of events into a few
 * frames, and the flow control of a crowded room.
 *
 * Events reach the feed in offset order (the gateway reorders what NATS delivers) and leave it in
 * that order, within a frame and across frames: priority decides what is left out, never the
 * order. A room with at most `sampleAbove` viewers on this gateway gets every event. Above it,
 * every viewer of the room gets the same capped stream (events per second, applied once per room
 * per tick): notices, room updates and gifts always go (they are never dropped), chat is sampled
 * down to what the cap leaves, and like bursts and online counts are coalesced to the latest.
 * Each frame says how many events it left out. Each frame is encoded once and written to every
 * socket: at 10,000 viewers the cost of an event is one decode plus one buffer write per viewer.
 */
import { EventPriority, RoomNoticeKind, RoomEvent } from '../../gen/ts/livemesh/chat/v1/chat.js';
import { performance } from 'node:perf_hooks';
import { presentEvent } from '../present.js';

/** An event decoded once, with its wire bytes kept for protobuf frames and its JSON made on demand. */
export class PreparedEvent {
  private jsonText: string | undefined;
  /** The event's offset in the room's stream (RoomEvent.seq; per-room counts stay far below 2^53). */
  readonly offset: number;
  readonly kind: Kind;

  constructor(
    readonly event: RoomEvent,
    readonly bytes: Uint8Array,
  ) {
    this.offset = Number(event.seq);
    this.kind = kindOf(event);
  }

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
    /** In offset order. */
    readonly events: PreparedEvent[],
    /** Events of the room this frame left out (sampled chat, superseded likes and counts, lost ones). */
    readonly dropped = 0,
    /** The chat events left out, for the senders among the viewers (a sender always gets its own line). */
    readonly leftOut: PreparedEvent[] = [],
  ) {}

  /** Offset of the first and last event; NaN for a frame without events. */
  get first(): number {
    return this.events[0]?.offset ?? NaN;
  }

  get last(): number {
    return this.events[this.events.length - 1]?.offset ?? NaN;
  }

  /** The same frame without the events at or before `offset` (a viewer who joined after them). */
  after(offset: number): Frame {
    return new Frame(this.type, this.events.filter((e) => e.offset > offset), this.dropped);
  }

  /** The frame a sender gets: with its own left-out lines put back in their places. */
  withOwn(own: PreparedEvent[]): Frame {
    const events = [...this.events, ...own].sort((a, b) => a.offset - b.offset);
    return new Frame(this.type, events, this.dropped - own.length);
  }

  /** `{"type":"events","events":[…],"dropped":n}`, spliced from each event's cached JSON. */
  get json(): string {
    this.text ??= `{"type":"${this.type}","events":[${this.events.map((e) => e.json).join(',')}],"dropped":${this.dropped}}`;
    return this.text;
  }

  /**
   * A `livemesh.chat.v1.ListRecentMessagesResponse` (field 1: repeated RoomEvent, field 3: the
   * dropped count when there is one), built by concatenating each event's wire bytes behind its
   * tag and length: no re-encoding.
   */
  get protobuf(): Buffer {
    if (!this.binary) {
      const parts: Buffer[] = [];
      for (const e of this.events) parts.push(Buffer.from([0x0a]), varint(e.bytes.length), Buffer.from(e.bytes.buffer, e.bytes.byteOffset, e.bytes.byteLength));
      if (this.dropped > 0) parts.push(Buffer.from([0x18]), varint(this.dropped));
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
  /** Events per second each connection may receive once the room is past `sampleAbove` viewers (gifts and notices are never held to it). */
  eventsPerS: number;
  /** Tick length; the cap per tick is eventsPerS × tickMs / 1000. */
  tickMs: number;
  /** Viewers of one room on this gateway up to which every event goes to every viewer. */
  sampleAbove: number;
}

export type Kind = 'notice' | 'gift' | 'chat' | 'likes' | 'online';

export function kindOf(e: RoomEvent): Kind {
  if (e.gift) return 'gift';
  if (e.chat) return 'chat';
  if (e.likes) return 'likes';
  if (e.notice?.kind === RoomNoticeKind.ROOM_NOTICE_KIND_ONLINE_COUNT) return 'online';
  if (e.notice || e.room || e.priority === EventPriority.EVENT_PRIORITY_CRITICAL) return 'notice';
  return 'chat';
}

/** Batches and caps one room's events; `tick()` returns the frame to send, if any. */
export class RoomFeed {
  private queue: PreparedEvent[] = [];
  /** Events left out before they reached the queue (lost in transit, shed by a switch); reported in the next frame. */
  private skipped = 0;
  private tokens: number;
  private readonly perTick: number;
  /** When the budget was last refilled (ms, monotonic). */
  private refilledAt: number | undefined;
  droppedChats = 0;

  constructor(private readonly limits: FeedLimits) {
    this.perTick = (limits.eventsPerS * limits.tickMs) / 1000;
    this.tokens = this.perTick;
  }

  /**
   * The budget grows with the time that passed, not with the number of ticks: a tick that runs
   * late on a busy process brings the events of the whole interval and the allowance for it.
   * At most one tick's worth is carried beyond that.
   */
  private refill(nowMs: number): void {
    const earned = this.refilledAt === undefined ? this.perTick : (this.limits.eventsPerS * Math.max(0, nowMs - this.refilledAt)) / 1000;
    this.refilledAt = nowMs;
    this.tokens = Math.min(this.tokens + earned, earned + this.perTick);
  }

  /** Events must come in offset order. */
  push(e: PreparedEvent): void {
    this.queue.push(e);
  }

  /** Counts events that will never be in a frame, so the next frame says so. */
  skip(n: number): void {
    this.skipped += n;
  }

  /**
   * The frame for this tick. Without sampling: everything queued. With it: every notice and gift
   * (they cost tokens but are never held back: holding one would reorder the stream), a uniform
   * sample of chat for what the budget leaves (a late message is worse than a missing one), then
   * the latest like burst and online count if budget remains. Unused budget carries over for one
   * tick, so a quiet second followed by a burst is smoothed.
   */
  tick(sampling: boolean, nowMs = performance.now(), sample: (n: number, k: number) => number[] = sampleIndexes): Frame | undefined {
    this.refill(nowMs);
    if (this.queue.length === 0 && this.skipped === 0) return undefined;
    const queue = this.queue;
    this.queue = [];
    const lost = this.skipped;
    this.skipped = 0;
    if (!sampling) return new Frame('events', queue, lost);

    let budget = Math.floor(this.tokens);
    const keep = new Uint8Array(queue.length);
    const chats: number[] = [];
    let lastLikes = -1;
    let lastOnline = -1;
    queue.forEach((e, i) => {
      if (e.kind === 'notice' || e.kind === 'gift') {
        keep[i] = 1;
        budget--;
      } else if (e.kind === 'chat') chats.push(i);
      else if (e.kind === 'likes') lastLikes = i;
      else lastOnline = i;
    });
    budget = Math.max(0, budget);
    const leftOut: PreparedEvent[] = [];
    if (chats.length <= budget) {
      for (const i of chats) keep[i] = 1;
      budget -= chats.length;
    } else {
      const picked = new Set(sample(chats.length, budget));
      chats.forEach((i, j) => {
        if (picked.has(j)) keep[i] = 1;
        else leftOut.push(queue[i] as PreparedEvent);
      });
      this.droppedChats += chats.length - budget;
      budget = 0;
    }
    for (const i of [lastLikes, lastOnline]) {
      if (i >= 0 && budget > 0) {
        keep[i] = 1;
        budget--;
      }
    }
    const out = queue.filter((_, i) => keep[i] === 1);
    this.tokens = Math.max(0, this.tokens - (Math.floor(this.tokens) - budget));
    return new Frame('events', out, lost + queue.length - out.length, leftOut);
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
