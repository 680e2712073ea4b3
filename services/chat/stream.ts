import { invalidField, Violations } from '../../kit/domain-error.js';
import { isPositiveInt64 } from '../../kit/identity.js';
import { roomEvent, type ChatEvent, type EventBus, type Payload } from './events.js';
import { checkRoomId } from './model.js';
import type { ChatStore, HistoryLimits, StreamPosition } from './ports.js';
import type { RoomDirectory } from './rooms.js';

/** Events one GetRoomHistory may return, and what it returns when the caller names no limit. */
export const HISTORY_READ = { max: 10_000, default: 1000 } as const;

/** Where the use cases publish: every event takes the room's next offset on its way out. */
export interface RoomPublisher {
  publish(roomId: string, payload: Payload, at?: Date): Promise<ChatEvent>;
  /** An event to append as part of another step (a message's admission), with the history's limits. */
  prepare(roomId: string, payload: Payload, at: Date): { event: ChatEvent; limits: HistoryLimits };
  /** Publishes an event that another step already appended at `offset`. */
  announce(event: ChatEvent, offset: string): ChatEvent;
}

export interface Recovery {
  recovered: boolean;
  events: ChatEvent[];
  position: StreamPosition;
}

/**
 * Each room's event stream, Centrifugo's model: one offset counter per room for every kind of
 * event, a bounded history (size and age) holding the latest events, and an epoch naming that
 * history. An event is appended (offset assigned and kept, in one Redis script) before it is
 * published, so whatever a gateway has seen can be replayed, and the offset comes from one place
 * however many Chat replicas and BFF gateways there are. A client that reconnects with the last
 * offset it saw, and its epoch, gets every event it missed, or is told that it cannot.
 */
export class RoomStream implements RoomPublisher {
  constructor(
    private readonly rooms: RoomDirectory,
    private readonly store: ChatStore,
    private readonly bus: EventBus,
    private readonly limits: HistoryLimits,
    private readonly clock: () => number = Date.now,
  ) {}

  async publish(roomId: string, payload: Payload, at = new Date(this.clock())): Promise<ChatEvent> {
    const event = roomEvent(roomId, '0', payload, at);
    const { offset } = await this.store.append(event, this.limits, this.clock());
    return this.announce(event, offset);
  }

  prepare(roomId: string, payload: Payload, at: Date): { event: ChatEvent; limits: HistoryLimits } {
    return { event: roomEvent(roomId, '0', payload, at), limits: this.limits };
  }

  announce(event: ChatEvent, offset: string): ChatEvent {
    const published = { ...event, seq: offset };
    this.bus.publish(published);
    return published;
  }

  /** GetRoomHistory: the events after `afterOffset` when the history holds all of them and the epoch matches. */
  async recover(roomId: string, afterOffset: string, epoch: string, limit: number): Promise<Recovery> {
    checkRoomId(roomId);
    const v = new Violations();
    const after = afterOffset || '0';
    v.check(after === '0' || isPositiveInt64(after), 'after_offset', 'must be 0 or a positive offset');
    v.check(/^[A-Za-z0-9]{0,32}$/.test(epoch), 'epoch', 'must be up to 32 letters and digits, as a stream position gave it');
    v.throwIfAny();
    const n = limit === 0 ? HISTORY_READ.default : limit;
    if (!Number.isInteger(n) || n < 1 || n > HISTORY_READ.max) throw invalidField('limit', `must be between 1 and ${HISTORY_READ.max} (0 means ${HISTORY_READ.default})`);
    await this.rooms.get(roomId);
    const read = await this.store.history(roomId, after, n, this.limits, this.clock());
    if (!read.covered || (epoch !== '' && epoch !== read.position.epoch)) return { recovered: false, events: [], position: read.position };
    return { recovered: true, events: read.events, position: read.position };
  }
}
