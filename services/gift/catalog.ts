import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { fetchCurrent } from '../../kit/lru-fetch.js';
import { invalidField, Violations } from '../../kit/domain-error.js';
import { isPositiveInt64, requireRole, type Caller } from '../../kit/identity.js';
import { giftNotFound, groupNotFound, roomNotFound, versionConflict } from './errors.js';
import { CONTROL_CHARS as CONTROL } from '../../kit/contract-rules.js';
import { LIMITS, type GiftRecord, type GroupRecord } from './model.js';
import type { CatalogStore, CatalogView, RoomDirectory, Upserted } from './ports.js';

/** The compressed copy of each group's gift list in Redis. */
export interface GiftListCache {
  get(groupId: string): Promise<GiftRecord[] | undefined>;
  set(groupId: string, gifts: GiftRecord[]): Promise<void>;
  drop(groupIds: string[]): Promise<void>;
}

/** Tells every replica which catalog entries changed (NATS `gift.catalog.changed`). */
export interface CatalogEvents {
  changed(giftIds: string[], groupIds: string[]): Promise<void>;
}

export interface RoomGifts {
  roomId: string;
  giftGroupId: string;
  gifts: GiftRecord[];
  etag: string;
  notModified: boolean;
}


/**
 * The gift catalog. Entering a room loads its gift list, so at a big event this is read as often
 * as rooms are entered: each replica keeps gifts, groups and lists in memory for a few seconds
 * (one MySQL or Redis read per key however many callers miss at once), Redis keeps each group's
 * list compressed, and an admin change drops the affected entries everywhere through NATS.
 */
export class Catalog implements CatalogView {
  private readonly gifts: LRUCache<string, GiftRecord | 'absent'>;
  private readonly groups: LRUCache<string, GroupRecord | 'absent'>;
  private readonly lists: LRUCache<string, { gifts: GiftRecord[]; etag: string }>;

  constructor(
    private readonly store: CatalogStore,
    private readonly listCache: GiftListCache,
    private readonly events: CatalogEvents,
    private readonly rooms: RoomDirectory,
    ttlMs: number,
    private readonly clock: () => Date = () => new Date(),
  ) {
    this.gifts = new LRUCache({ max: 10_000, ttl: ttlMs, fetchMethod: async (id) => (await this.store.gift(id)) ?? 'absent' });
    this.groups = new LRUCache({ max: 1_000, ttl: ttlMs, fetchMethod: async (id) => (await this.store.group(id)) ?? 'absent' });
    this.lists = new LRUCache({ max: 1_000, ttl: ttlMs, fetchMethod: (id) => this.loadList(id) });
  }

  async gift(giftId: string): Promise<GiftRecord | undefined> {
    const g = await fetchCurrent(this.gifts, giftId);
    return g === 'absent' ? undefined : g;
  }

  async group(groupId: string): Promise<GroupRecord | undefined> {
    const g = await fetchCurrent(this.groups, groupId);
    return g === 'absent' ? undefined : g;
  }

  async getGift(giftId: string): Promise<GiftRecord> {
    if (!isPositiveInt64(giftId)) throw invalidField('gift_id', 'must be a positive 64-bit integer');
    const g = await this.gift(giftId);
    if (!g) throw giftNotFound(giftId);
    return g;
  }

  async getGroup(groupId: string): Promise<GroupRecord> {
    if (groupId !== '0' && !isPositiveInt64(groupId)) throw invalidField('gift_group_id', 'must be 0 (the default group) or a positive 64-bit integer');
    const g = await this.group(groupId);
    if (!g) throw groupNotFound(groupId);
    return g;
  }

  /** The active gifts a room shows, in display order, with an etag for conditional reads. */
  async roomGifts(roomId: string, ifNoneMatch: string): Promise<RoomGifts> {
    if (!isPositiveInt64(roomId)) throw invalidField('room_id', 'must be a positive 64-bit integer');
    const room = await this.rooms.get(roomId);
    if (!room) throw roomNotFound(roomId);
    const group = await this.group(room.giftGroupId);
    if (!group) return { roomId, giftGroupId: room.giftGroupId, gifts: [], etag: '', notModified: false };
    const list = await fetchCurrent(this.lists, group.giftGroupId);
    if (!list) throw new Error(`gift list for group ${group.giftGroupId} could not be loaded`);
    const notModified = ifNoneMatch !== '' && ifNoneMatch === list.etag;
    return { roomId, giftGroupId: group.giftGroupId, gifts: notModified ? [] : list.gifts, etag: list.etag, notModified };
  }

