import type { Connection } from 'mysql2/promise';
import { Asset, ASSET_NAMES } from '../../services/ledger/model.js';
import { SideDb } from '../../services/ledger/store/rows.js';
import { quoteIdent } from '../../kit/mysql.js';

/**
 * What the checker reads after a run, straight from the databases (not through the services, whose
 * answers are what is being checked): every Ledger shard's accounts, transfers, entries and
 * outbox, and Gift's orders with their effects.
 */
export interface LedgerAccount {
  shard: string;
  owner: string;
  asset: number;
  balance: bigint;
}

export interface LedgerTransfer {
  shard: string;
  homeOwner: string;
  transferId: string;
  voided: boolean;
  payer: string;
  payerAsset: number;
  payee: string;
  payeeAsset: number;
  amount: bigint;
  /** its credit is still waiting in the payer shard's outbox */
  creditInFlight: boolean;
}

export interface LedgerEntry {
  shard: string;
  owner: string;
  asset: number;
  homeOwner: string;
  transferId: string;
  side: 'debit' | 'credit';
  amount: bigint;
}

export interface GiftOrderRow {
  orderId: string;
  senderId: string;
  idempotencyKey: string;
  roomId: string;
  streamerId: string;
  amount: bigint;
  income: bigint;
  exp: bigint;
  /** CREATED, PAID, DONE or FAILED */
  state: string;
  /** effects recorded as done: EXP, BARRAGE, RANKING, COMBO */
  effectsDone: string[];
}

export interface ChaosState {
  accounts: LedgerAccount[];
  transfers: LedgerTransfer[];
  entries: LedgerEntry[];
  orders: GiftOrderRow[];
}

export const ASSET_LIST = [Asset.COIN, Asset.INCOME, Asset.EXP] as const;
export const assetName = (a: number) => ASSET_NAMES[a as Asset] ?? `asset ${a}`;
const STATES = ['', 'CREATED', 'PAID', 'DONE', 'FAILED'];
const EFFECTS = ['', 'EXP', 'BARRAGE', 'RANKING', 'COMBO'];

type Row = Record<string, unknown>;

/** The Ledger shard databases of a run: `<database>_ledger_shard<N>`, as the mesh names them. */
function ledgerDatabasePattern(database: string): string {
  return `${database}_ledger_shard`.replace(/_/g, '\\_') + '%';
}

/** `conn`: the run's own connection to the shared MariaDB, opened with `mysqlOptions` (64-bit values as strings). */
export async function readChaosState(conn: Connection, database: string): Promise<ChaosState> {
  const q = async (sql: string, params: unknown[] = []) => (await conn.query(sql, params))[0] as Row[];
  const shards = (await q('SELECT schema_name AS name FROM information_schema.schemata WHERE schema_name LIKE ? ORDER BY schema_name', [ledgerDatabasePattern(database)])).map((r) => String(r.name));
  const state: ChaosState = { accounts: [], transfers: [], entries: [], orders: [] };
  for (const shard of shards) {
    const db = quoteIdent(shard);
    // Only the buckets this shard serves: a migrated bucket's old copy is not money.
    const owned = `bucket IN (SELECT bucket FROM ${db}.bucket_state WHERE state IN (1, 2, 3))`;
    for (const r of await q(`SELECT owner_id, asset, balance FROM ${db}.accounts WHERE ${owned}`)) {
      state.accounts.push({ shard, owner: String(r.owner_id), asset: Number(r.asset), balance: BigInt(String(r.balance)) });
    }
    const inFlight = new Set((await q(`SELECT home_owner_id, transfer_id FROM ${db}.outbox WHERE ${owned}`)).map((r) => `${String(r.home_owner_id)}/${String(r.transfer_id)}`));
    for (const r of await q(`SELECT home_owner_id, transfer_id, voided, payer_owner_id, payer_asset, payee_owner_id, payee_asset, amount FROM ${db}.transfers WHERE ${owned}`)) {
      const homeOwner = String(r.home_owner_id);
      const transferId = String(r.transfer_id);
      state.transfers.push({
        shard,
        homeOwner,
        transferId,
        voided: Number(r.voided) === 1,
        payer: String(r.payer_owner_id),
        payerAsset: Number(r.payer_asset),
        payee: String(r.payee_owner_id),
        payeeAsset: Number(r.payee_asset),
        amount: BigInt(String(r.amount)),
        creditInFlight: inFlight.has(`${homeOwner}/${transferId}`),
      });
    }
    for (const r of await q(`SELECT owner_id, asset, home_owner_id, transfer_id, side, amount FROM ${db}.entries WHERE ${owned}`)) {
      state.entries.push({
        shard,
        owner: String(r.owner_id),
        asset: Number(r.asset),
        homeOwner: String(r.home_owner_id),
        transferId: String(r.transfer_id),
        side: Number(r.side) === SideDb.DEBIT ? 'debit' : 'credit',
        amount: BigInt(String(r.amount)),
      });
    }
  }
  const gift = quoteIdent(`${database}_gift`);
  const effects = new Map<string, string[]>();
  for (const r of await q(`SELECT order_id, effect FROM ${gift}.order_effects WHERE done_at IS NOT NULL`)) {
    const id = String(r.order_id);
    effects.set(id, [...(effects.get(id) ?? []), EFFECTS[Number(r.effect)] ?? String(r.effect)]);
  }
  for (const r of await q(`SELECT order_id, sender_id, idempotency_key, room_id, streamer_id, amount_minor, income_minor, exp_minor, state FROM ${gift}.orders`)) {
    const orderId = String(r.order_id);
    state.orders.push({
      orderId,
      senderId: String(r.sender_id),
      idempotencyKey: String(r.idempotency_key),
      roomId: String(r.room_id),
      streamerId: String(r.streamer_id),
      amount: BigInt(String(r.amount_minor)),
      income: BigInt(String(r.income_minor)),
      exp: BigInt(String(r.exp_minor)),
      state: STATES[Number(r.state)] ?? String(r.state),
      effectsDone: effects.get(orderId) ?? [],
    });
  }
  return state;
}

/** Orders not yet DONE or FAILED, and credits still in flight: what "settled" waits for. */
export async function unsettled(conn: Connection, database: string): Promise<{ openOrders: number; creditsInFlight: number }> {
  const [orders] = await conn.query(`SELECT COUNT(*) AS n FROM ${quoteIdent(`${database}_gift`)}.orders WHERE state IN (1, 2)`);
  const [shards] = await conn.query('SELECT schema_name AS name FROM information_schema.schemata WHERE schema_name LIKE ?', [ledgerDatabasePattern(database)]);
  let credits = 0;
  for (const { name } of shards as Array<{ name: string }>) {
    const [rows] = await conn.query(`SELECT COUNT(*) AS n FROM ${quoteIdent(name)}.outbox`);
    credits += Number((rows as Row[])[0]?.n ?? 0);
  }
  return { openOrders: Number((orders as Row[])[0]?.n ?? 0), creditsInFlight: credits };
}
