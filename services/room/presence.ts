import { invalidField, Violations } from '../../kit/domain-error.js';
import { requireCaller, type Caller } from '../../kit/identity.js';
import type { RoomReader } from './reads.js';
import { CONTROL_CHARS, LIMITS, type RoomRecord } from './rooms.js';

/** Redis side of the online count: one sorted set of sessions per room, plus the live-room tally. */
export interface PresenceStore {
  /** Adds or refreshes the session and drops sessions not seen for `ttlMs`; returns the count. */
  enter(roomId: string, session: string, nowMs: number, ttlMs: number): Promise<number>;
  leave(roomId: string, session: string): Promise<number>;
  count(roomId: string): Promise<number>;
  /** Live rooms with the most viewers, as last tallied by enter and leave. */
  hottest(limit: number): Promise<Array<{ roomId: string; online: number }>>;
}

/**
 * Who is in a room, kept cheaply: entering adds the (viewer, session) pair to the room's set, so
 * re-entering from the same session is not counted twice; nothing is broadcast on enter or leave.
 * A session that vanishes without leaving drops out after the session TTL, so clients re-send
 * EnterRoom now and then while watching to stay counted.
 */
export class Presence {
  constructor(
    private readonly reader: RoomReader,
    private readonly store: PresenceStore,
    private readonly sessionTtlMs: number,
    private readonly clock: () => number = Date.now,
  ) {}

  async enter(caller: Caller | undefined, roomId: string, sessionId: string): Promise<{ room: RoomRecord; online: number }> {
    const member = memberOf(caller, sessionId);
    const room = await this.reader.get(roomId);
    return { room, online: await this.store.enter(roomId, member, this.clock(), this.sessionTtlMs) };
  }

  async leave(caller: Caller | undefined, roomId: string, sessionId: string): Promise<number> {
    const member = memberOf(caller, sessionId);
    await this.reader.get(roomId);
    return this.store.leave(roomId, member);
  }

  async count(roomId: string): Promise<number> {
    await this.reader.get(roomId);
    return this.store.count(roomId);
  }
}

function memberOf(callerOrNone: Caller | undefined, sessionId: string): string {
  const caller = requireCaller(callerOrNone);
  const v = new Violations();
  v.check(sessionId.length > 0, 'session_id', `is required: the client's session (1 to ${LIMITS.sessionId} characters)`);
  v.check(sessionId.length <= LIMITS.sessionId, 'session_id', `must be at most ${LIMITS.sessionId} characters`);
  v.check(!CONTROL_CHARS.test(sessionId), 'session_id', 'must not contain control characters');
  v.throwIfAny();
  return `${caller.userId}/${sessionId}`;
}

export interface HotRoom {
  room: RoomRecord;
  online: number;
}

const HOT_LIST_SIZE = 100;

/**
 * The hot list is computed every few seconds from the presence tally and served from memory: at
 * a big event everyone opens the home screen at once, and none of them should cost a Redis read.
 * If Redis is down at refresh time, the last list keeps being served.
 */
export class HotRooms {
  private current: { rooms: HotRoom[]; at: Date } | undefined;
  private refreshing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: PresenceStore,
    private readonly reader: RoomReader,
    private readonly onError: (err: unknown) => void,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.refresh().catch(this.onError), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async list(limit: number): Promise<{ rooms: HotRoom[]; at: Date }> {
    const n = limit === 0 ? 20 : limit;
    if (!Number.isInteger(n) || n < 1 || n > HOT_LIST_SIZE) throw invalidField('limit', `must be between 1 and ${HOT_LIST_SIZE} (0 means 20)`);
    if (!this.current) await this.refresh();
    const current = this.current ?? { rooms: [], at: this.clock() };
    return { rooms: current.rooms.slice(0, n), at: current.at };
  }

  /** Recomputes the list; concurrent callers share one computation. */
  refresh(): Promise<void> {
    this.refreshing ??= this.compute().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async compute(): Promise<void> {
    const at = this.clock();
    const tally = await this.store.hottest(HOT_LIST_SIZE);
    const online = new Map(tally.map((t) => [t.roomId, t.online]));
    const { rooms } = tally.length === 0 ? { rooms: [] } : await this.reader.batchGet(tally.map((t) => t.roomId));
    this.current = {
      rooms: (rooms as RoomRecord[]).filter((r) => r.status === 'live').map((room) => ({ room, online: online.get(room.roomId) ?? 0 })),
      at,
    };
  }
}
