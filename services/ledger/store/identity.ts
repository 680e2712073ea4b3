import { randomUUID } from 'node:crypto';
import { ConfigError } from '../../../kit/config.js';
import type { Logger } from '../../../kit/logger.js';
import type { ShardMapData } from '../ports.js';
import type { Row, Shard } from './db.js';
import type { ShardMapStore } from './shard-map.js';

/** What a shard database says it is (its shard_identity row). */
export interface ShardIdentity {
  ledgerId: string;
  shard: number;
  uid: string;
}

export const describeIdentity = (id: ShardIdentity) => `ledger ${id.ledgerId} shard ${id.shard} (database uid ${id.uid})`;

/** Where a shard lives, for messages: the database and the server, never the credentials. */
const where = (shard: Shard) => `database ${shard.database} on ${shard.server}`;

/**
 * A replica whose configured servers are not the ones the shard map was made with. A ConfigError,
 * so the process exits with EX_CONFIG: restarting it cannot help, its settings must change.
 */
export class ShardIdentityError extends ConfigError {}

export async function readIdentity(shard: Shard): Promise<ShardIdentity | undefined> {
  const [rows] = await shard.pool.query<Row[]>('SELECT ledger_id, shard_id, database_uid FROM shard_identity WHERE singleton = 1');
  const r = rows[0];
  return r ? { ledgerId: String(r.ledger_id), shard: Number(r.shard_id), uid: String(r.database_uid) } : undefined;
}

/**
 * Gives a database that has no identity one; if another replica wrote one first, that one stays.
 * Returns the identity the database holds afterwards.
 */
async function writeIdentity(shard: Shard, ledgerId: string): Promise<ShardIdentity> {
  await shard.pool.query('INSERT IGNORE INTO shard_identity (singleton, ledger_id, shard_id, database_uid, created_at) VALUES (1, ?, ?, ?, ?)', [
    ledgerId,
    shard.id,
    randomUUID(),
    new Date(),
  ]);
  const written = await readIdentity(shard);
  if (!written) throw new Error(`shard ${shard.id}: the identity row written to ${where(shard)} is not there`);
  return written;
}

/**
 * The ledger id a map made now should carry: the one the shard databases already hold (the map
 * was lost and is being rebuilt from them), else a new one. Databases of different ledgers
 * configured together are refused here.
 */
export function ledgerIdFor(identities: Map<number, ShardIdentity>, shards: Map<number, Shard>): string {
  const held = [...identities.values()];
  const first = held[0];
  if (!first) return randomUUID();
  const other = held.find((id) => id.ledgerId !== first.ledgerId);
  if (other) {
    const shardOf = (id: ShardIdentity) => [...identities].find(([, v]) => v === id)?.[0] ?? -1;
    const a = shards.get(shardOf(first));
    const b = shards.get(shardOf(other));
    throw new ShardIdentityError([
      `the configured shard databases belong to different ledgers: ${a ? where(a) : '?'} is ${describeIdentity(first)}, ` +
        `${b ? where(b) : '?'} is ${describeIdentity(other)}; check LEDGER_SHARD_URLS and MYSQL_URL`,
    ]);
  }
  return first.ledgerId;
}

/**
 * Makes sure every configured shard database is the shard the map says, recording identities the
 * map does not have yet (first start, a new shard, or a deployment from before identities): the
 * record is a compare-and-set on the map, so of two replicas racing with different databases for
 * one shard exactly one wins and the other refuses. Throws ShardIdentityError naming the shard and
 * both identities when a database is not the one recorded. Returns the map with every identity.
 */
export async function verifyIdentities(
  store: ShardMapStore,
  map: ShardMapData,
  shards: Map<number, Shard>,
  identities: Map<number, ShardIdentity>,
  log: Logger,
): Promise<ShardMapData> {
  let current = map;
  if (!current.ledgerId) {
    const candidate = ledgerIdFor(identities, shards);
    current = await store.update((m) => (m.ledgerId ? m : { ...m, ledgerId: candidate }));
    log.warn({ ledgerId: current.ledgerId }, 'shard map had no ledger id (made before shard identities); recorded one');
  }
  const ledgerId = current.ledgerId ?? '';
  const mapName = `the shard map (NATS KV ${store.name})`;
  for (const shard of shards.values()) {
    // Read again now: a replica starting beside this one may have written the identity and
    // recorded it in the map since this one first looked, which is agreement, not a mismatch.
    let held = (await readIdentity(shard)) ?? identities.get(shard.id);
    const recorded = () => current.shards.find((s) => s.id === shard.id)?.uid;
    const expected = (uid: string): ShardIdentity => ({ ledgerId, shard: shard.id, uid });
    const refuse = (what: string) => new ShardIdentityError([`shard ${shard.id}: ${what}; this replica is pointed at other servers than the ones the map was made with: check LEDGER_SHARD_URLS and MYSQL_URL`]);
    if (held && held.ledgerId !== ledgerId) {
      throw refuse(`${where(shard)} is ${describeIdentity(held)}, but ${mapName} belongs to ledger ${ledgerId}${recorded() ? ` and records ${describeIdentity(expected(recorded() ?? ''))}` : ''}`);
    }
    if (held && held.shard !== shard.id) {
      throw refuse(`${where(shard)} is ${describeIdentity(held)}, configured as shard ${shard.id} (LEDGER_SHARD_URLS lists the servers in shard order)`);
    }
    const uid = recorded();
    if (uid && !held) {
      throw refuse(`${where(shard)} has no identity (a new, empty database?), but ${mapName} records ${describeIdentity(expected(uid))}`);
    }
    if (uid && held && held.uid !== uid) {
      throw refuse(`${where(shard)} is ${describeIdentity(held)}, but ${mapName} records ${describeIdentity(expected(uid))}`);
    }
    if (uid) continue;
    held ??= await writeIdentity(shard, ledgerId);
    identities.set(shard.id, held);
    const mine = held;
    current = await store.update((m) => ({ ...m, shards: m.shards.map((s) => (s.id === shard.id && !s.uid ? { ...s, uid: mine.uid } : s)) }));
    const won = recorded();
    if (won !== mine.uid) {
      throw refuse(`${where(shard)} is ${describeIdentity(mine)}, but another replica recorded ${describeIdentity(expected(won ?? ''))} in ${mapName} first`);
    }
    log.info({ shard: shard.id, uid: mine.uid, ledgerId }, 'shard identity recorded in the shard map');
  }
  return current;
}