  async upsertGift(caller: Caller | undefined, g: Omit<GiftRecord, 'version' | 'updatedAt'>, expectedVersion: string): Promise<{ gift: GiftRecord; created: boolean }> {
    requireRole(caller, ['admin'], 'PERMISSION_DENIED');
    const v = new Violations();
    v.check(g.giftId === '0' || isPositiveInt64(g.giftId), 'gift.gift_id', 'must be 0 (create) or an existing gift id');
    v.check(g.name.trim().length > 0 && [...g.name].length <= LIMITS.giftName && !CONTROL.test(g.name), 'gift.name', `must be 1 to ${LIMITS.giftName} characters, no control characters`);
    v.check(isPositiveInt64(g.priceMinor) && BigInt(g.priceMinor) <= LIMITS.maxPriceMinor, 'gift.price_minor', `must be between 1 and ${LIMITS.maxPriceMinor} COIN minor units`);
    v.check(g.iconKey.length <= LIMITS.iconKey && /^[\x21-\x7e]*$/.test(g.iconKey), 'gift.icon_key', `must be at most ${LIMITS.iconKey} printable ASCII characters`);
    v.check(g.effectKey.length <= LIMITS.effectKey && /^[\x21-\x7e]*$/.test(g.effectKey), 'gift.effect_key', `must be at most ${LIMITS.effectKey} printable ASCII characters`);
    v.throwIfAny();
    const res = await this.store.upsertGift({ ...g, name: g.name.trim() }, expectedOrUndefined(expectedVersion), this.clock());
    const { record, created } = this.unwrap(res, `gift ${g.giftId}`, () => giftNotFound(g.giftId), expectedVersion);
    await this.announce([record.giftId], created ? [] : await this.store.groupsWithGift(record.giftId));
    return { gift: record, created };
  }

  async upsertGroup(caller: Caller | undefined, g: Omit<GroupRecord, 'version' | 'updatedAt'>, expectedVersion: string): Promise<{ group: GroupRecord; created: boolean }> {
    requireRole(caller, ['admin'], 'PERMISSION_DENIED');
    const v = new Violations();
    v.check(g.giftGroupId === '0' || isPositiveInt64(g.giftGroupId), 'gift_group.gift_group_id', 'must be 0 (create) or an existing group id');
    v.check(g.name.trim().length > 0 && [...g.name].length <= LIMITS.groupName && !CONTROL.test(g.name), 'gift_group.name', `must be 1 to ${LIMITS.groupName} characters`);
    // An empty group would leave every room assigned to it with nothing to send, with no error anywhere.
    v.check(g.giftIds.length >= 1 && g.giftIds.length <= LIMITS.groupSize, 'gift_group.gift_ids', `must list 1 to ${LIMITS.groupSize} gifts`);
    v.check(new Set(g.giftIds).size === g.giftIds.length, 'gift_group.gift_ids', 'must not repeat a gift');
    g.giftIds.forEach((id, i) => v.check(isPositiveInt64(id), `gift_group.gift_ids[${i}]`, 'must be a positive 64-bit integer'));
    v.throwIfAny();
    const known = new Set((await this.store.gifts(g.giftIds)).map((x) => x.giftId));
    const unknown = g.giftIds.findIndex((id) => !known.has(id));
    if (unknown >= 0) throw invalidField(`gift_group.gift_ids[${unknown}]`, `gift ${g.giftIds[unknown]} does not exist`);
    const res = await this.store.upsertGroup({ ...g, name: g.name.trim() }, expectedOrUndefined(expectedVersion), this.clock());
    const { record, created } = this.unwrap(res, `gift group ${g.giftGroupId}`, () => groupNotFound(g.giftGroupId), expectedVersion);
    await this.announce([], [record.giftGroupId]);
    return { group: record, created };
  }

  /** A catalog change heard from NATS (or made here): forget what it touched. */
  forget(giftIds: string[], groupIds: string[]): void {
    for (const id of giftIds) this.gifts.delete(id);
    // The default group is also cached as '0'; any group change may have moved the flag.
    for (const id of groupIds.length > 0 ? [...groupIds, '0'] : []) {
      this.groups.delete(id);
      this.lists.delete(id);
    }
  }

  private async announce(giftIds: string[], groupIds: string[]): Promise<void> {
    await this.listCache.drop(groupIds);
    this.forget(giftIds, groupIds);
    await this.events.changed(giftIds, groupIds);
  }

  private unwrap<T>(res: Upserted<T>, what: string, notFound: () => Error, expected: string): { record: T; created: boolean } {
    if (res.outcome === 'not_found') throw notFound();
    if (res.outcome === 'version_conflict') throw versionConflict(what, expected, res.current);
    return { record: res.record, created: res.created };
  }

  /** Redis first; on a miss, MySQL once, then Redis is filled for every other replica. */
  private async loadList(groupId: string): Promise<{ gifts: GiftRecord[]; etag: string }> {
    let gifts = await this.listCache.get(groupId);
    if (!gifts) {
      const group = await this.store.group(groupId);
      const byId = new Map((await this.store.gifts(group?.giftIds ?? [])).map((g) => [g.giftId, g]));
      gifts = (group?.giftIds ?? []).flatMap((id) => {
        const g = byId.get(id);
        return g && g.status === 'active' ? [g] : [];
      });
      await this.listCache.set(groupId, gifts);
    }
    const etag = createHash('sha256')
      .update(JSON.stringify(gifts.map((g) => [g.giftId, g.version])))
      .digest('base64url')
      .slice(0, 16);
    return { gifts, etag };
  }
}

function expectedOrUndefined(v: string): string | undefined {
  return v === '' || v === '0' ? undefined : v;
}

