import { bucketOf } from '../buckets.js';
import { ASSETS, type Asset, type BalanceRecord, type TransferRecord } from '../model.js';
import { big, dateOf, rowsOf, Statements, type Row } from './db.js';
import type { BucketRouter } from './router.js';
import { ENTRY_COLUMNS, OUTBOX_JOIN, SideDb, transferFromEntry, transferFromRow, TRANSFER_SELECT, type AppliedCredit } from './rows.js';
import { keyIn, tableSpec } from './schema.js';
import type { DailyIncomeRow, HistoryCursor, HistoryQuery } from '../ports.js';

const ENTRIES = tableSpec('entries');
const creditId = (t: TransferRecord) => `${t.homeOwner}/${t.transferId}`;
/** A settled user-to-user transfer whose credit details are on the payee's shard and not yet known. */
const needsCredit = (t: TransferRecord) => t.status === 'settled' && t.payer.owner !== '0' && t.payee.owner !== '0' && t.settledAt === null;

export type { DailyIncomeRow, HistoryCursor, HistoryQuery } from '../ports.js';

/** A column list with a table alias on each name. */
const aliased = (alias: string, columns: string) => columns.split(', ').map((c) => `${alias}.${c}`).join(', ');

/**
 * Reads, each from the shard that serves the owner's bucket, inside a snapshot that also confirms
 * the shard still holds the bucket (see BucketRouter.read).
 */
export class LedgerReads {
  constructor(private readonly router: BucketRouter) {}

  async balances(owner: string, assets: readonly Asset[]): Promise<BalanceRecord[]> {
    const bucket = bucketOf(owner);
    const [rows, pending] = await Promise.all([
      this.router.read(bucket, async (conn) => {
        const [r] = await conn.query<Row[]>('SELECT asset, balance, allow_negative, updated_at FROM accounts WHERE bucket = ? AND owner_id = ?', [bucket, BigInt(owner)]);
        return r;
      }),
      this.pendingCredits(owner),
    ]);
    const byAsset = new Map(rows.map((r) => [Number(r.asset), r]));
    return assets.map((asset) => {
      const r = byAsset.get(asset);
      return {
        asset,
        amount: r ? big(r.balance) : 0n,
        pendingCredit: pending.get(asset) ?? 0n,
        allowNegative: r ? Number(r.allow_negative) === 1 : false,
        updatedAt: r ? dateOf(r.updated_at) : null,
      };
    });
  }

  /**
   * Credits on their way to an owner: outbox rows on every shard (the payers' shards), counted
   * only where that shard serves the payer's bucket, so a bucket mid-migration is not counted twice.
   */
  async pendingCredits(owner: string): Promise<Map<Asset, bigint>> {
    const out = new Map<Asset, bigint>(ASSETS.map((a) => [a, 0n]));
    await Promise.all(
      [...this.router.shards.values()].map(async (shard) => {
        const [rows] = await shard.pool.query<Row[]>(
          `SELECT t.payee_asset, SUM(t.amount) AS pending FROM ${OUTBOX_JOIN} WHERE t.payee_owner_id = ? AND o.bucket IN (SELECT bucket FROM bucket_state WHERE state IN (1, 2, 3)) GROUP BY t.payee_asset`,
          [BigInt(owner)],
        );
        for (const r of rows) {
          const asset = Number(r.payee_asset) as Asset;
          out.set(asset, (out.get(asset) ?? 0n) + big(r.pending));
        }
      }),
    );
    return out;
  }

  /** The transfer stored under (home owner, id), voided ones included; undefined if none. */
  async transfer(homeOwner: string, transferId: string): Promise<TransferRecord | undefined> {
    const bucket = bucketOf(homeOwner);
    const row = await this.router.read(bucket, async (conn) => {
      const [r] = await conn.query<Row[]>(`SELECT ${TRANSFER_SELECT} FROM transfers t WHERE t.bucket = ? AND t.home_owner_id = ? AND t.transfer_id = ?`, [
        bucket,
        BigInt(homeOwner),
        transferId,
      ]);
      return r[0];
    });
    if (!row) return undefined;
    const t = transferFromRow(row);
    return needsCredit(t) ? transferFromRow(row, (await this.appliedCredits([t])).get(creditId(t))) : t;
  }

  /**
   * Fills in the credit side (when it was applied, the payee's balance after) of settled
   * user-to-user transfers, whose credit entries live on the payees' shards.
   */
  async complete(transfers: TransferRecord[]): Promise<TransferRecord[]> {
    const credits = await this.appliedCredits(transfers.filter(needsCredit));
    return transfers.map((t) => {
      const c = credits.get(creditId(t));
      return c ? { ...t, creditBalanceAfter: c.balanceAfter, settledAt: c.appliedAt } : t;
    });
  }

