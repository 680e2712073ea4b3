import { createHash } from 'node:crypto';

/** Virtual buckets. Fixed forever: changing it would move every account. */
export const BUCKET_COUNT = 256;

/**
 * An owner's bucket: the first byte of SHA-256 over the owner id's decimal string. A
 * cryptographic hash rather than `id mod 256` so that sequential ids (and ids that share low
 * bits, as snowflake ids do) spread evenly; the decimal string so the mapping is obviously the
 * same in any language and never depends on integer width.
 */
export function bucketOf(ownerId: string): number {
  let b = cache.get(ownerId);
  if (b === undefined) {
    b = createHash('sha256').update(ownerId).digest()[0] ?? 0;
    // Bounded: a hot path asks for the same few thousand owners again and again.
    if (cache.size >= 100_000) cache.clear();
    cache.set(ownerId, b);
  }
  return b;
}

const cache = new Map<string, number>();

/** TopUp's payment references are unique across owners, so they are bucketed by their own hash. */
export function bucketOfReference(reference: string): number {
  return createHash('sha256').update(`ref:${reference}`).digest()[0] ?? 0;
}

export const isBucket = (n: number) => Number.isInteger(n) && n >= 0 && n < BUCKET_COUNT;
