import type { DomainError } from '../../kit/domain-error.js';
import { invalidField } from '../../kit/domain-error.js';
import { draining, subscriberTooSlow, tooManySubscribers } from './errors.js';
import { atLeast, type ChatEvent, type EventBus, type Priority } from './events.js';
import type { Messages } from './messages.js';
import { checkRoomId, LIMITS } from './model.js';
import type { RoomDirectory } from './rooms.js';

/** Where a subscriber's events go: the transport adapts its stream to this. */
export interface EventSink {
  write(event: ChatEvent, replayed: boolean): void;
  /** Events written but not yet handed to the network (the transport's own buffer). */
  pending(): number;
  /** Ends the stream, with an error when the subscriber is being cut off. */
  end(err?: DomainError): void;
}

export interface SubscribeInput {
  roomId: string;
  /**
   * Events below it are not delivered; 'all' (none asked for) delivers every event. 'unknown' is a
   * value the transport could not read: refused here, so that a request with several mistakes is
   * answered about the room id first.
   */
  minPriority: Priority | 'all' | 'unknown';
  replayRecent: number;
}

/**
 * One subscriber. Events go straight to the transport, whose buffer is the subscriber's queue: a
 * subscriber with `limit` events still waiting there when the next arrives is cut off with
 * SUBSCRIBER_TOO_SLOW. So one stalled reader holds at most `limit` events and never slows the
 * others, who are fed from the same NATS message independently. The limit must cover a burst:
 * NATS can hand a replica hundreds of events in one tick, before any buffer drains.
 */
class Subscriber {
  closed = false;
  /** Live events held back until the replay has been written, so replay comes first. */
  private held: ChatEvent[] | undefined = [];

  constructor(
    private readonly sink: EventSink,
    private readonly minPriority: Priority | 'all',
    private readonly limit: number,
    private readonly onCut: (s: Subscriber) => void,
  ) {}

  live(event: ChatEvent): void {
    if (this.closed || (this.minPriority !== 'all' && !atLeast(event.priority, this.minPriority))) return;
    if (this.held) this.held.push(event);
    else this.deliver(event, false);
  }

  /** Writes the replay, then the live events that arrived meanwhile (skipping ones the replay had). */
  replayThenLive(replay: ChatEvent[]): void {
    for (const event of replay) this.deliver(event, true);
    const replayedSeqs = new Set(replay.map((e) => e.seq));
    const held = this.held ?? [];
    this.held = undefined;
    for (const event of held) if (!replayedSeqs.has(event.seq)) this.deliver(event, false);
  }

  close(err?: DomainError): void {
    if (this.closed) return;
    this.closed = true;
    this.held = undefined;
    this.sink.end(err);
  }

  private deliver(event: ChatEvent, replayed: boolean): void {
    if (this.closed) return;
    const behind = this.sink.pending();
    if (behind >= this.limit) {
      this.close(subscriberTooSlow(behind));
      this.onCut(this);
      return;
    }
    this.sink.write(event, replayed);
  }
}

/**
 * Subscribe's fan-out on one replica: one NATS subscription per room with subscribers here,
 * shared by all of them, opened with the first and closed with the last.
 */
export class Subscriptions {
  private readonly feeds = new Map<string, { subs: Set<Subscriber>; stop(): void; ready: Promise<void> }>();
  private count = 0;
  /** Set by closeAll: a Subscribe still opening then is ended the same way. */
  private drained = false;
  /** Subscribers cut off for being too slow, since start (for metrics). */
  cut = 0;

  constructor(
    private readonly rooms: RoomDirectory,
    private readonly messages: Messages,
    private readonly bus: EventBus,
    private readonly opts: { bufferEvents: number; maxSubscribers: number },
  ) {}

  get active(): number {
    return this.count;
  }

  /** Opens a subscription; the returned function closes it (client gone). */
  async open(input: SubscribeInput, sink: EventSink): Promise<() => void> {
    checkRoomId(input.roomId);
    const minPriority = input.minPriority;
    if (minPriority === 'unknown') throw invalidField('min_priority', 'must be one of the EventPriority values');
    if (!Number.isInteger(input.replayRecent) || input.replayRecent < 0 || input.replayRecent > LIMITS.recent) throw invalidField('replay_recent', `must be between 0 and ${LIMITS.recent}`);
    const room = await this.rooms.get(input.roomId);
    if (this.drained) throw draining();
    if (this.count >= this.opts.maxSubscribers) throw tooManySubscribers(this.opts.maxSubscribers);

    const sub = new Subscriber(sink, minPriority, this.opts.bufferEvents, (s) => {
      this.cut++;
      this.remove(room.roomId, s);
    });
    this.add(room.roomId, sub);
    try {
      // Live events start only once NATS has this room's subscription, so nothing published after
      // the replay is read can fall into a gap between the two.
      await this.feeds.get(room.roomId)?.ready;
      // The replay is chat messages only (NORMAL): a subscriber above that gets none.
      const replay = input.replayRecent > 0 && (minPriority === 'all' || atLeast('normal', minPriority)) ? (await this.messages.recent(room.roomId, input.replayRecent, '0')).events : [];
      sub.replayThenLive(replay);
    } catch (err) {
      this.remove(room.roomId, sub);
      throw err;
    }
    return () => {
      this.remove(room.roomId, sub);
      sub.close();
    };
  }

  /**
   * Ends every stream (drain) with UNAVAILABLE / DRAINING, never OK, so each client subscribes
   * again and reaches another replica.
   */
  closeAll(): void {
    this.drained = true;
    const err = draining();
    for (const [roomId, feed] of this.feeds) for (const s of [...feed.subs]) {
      this.remove(roomId, s);
      s.close(err);
    }
  }

  private add(roomId: string, sub: Subscriber): void {
    let feed = this.feeds.get(roomId);
    if (!feed) {
      const subs = new Set<Subscriber>();
      const handle = this.bus.subscribe(roomId, (event) => {
        for (const s of subs) s.live(event);
      });
      feed = { subs, stop: () => handle.stop(), ready: handle.ready };
      this.feeds.set(roomId, feed);
    }
    feed.subs.add(sub);
    this.count++;
  }

  private remove(roomId: string, sub: Subscriber): void {
    const feed = this.feeds.get(roomId);
    if (!feed?.subs.delete(sub)) return;
    this.count--;
    if (feed.subs.size === 0) {
      feed.stop();
      this.feeds.delete(roomId);
    }
  }
}
