import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import { deleteKeys, type RedisClient } from '../../../kit/redis.js';
import { ListRoomGiftsResponse } from '../../../gen/ts/livemesh/gift/v1/gift.js';
import type { GiftListCache } from '../catalog.js';
import { giftRecordFromProto, toProtoGift } from '../mapping.js';
import type { GiftRecord } from '../model.js';

const zip = promisify(gzip);
const unzip = promisify(gunzip);

const listKey = (groupId: string) => `gl:${groupId}`;

/** Lists are rebuilt from MySQL on a miss; an hour bounds what a lost invalidation could leave behind. */
const LIST_TTL_S = 3600;

export function encodeGiftList(gifts: GiftRecord[]): Uint8Array {
  return ListRoomGiftsResponse.encode({ roomId: '0', giftGroupId: '0', etag: '', notModified: false, gifts: gifts.map(toProtoGift) }).finish();
}

function decodeGiftList(bytes: Uint8Array): GiftRecord[] {
  return ListRoomGiftsResponse.decode(bytes).gifts.map(giftRecordFromProto);
}

/**
 * Each group's gift list in Redis as gzip-compressed protobuf. Seed 001 saw Redis-to-app bandwidth
 * grow four- to five-fold without compression, and seed 003's gift list went from 4 KB to 1 KB;
 * `npm run bench:gift` reports the bytes before and after.
 */
export class RedisGiftListCache implements GiftListCache {
  constructor(private readonly redis: RedisClient) {}

  async get(groupId: string): Promise<GiftRecord[] | undefined> {
    const raw = await this.redis.getBuffer(listKey(groupId));
    return raw ? decodeGiftList(await unzip(raw)) : undefined;
  }

  async set(groupId: string, gifts: GiftRecord[]): Promise<void> {
    await this.redis.set(listKey(groupId), await zip(encodeGiftList(gifts)), 'EX', LIST_TTL_S);
  }

  /** The groups' lists (and group 0's); each list is its own key, so on a Cluster one DEL per slot. */
  async drop(groupIds: string[]): Promise<void> {
    if (groupIds.length > 0) await deleteKeys(this.redis, [...groupIds, '0'].map(listKey));
  }
}
