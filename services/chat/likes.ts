import { invalidField } from '../../kit/domain-error.js';
import { requireCaller, type Caller } from '../../kit/identity.js';
import { checkRoomId, LIMITS } from './model.js';
import type { RoomDirectory } from './rooms.js';
import type { ChatStore } from './ports.js';
import type { RoomPublisher } from './stream.js';

/**
 * Likes in tiers: clients merge taps ("10 likes in 3 s"), each replica sums what it receives per
 * room in memory, and about once a second adds each room's sum to Redis in one script call and
 * publishes one burst. A hundred thousand tapping viewers cost each room one Redis call and one
 * event per replica per second. Likes carry no value, so the at most one interval a crashed
 * replica loses is an accepted trade; a failed flush keeps its sums for the next one.
 */
export class Likes {
  private pending = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly rooms: RoomDirectory,
    private readonly store: ChatStore,
    private readonly stream: RoomPublisher,
    private readonly onError: (err: unknown, roomId: string) => void,
    private readonly clock: () => number = Date.now,
  ) {}

  async send(caller: Caller | undefined, roomId: string, count: number): Promise<number> {
    requireCaller(caller);
    checkRoomId(roomId);
    if (!Number.isInteger(count) || count < 1 || count > LIMITS.likes) throw invalidField('count', `must be between 1 and ${LIMITS.likes}`);
    await this.rooms.get(roomId);
    this.pending.set(roomId, (this.pending.get(roomId) ?? 0) + count);
    return count;
  }

  async total(roomId: string): Promise<{ total: string; at: Date | undefined }> {
    await this.rooms.get(roomId);
    return this.store.likes(roomId);
  }

  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and flushes what is left (drain). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
  }

  /** Flushes every room's sum; concurrent calls share one flush. */
  flush(): Promise<void> {
    this.flushing ??= this.flushAll().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async flushAll(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    const now = this.clock();
    await Promise.all(
      [...batch].map(async ([roomId, count]) => {
        let total: string;
        try {
          total = await this.store.flushLikes(roomId, count, now);
        } catch (err) {
          this.pending.set(roomId, (this.pending.get(roomId) ?? 0) + count);
          return this.onError(err, roomId);
        }
        // Counted: a failed burst is not retried (the next one carries the new total).
        await this.stream.publish(roomId, { likes: { likeCount: String(count), totalLikeCount: total } }, new Date(now)).catch((err: unknown) => this.onError(err, roomId));
      }),
    );
  }
}
