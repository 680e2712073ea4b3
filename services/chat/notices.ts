import { roomEvent, type EventBus } from './events.js';
import type { RoomInfo } from './model.js';
import type { RoomDirectory } from './rooms.js';
import type { ChatStore } from './ports.js';

/**
 * Turns room changes into LIVE_STARTED / LIVE_STOPPED notices. Every replica sees every change;
 * a Redis script records each room's last status by version, so exactly one replica (the first)
 * announces a change, and title edits or repeated events announce nothing.
 */
export class LiveNotices {
  constructor(
    private readonly rooms: RoomDirectory,
    private readonly store: ChatStore,
    private readonly bus: EventBus,
    private readonly onError: (err: unknown, roomId: string) => void,
    private readonly clock: () => number = Date.now,
  ) {}

  changed(room: RoomInfo): void {
    this.rooms.changed(room);
    this.store.roomStatusChanged(room.roomId, room.version, room.live ? 'live' : 'offline').then(
      (seq) => {
        if (!seq) return;
        this.bus.publish(roomEvent(room.roomId, seq, { notice: { kind: room.live ? 'live_started' : 'live_stopped' } }, new Date(this.clock())));
      },
      (err: unknown) => this.onError(err, room.roomId),
    );
  }
}

/** Where online counts come from: the Room service's hot list (live rooms by viewers). */
export interface OnlineSource {
  hottest(limit: number): Promise<Array<{ roomId: string; online: number }>>;
}

/** Rooms whose online count is announced: the hot list's length, the rooms most people watch. */
const ANNOUNCED_ROOMS = 100;

/**
 * ONLINE_COUNT notices, throttled: enter and leave are never broadcast. Every `intervalMs` one
 * replica (whichever takes the turn in Redis) reads the hot rooms' counts from the Room service
 * and announces those that moved by `minChangePct` percent since their last announcement. Rooms
 * outside the hot list get no count notices; their viewers see the count EnterRoom returned.
 */
export class OnlineNotices {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly source: OnlineSource,
    private readonly store: ChatStore,
    private readonly bus: EventBus,
    private readonly opts: { intervalMs: number; minChangePct: number },
    private readonly onError: (err: unknown) => void,
    private readonly clock: () => number = Date.now,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick().catch(this.onError), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async tick(): Promise<void> {
    // The turn lapses a little before the next tick, so some replica always takes it.
    if (!(await this.store.takeOnlineTurn(Math.max(50, this.opts.intervalMs - 100)))) return;
    const counts = await this.source.hottest(ANNOUNCED_ROOMS);
    const seqs = await this.store.onlineChanges(counts, this.opts.minChangePct);
    const at = new Date(this.clock());
    counts.forEach((c, i) => {
      const seq = seqs[i];
      if (seq) this.bus.publish(roomEvent(c.roomId, seq, { notice: { kind: 'online_count', online: String(c.online) } }, at));
    });
  }
}
