import { LRUCache } from 'lru-cache';
import { CONTROL_OR_LINE_BREAK } from '../../kit/contract-rules.js';
import { Violations } from '../../kit/domain-error.js';
import { fetchCurrent } from '../../kit/lru-fetch.js';
import { isPositiveInt64, requireCaller, type Caller } from '../../kit/identity.js';
import { cannotMute, notRoomOwner, versionConflict } from './errors.js';
import { describeMaskPaths, protoMaskPath } from '../../kit/field-mask.js';
import { checkRoomId, defaultPolicy, isRoomManager, LIMITS, type Policy } from './model.js';
import type { RoomDirectory } from './rooms.js';
import type { ChatStore } from './ports.js';
import type { RoomPublisher } from './stream.js';

/** update_mask paths SetRoomPolicy accepts (proto names; JSON's lowerCamelCase is accepted too, see field-mask.ts). */
const POLICY_PATHS = ['min_level', 'slow_mode', 'chat_closed'] as const;

export interface PolicyChange {
  roomId: string;
  minLevel: number;
  slowModeMs: number;
  chatClosed: boolean;
  paths: string[];
  expectedVersion: string;
}

export interface MuteChange {
  roomId: string;
  userId: string;
  durationMs: number;
  reason: string;
}

export interface MuteView {
  roomId: string;
  userId: string;
  end: Date | undefined;
  by: string;
  reason: string;
}

/**
 * Room policies and mutes. Policies are read on every message, so each replica keeps them in
 * memory for a moment (a change made on this replica is visible here at once, on others within
 * the cache TTL); mutes are checked inside SendMessage's Redis script and so apply everywhere at
 * once.
 */
export class Policies {
  private readonly cache: LRUCache<string, Policy>;

  constructor(
    private readonly rooms: RoomDirectory,
    private readonly store: ChatStore,
    private readonly stream: RoomPublisher,
    opts: { ttlMs: number; max: number },
    private readonly clock: () => number = Date.now,
  ) {
    this.cache = new LRUCache<string, Policy>({
      max: opts.max,
      ttl: opts.ttlMs,
      fetchMethod: async (roomId) => (await store.policy(roomId)) ?? defaultPolicy(roomId),
    });
  }

  /** The policy SendMessage applies (cached). */
  async get(roomId: string): Promise<Policy> {
    return (await fetchCurrent(this.cache, roomId)) ?? defaultPolicy(roomId);
  }

  /** GetRoomPolicy: straight from Redis, so an owner sees their change at once on any replica. */
  async read(roomId: string): Promise<Policy> {
    const room = await this.rooms.get(roomId);
    return (await this.store.policy(room.roomId)) ?? defaultPolicy(room.roomId);
  }

  async set(callerOrNone: Caller | undefined, change: PolicyChange): Promise<Policy> {
    const caller = requireCaller(callerOrNone);
    checkRoomId(change.roomId);
    const v = new Violations();
    v.check(change.paths.length > 0, 'update_mask', `must name at least one of: ${describeMaskPaths(POLICY_PATHS)}`);
    const fields: Partial<Pick<Policy, 'minLevel' | 'slowModeMs' | 'chatClosed'>> = {};
    for (const written of change.paths) {
      const path = protoMaskPath(written);
      if (path === 'min_level') {
        v.check(Number.isInteger(change.minLevel) && change.minLevel >= 0 && change.minLevel <= LIMITS.minLevel, 'policy.min_level', `must be between 0 and ${LIMITS.minLevel}`);
        fields.minLevel = change.minLevel;
      } else if (path === 'slow_mode') {
        v.check(change.slowModeMs % 1000 === 0 && change.slowModeMs <= LIMITS.slowModeS * 1000, 'policy.slow_mode', `must be whole seconds from 0 (off) to ${LIMITS.slowModeS}`);
        fields.slowModeMs = change.slowModeMs;
      } else if (path === 'chat_closed') {
        fields.chatClosed = change.chatClosed;
      } else {
        v.add('update_mask', `unknown path ${JSON.stringify(written)}; paths: ${describeMaskPaths(POLICY_PATHS)}`);
      }
    }
    v.check(change.expectedVersion === '0' || change.expectedVersion === '' || isPositiveInt64(change.expectedVersion), 'expected_version', 'must be 0 (no check) or a positive version');
    v.throwIfAny();

    const room = await this.rooms.get(change.roomId);
    if (!isRoomManager(caller, room)) throw notRoomOwner(room.roomId);
    const expected = change.expectedVersion || '0';
    const now = this.clock();
    const result = await this.store.setPolicy(room.roomId, fields, expected, caller.userId, now);
    if (!result.ok) throw versionConflict(room.roomId, expected, result.version);
    this.cache.set(room.roomId, result.policy);
    await this.stream.publish(room.roomId, { notice: { kind: 'policy_changed', policy: result.policy } }, new Date(now));
    return result.policy;
  }

  async mute(callerOrNone: Caller | undefined, change: MuteChange): Promise<MuteView> {
    const caller = requireCaller(callerOrNone);
    const v = new Violations();
    v.check(change.roomId === '0' || isPositiveInt64(change.roomId), 'room_id', 'must be 0 (every room) or a positive 64-bit integer');
    v.check(isPositiveInt64(change.userId), 'user_id', 'must be a positive 64-bit integer');
    v.check(change.durationMs >= 0 && change.durationMs <= LIMITS.muteMaxS * 1000, 'duration', 'must be from 0 (lift the mute) to 30 days');
    v.check([...change.reason].length <= LIMITS.reason, 'reason', `must be at most ${LIMITS.reason} characters`);
    v.check(!CONTROL_OR_LINE_BREAK.test(change.reason), 'reason', 'must not contain control characters');
    v.throwIfAny();

    if (change.roomId === '0') {
      if (caller.role !== 'admin') throw notRoomOwner('0');
    } else {
      const room = await this.rooms.get(change.roomId);
      if (!isRoomManager(caller, room)) throw notRoomOwner(room.roomId);
      if (change.userId === room.streamerId) throw cannotMute(change.userId, "they are the room's streamer");
    }
    if (change.userId === caller.userId) throw cannotMute(change.userId, 'you cannot mute yourself');
    if (change.durationMs === 0) {
      await this.store.unmute(change.roomId, change.userId);
      return { roomId: change.roomId, userId: change.userId, end: undefined, by: caller.userId, reason: change.reason };
    }
    const end = this.clock() + change.durationMs;
    await this.store.mute(change.roomId, change.userId, { endMs: end, by: caller.userId, reason: change.reason });
    return { roomId: change.roomId, userId: change.userId, end: new Date(end), by: caller.userId, reason: change.reason };
  }
}
