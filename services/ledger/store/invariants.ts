import type { PoolConnection } from 'mysql2/promise';
import { BUCKET_COUNT, bucketOf } from '../buckets.js';
import { ASSET_NAMES, type Asset } from '../model.js';
import { big, dateOf, withConnection, type Row, type Shard } from './db.js';
import type { BucketRouter } from './router.js';
import { OUTBOX_JOIN, SideDb } from './rows.js';
import type { InvariantReport } from '../ports.js';

export type { AssetInvariant, InvariantReport } from '../ports.js';

interface Credit {
  asset: Asset;
  amount: bigint;
  homeOwner: string;
  transferId: string;
  payeeOwner: string;
  payeeBucket: number;
  createdAt: Date;
}

/** What one shard holds, read in one snapshot, counting only the buckets it serves. */
interface ShardSnapshot {
  owned: number[];
  balances: Map<Asset, bigint>;
  negatives: number;
  minted: Map<Asset, bigint>;
  burned: Map<Asset, bigint>;
  transfers: number;
  /** Credits waiting in this shard's outbox. */
  outbox: Map<string, Credit>;
  /** Settled transfers homed here whose credit went to a user: each needs exactly one credit entry. */
  settled: Map<string, Credit>;
  /** Credit entries applied here. */
  credits: Map<string, Credit>;
  violations: string[];
  unbalanced: number;
}

const MAX_VIOLATIONS = 100;
const key = (homeOwner: unknown, transferId: unknown) => `${String(homeOwner)}/${String(transferId)}`;
const add = (m: Map<Asset, bigint>, asset: Asset, v: bigint) => m.set(asset, (m.get(asset) ?? 0n) + v);

function creditOf(r: Row, asset: unknown): Credit {
  return {
    asset: Number(asset) as Asset,
    amount: big(r.amount),
    homeOwner: String(r.home_owner_id),
    transferId: String(r.transfer_id),
    payeeOwner: String(r.payee_owner_id),
    payeeBucket: Number(r.payee_bucket),
    createdAt: dateOf(r.created_at),
  };
}