  private async appliedCredits(transfers: TransferRecord[]): Promise<Map<string, AppliedCredit>> {
    const out = new Map<string, AppliedCredit>();
    const byShard = new Map<number, TransferRecord[]>();
    for (const t of transfers) {
      const shard = this.router.shardFor(t.payeeBucket).id;
      byShard.set(shard, [...(byShard.get(shard) ?? []), t]);
    }
    const keyOf = (t: TransferRecord) => [t.payeeBucket, BigInt(t.payee.owner), t.payee.asset, t.createdAt, BigInt(t.homeOwner), t.transferId, SideDb.CREDIT];
    const sql = (n: number) => `SELECT home_owner_id, transfer_id, balance_after, applied_at FROM entries WHERE ${keyIn(ENTRIES, n)}`;
    const take = (rows: Row[]) => {
      for (const r of rows) out.set(`${String(r.home_owner_id)}/${String(r.transfer_id)}`, { balanceAfter: big(r.balance_after), appliedAt: dateOf(r.applied_at) });
    };
    await Promise.all(
      [...byShard].map(async ([shardId, list]) => {
        const shard = this.router.shards.get(shardId);
        if (!shard) return;
        const [rows] = await shard.pool.query<Row[]>(sql(list.length), list.flatMap(keyOf));
        take(rows);
      }),
    );
    // A credit not where the map said: its bucket moved in between; ask again through the router.
    for (const t of transfers) {
      if (out.has(creditId(t))) continue;
      take(await this.router.read(t.payeeBucket, async (conn) => (await conn.query<Row[]>(sql(1), keyOf(t)))[0]));
    }
    return out;
  }

  /** One page of an account's history, newest first, and the cursor for the next page. */
  async history(q: HistoryQuery): Promise<{ transfers: TransferRecord[]; next: HistoryCursor | undefined }> {
    const bucket = bucketOf(q.account.owner);
    const where = ['e.bucket = ?', 'e.owner_id = ?', 'e.asset = ?'];
    const params: unknown[] = [bucket, BigInt(q.account.owner), q.account.asset];
    const and = (sql: string, ...values: unknown[]) => {
      where.push(sql);
      params.push(...values);
    };
    if (q.startTime) and('e.created_at >= ?', q.startTime);
    if (q.endTime) and('e.created_at < ?', q.endTime);
    if (q.kinds.length > 0) and('e.kind IN (?)', q.kinds);
    if (q.after) {
      const a = q.after;
      const at = new Date(a.createdAt);
      const home = BigInt(a.homeOwner);
      and(
        '(e.created_at < ? OR (e.created_at = ? AND (e.home_owner_id < ? OR (e.home_owner_id = ? AND (e.transfer_id < ? OR (e.transfer_id = ? AND e.side < ?))))))',
        at,
        at,
        home,
        home,
        a.transferId,
        a.transferId,
        a.side,
      );
    }
    const rows = await this.router.read(bucket, async (conn) => {
      const [r] = await conn.query<Row[]>(
        `SELECT ${aliased('e', ENTRY_COLUMNS)}, t.kind AS t_kind, t.credit_balance_after AS t_credit_balance_after, t.settled_at AS t_settled_at, ` +
          'EXISTS (SELECT 1 FROM outbox o WHERE o.bucket = e.bucket AND o.home_owner_id = e.home_owner_id AND o.transfer_id = e.transfer_id) AS t_pending ' +
          'FROM entries e LEFT JOIN transfers t ON t.bucket = e.bucket AND t.home_owner_id = e.home_owner_id AND t.transfer_id = e.transfer_id ' +
          `WHERE ${where.join(' AND ')} ORDER BY e.created_at DESC, e.home_owner_id DESC, e.transfer_id DESC, e.side DESC LIMIT ?`,
        [...params, q.limit + 1],
      );
      return r;
    });
    const page = rows.slice(0, q.limit);
    const last = page[page.length - 1];
    const next =
      rows.length > q.limit && last
        ? { createdAt: dateOf(last.created_at).toISOString(), homeOwner: String(last.home_owner_id), transferId: String(last.transfer_id), side: Number(last.side) }
        : undefined;
    return { transfers: await this.complete(page.map((r) => transferFromEntry(r))), next };
  }

  async dailyIncome(streamer: string, startDay: string, endDay: string): Promise<DailyIncomeRow[]> {
    const bucket = bucketOf(streamer);
    const rows = await this.router.read(bucket, async (conn) => {
      const [r] = await conn.query<Row[]>(
        'SELECT day, income, transfer_count, reconciled, updated_at FROM daily_income WHERE bucket = ? AND streamer_id = ? AND day BETWEEN ? AND ? ORDER BY day',
        [bucket, BigInt(streamer), startDay, endDay],
      );
      return r;
    });
    return rows.map((r) => ({ day: String(r.day), income: big(r.income), count: big(r.transfer_count), reconciled: Number(r.reconciled) === 1, updatedAt: dateOf(r.updated_at) }));
  }

  /** The oldest credit not yet applied anywhere: statistics are complete up to it. */
  async oldestPendingCredit(): Promise<Date | undefined> {
    let oldest: Date | undefined;
    for (const shard of this.router.shards.values()) {
      const st = new Statements();
      const i = st.add(`SELECT MIN(t.created_at) AS oldest FROM ${OUTBOX_JOIN} WHERE o.bucket IN (SELECT bucket FROM bucket_state WHERE state IN (1, 2, 3))`);
      const r = rowsOf<Row>((await st.run(shard.pool))[i])[0];
      if (r?.oldest) {
        const d = dateOf(r.oldest);
        if (!oldest || d < oldest) oldest = d;
      }
    }
    return oldest;
  }
}
