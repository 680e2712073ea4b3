import { createHash } from 'node:crypto';
import type { RoomInfo } from './model.js';
import type { RoomDirectory } from './rooms.js';
import type { ChatStore } from './ports.js';
import type { RoomPublisher } from './stream.js';

/** A room change as LiveNotices reads it: the facts, and the texts an edit changes. */
export interface RoomChange extends RoomInfo {
  title: string;
  notice: string;
}

/**
 * Turns room changes into LIVE_STARTED / LIVE_STOPPED notices and title/notice edits into room
 * updates. Every replica sees every change; a Redis script records each room's last status and
 * texts by version, so exactly one replica (the first) announces a change, and repeated events
 * announce nothing.
 */
export class LiveNotices {
  constructor(
    private readonly rooms: RoomDirectory,
    private readonly store: ChatStore,
    private readonly stream: RoomPublisher,
    private readonly onError: (err: unknown, roomId: string) => void,
    private readonly clock: () => number = Date.now,
  ) {}

  changed(change: RoomChange): void {
    const { title, notice, ...room } = change;
    this.rooms.changed(room);
    const editHash = createHash('sha1').update(`${title}\n${notice}`).digest('base64url').slice(0, 16);
    void this.announce(room, { title, notice, version: room.version }, editHash).catch((err: unknown) => this.onError(err, room.roomId));
  }

  private async announce(room: RoomInfo, edit: { title: string; notice: string; version: string }, editHash: string): Promise<void> {
    const changed = await this.store.roomChanged(room.roomId, room.version, room.live ? 'live' : 'offline', editHash);
    const at = new Date(this.clock());
    if (changed.edit) await this.stream.publish(room.roomId, { room: edit }, at);
    if (changed.status) await this.stream.publish(room.roomId, { notice: { kind: room.live ? 'live_started' : 'live_stopped' } }, at);
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
    private readonly stream: RoomPublisher,
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
    const moved = await this.store.onlineChanges(counts, this.opts.minChangePct);
    const at = new Date(this.clock());
    await Promise.all(counts.filter((_, i) => moved[i]).map((c) => this.stream.publish(c.roomId, { notice: { kind: 'online_count', online: String(c.online) } }, at)));
  }
}