async function readShard(shard: Shard, conn: PoolConnection): Promise<ShardSnapshot> {
  const q = async (sql: string, params: unknown[] = []) => (await conn.query<Row[]>(sql, params))[0];
  const snap: ShardSnapshot = {
    owned: [],
    balances: new Map(),
    negatives: 0,
    minted: new Map(),
    burned: new Map(),
    transfers: 0,
    outbox: new Map(),
    settled: new Map(),
    credits: new Map(),
    violations: [],
    unbalanced: 0,
  };
  snap.owned = (await q('SELECT bucket FROM bucket_state WHERE state IN (1, 2, 3)')).map((r) => Number(r.bucket));
  if (snap.owned.length === 0) return snap;
  const owned = [snap.owned];
  for (const r of await q('SELECT asset, SUM(balance) AS total, SUM(balance < 0 AND allow_negative = 0) AS negative FROM accounts WHERE bucket IN (?) GROUP BY asset', owned)) {
    add(snap.balances, Number(r.asset) as Asset, big(r.total));
    snap.negatives += Number(r.negative ?? 0);
  }
  const live = 'voided = 0';
  for (const r of await q(
    `SELECT payee_asset AS asset, SUM(amount) AS total FROM transfers WHERE bucket IN (?) AND ${live} AND payee_owner_id <> 0 AND (payer_owner_id = 0 OR payer_asset <> payee_asset) GROUP BY payee_asset`,
    owned,
  ))
    add(snap.minted, Number(r.asset) as Asset, big(r.total));
  for (const r of await q(
    `SELECT payer_asset AS asset, SUM(amount) AS total FROM transfers WHERE bucket IN (?) AND ${live} AND payer_owner_id <> 0 AND (payee_owner_id = 0 OR payee_asset <> payer_asset) GROUP BY payer_asset`,
    owned,
  ))
    add(snap.burned, Number(r.asset) as Asset, big(r.total));
  snap.transfers = Number((await q(`SELECT COUNT(*) AS n FROM transfers WHERE bucket IN (?) AND ${live}`, owned))[0]?.n ?? 0);

  const cols = 'home_owner_id, transfer_id, amount, payee_owner_id, payee_bucket, created_at';
  const tcols = cols.split(', ').map((c) => `t.${c}`).join(', ');
  for (const r of await q(`SELECT t.payee_asset, ${tcols} FROM ${OUTBOX_JOIN} WHERE o.bucket IN (?)`, owned)) snap.outbox.set(key(r.home_owner_id, r.transfer_id), creditOf(r, r.payee_asset));
  // Settled: no longer (or never) in the outbox.
  for (const r of await q(
    `SELECT t.payee_asset, ${tcols} FROM transfers t LEFT JOIN outbox o ON o.bucket = t.bucket AND o.home_owner_id = t.home_owner_id ` +
      'AND o.transfer_id = t.transfer_id WHERE t.bucket IN (?) AND t.voided = 0 AND t.payee_owner_id <> 0 AND o.transfer_id IS NULL',
    owned,
  ))
    snap.settled.set(key(r.home_owner_id, r.transfer_id), creditOf(r, r.payee_asset));
  for (const r of await q(
    `SELECT asset, home_owner_id, transfer_id, amount, owner_id AS payee_owner_id, bucket AS payee_bucket, created_at FROM entries WHERE bucket IN (?) AND side = ${SideDb.CREDIT}`,
    owned,
  ))
    snap.credits.set(key(r.home_owner_id, r.transfer_id), creditOf(r, r.asset));

  const violation = (text: string) => {
    if (snap.violations.length < MAX_VIOLATIONS) snap.violations.push(`shard ${shard.id}: ${text}`);
  };
  // Every balance is the sum of its entries.
  for (const r of await q(
    'SELECT a.owner_id, a.asset, a.balance, COALESCE(e.net, 0) AS net FROM accounts a LEFT JOIN ' +
      `(SELECT bucket, owner_id, asset, SUM(IF(side = ${SideDb.CREDIT}, amount, -amount)) AS net FROM entries WHERE bucket IN (?) GROUP BY bucket, owner_id, asset) e ` +
      'ON e.bucket = a.bucket AND e.owner_id = a.owner_id AND e.asset = a.asset WHERE a.bucket IN (?) AND a.balance <> COALESCE(e.net, 0) LIMIT 100',
    [snap.owned, snap.owned],
  ))
    violation(`account ${String(r.owner_id)}/${ASSET_NAMES[Number(r.asset) as Asset]} holds ${String(r.balance)} but its entries sum to ${String(r.net)}`);
  // A user payer's debit entry exists for every transfer.
  for (const r of await q(
    'SELECT t.home_owner_id, t.transfer_id FROM transfers t LEFT JOIN entries e ON e.bucket = t.payer_bucket AND e.owner_id = t.payer_owner_id ' +
      `AND e.asset = t.payer_asset AND e.created_at = t.created_at AND e.home_owner_id = t.home_owner_id AND e.transfer_id = t.transfer_id AND e.side = ${SideDb.DEBIT} ` +
      `WHERE t.bucket IN (?) AND t.${live} AND t.payer_owner_id <> 0 AND e.transfer_id IS NULL LIMIT 100`,
    owned,
  )) {
    snap.unbalanced++;
    violation(`transfer ${key(r.home_owner_id, r.transfer_id)} has no debit entry`);
  }
  // Every credit in the outbox belongs to a live user-to-user transfer.
  for (const r of await q(
    'SELECT o.home_owner_id, o.transfer_id FROM outbox o LEFT JOIN transfers t ON t.bucket = o.bucket AND t.home_owner_id = o.home_owner_id AND t.transfer_id = o.transfer_id ' +
      'WHERE o.bucket IN (?) AND (t.transfer_id IS NULL OR t.voided = 1 OR t.payer_owner_id = 0 OR t.payee_owner_id = 0) LIMIT 100',
    owned,
  )) {
    snap.unbalanced++;
    violation(`outbox credit ${key(r.home_owner_id, r.transfer_id)} has no live user-to-user transfer`);
  }
  return snap;
}

/** Every shard, each in a consistent snapshot, opened side by side. */
async function snapshotAll(router: BucketRouter): Promise<ShardSnapshot[]> {
  return Promise.all(
    [...router.shards.values()].map((shard) =>
      withConnection(shard.pool, async (conn) => {
        await conn.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
        await conn.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
        const snap = await readShard(shard, conn);
        await conn.query('COMMIT');
        return snap;
      }),
    ),
  );
}

/**
 * Checks, across all shards:
 * - per asset, sum of user balances + credits in flight = minted − burned;
 * - every balance equals the sum of its entries; no user balance is negative;
 * - every transfer has its debit entry and exactly one of: a pending outbox row, or an applied
 *   credit entry (one, on one shard).
 *
 * Shards are read in separate snapshots, so a credit can be caught between them (applied on the
 * payee's shard after its snapshot but settled on the payer's before its own, or the reverse).
 * Those cases are looked up again afterwards, key by key, in fresh reads: a credit that has
 * arrived since, or a transfer that now exists, was in flight, not lost. What is still missing is
 * a violation. The check scans every transfer: an operator's tool, not something to run per call.
 */
export async function checkInvariants(router: BucketRouter, assets: readonly Asset[]): Promise<InvariantReport> {
  let snaps = await snapshotAll(router);
  for (let attempt = 0; attempt < 20 && !ownedOnce(snaps); attempt++) {
    // A cut-over happened between two snapshots (a bucket served twice or not at all); look again.
    await new Promise((r) => setTimeout(r, 50));
    snaps = await snapshotAll(router);
  }
  const violations = snaps.flatMap((s) => s.violations);
  let unbalanced = snaps.reduce((n, s) => n + s.unbalanced, 0);
  if (!ownedOnce(snaps)) violations.push('buckets are not each served by exactly one shard');

  const balances = new Map<Asset, bigint>();
  const minted = new Map<Asset, bigint>();
  const burned = new Map<Asset, bigint>();
  const pending = new Map<Asset, bigint>();
  const credits = new Map<string, Credit>();
  const known = new Set<string>();
  for (const s of snaps) {
    for (const [a, v] of s.balances) add(balances, a, v);
    for (const [a, v] of s.minted) add(minted, a, v);
    for (const [a, v] of s.burned) add(burned, a, v);
    for (const [k, c] of s.credits) {
      if (credits.has(k)) {
        unbalanced++;
        violations.push(`transfer ${k} was credited on two shards`);
      }
      credits.set(k, c);
    }
    for (const k of [...s.outbox.keys(), ...s.settled.keys()]) known.add(k);
  }
  for (const s of snaps) {
    // Waiting in the outbox and not yet in the payee's balance: in flight.
    for (const [k, c] of s.outbox) if (!credits.has(k)) add(pending, c.asset, c.amount);
    for (const [k, c] of s.settled) {
      if (credits.has(k)) continue;
      if (await creditExistsNow(router, c)) add(pending, c.asset, c.amount);
      else {
        unbalanced++;
        violations.push(`transfer ${k} is settled but its credit of ${c.amount} to ${c.payeeOwner} was never applied`);
      }
    }
  }
  for (const [k, c] of credits) {
    if (known.has(k)) continue;
    // Applied on the payee's shard but not visible in the payer's snapshot: created after it, if it exists now.
    if (await transferExistsNow(router, c)) add(pending, c.asset, -c.amount);
    else {
      unbalanced++;
      violations.push(`credit entry for ${k} has no transfer`);
    }
  }

  const rows = assets.map((asset) => {
    const balanceSum = balances.get(asset) ?? 0n;
    const pendingCredit = pending.get(asset) ?? 0n;
    const m = minted.get(asset) ?? 0n;
    const b = burned.get(asset) ?? 0n;
    const holds = balanceSum + pendingCredit === m - b;
    if (!holds) violations.push(`${ASSET_NAMES[asset]}: balances ${balanceSum} + in flight ${pendingCredit} != minted ${m} - burned ${b}`);
    return { asset, balanceSum, pendingCredit, minted: m, burned: b, holds };
  });
  const negativeBalances = snaps.reduce((n, s) => n + s.negatives, 0);
  return {
    ok: violations.length === 0 && negativeBalances === 0 && rows.every((r) => r.holds),
    assets: rows,
    transfersChecked: snaps.reduce((n, s) => n + s.transfers, 0),
    unbalancedTransfers: unbalanced,
    negativeBalances,
    violations: violations.slice(0, MAX_VIOLATIONS),
    checkedAt: new Date(),
  };
}

function ownedOnce(snaps: ShardSnapshot[]): boolean {
  const count = new Array<number>(BUCKET_COUNT).fill(0);
  for (const s of snaps) for (const b of s.owned) count[b] = (count[b] ?? 0) + 1;
  return count.every((n) => n === 1);
}

function creditExistsNow(router: BucketRouter, c: Credit): Promise<boolean> {
  return router.read(c.payeeBucket, async (conn) => {
    const [rows] = await conn.query<Row[]>(
      'SELECT 1 FROM entries WHERE bucket = ? AND owner_id = ? AND asset = ? AND created_at = ? AND home_owner_id = ? AND transfer_id = ? AND side = ?',
      [c.payeeBucket, BigInt(c.payeeOwner), c.asset, c.createdAt, BigInt(c.homeOwner), c.transferId, SideDb.CREDIT],
    );
    return rows.length > 0;
  });
}

function transferExistsNow(router: BucketRouter, c: Credit): Promise<boolean> {
  const bucket = bucketOf(c.homeOwner);
  return router.read(bucket, async (conn) => {
    const [rows] = await conn.query<Row[]>('SELECT 1 FROM transfers WHERE bucket = ? AND home_owner_id = ? AND transfer_id = ?', [bucket, BigInt(c.homeOwner), c.transferId]);
    return rows.length > 0;
  });
}
