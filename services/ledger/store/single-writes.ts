import { bucketOf, bucketOfReference } from '../buckets.js';
import { dayOf } from '../days.js';
import type { TransferRecord } from '../model.js';
import type { SingleWrites } from '../ports.js';
import { ChangeLog } from './buckets-db.js';
import { affected, isDuplicate, Statements, type Row } from './db.js';
import type { BucketRouter } from './router.js';
import { transferFromRow, TRANSFER_COLUMNS, TRANSFER_SELECT } from './rows.js';

/**
 * Writes that touch one row in one bucket, outside the batched transfer path: VoidTransfer's
 * tombstone and TopUp's payment-reference claim. Both go through BucketRouter.write, so they wait
 * out a migration's fence like everything else.
 */

/**
 * Makes a transfer id unusable unless a transfer already has it. The tombstone is a transfers row
 * (voided = 1) under the same primary key, so a concurrent Transfer with that id and this call
 * cannot both win: whichever inserts second finds the other's row.
 */
export async function voidTransfer(
  router: BucketRouter,
  input: { homeOwner: string; transferId: string; reason: string; by: string; now: Date; timeZone: string },
): Promise<{ voided: boolean; transfer: TransferRecord | undefined }> {
  const bucket = bucketOf(input.homeOwner);
  for (let attempt = 0; ; attempt++) {
    try {
      return await router.write(bucket, async (conn, state) => {
        const [rows] = await conn.query<Row[]>(`SELECT ${TRANSFER_SELECT} FROM transfers t WHERE t.bucket = ? AND t.home_owner_id = ? AND t.transfer_id = ?`, [
          bucket,
          BigInt(input.homeOwner),
          input.transferId,
        ]);
        const existing = rows[0] ? transferFromRow(rows[0]) : undefined;
        if (existing) {
          await conn.query('COMMIT');
          return existing.status === 'voided' ? { voided: true, transfer: undefined } : { voided: false, transfer: existing };
        }
        const st = new Statements();
        st.add(
          `INSERT INTO transfers (${TRANSFER_COLUMNS}) VALUES (?, ?, ?, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, ?, ?, ?, ?, NULL, ?)`,
          [bucket, BigInt(input.homeOwner), input.transferId, input.reason, Buffer.alloc(16), BigInt(input.by), input.now, dayOf(input.now, input.timeZone)],
        );
        const log = new ChangeLog(new Map([[bucket, state]]));
        log.note(bucket, 'transfers', [bucket, input.homeOwner, input.transferId]);
        log.addTo(st);
        st.add('COMMIT');
        await st.run(conn);
        return { voided: true, transfer: undefined };
      });
    } catch (err) {
      // A Transfer with the same id committed between our look and our insert: look again.
      if (!isDuplicate(err) || attempt >= 3) throw err;
    }
  }
}

/**
 * Claims a payment reference for (owner, amount), or returns what it was first claimed for.
 * References are unique across owners, so they live in their own bucket (a hash of the reference),
 * not with either owner.
 */
export async function claimPaymentReference(
  router: BucketRouter,
  input: { reference: string; owner: string; amount: bigint; provider: string; now: Date },
): Promise<{ owner: string; amount: bigint }> {
  const bucket = bucketOfReference(input.reference);
  return router.write(bucket, async (conn, state) => {
    const st = new Statements();
    const iInsert = st.add('INSERT IGNORE INTO topup_refs (bucket, payment_reference, owner_id, amount, provider, created_at) VALUES (?, ?, ?, ?, ?, ?)', [
      bucket,
      input.reference,
      BigInt(input.owner),
      input.amount,
      input.provider,
      input.now,
    ]);
    const iRead = st.add('SELECT owner_id, amount FROM topup_refs WHERE bucket = ? AND payment_reference = ?', [bucket, input.reference]);
    const res = await st.run(conn);
    const log = new ChangeLog(new Map([[bucket, state]]));
    if (affected(res[iInsert]) === 1) log.note(bucket, 'topup_refs', [bucket, input.reference]);
    const tail = new Statements();
    log.addTo(tail);
    tail.add('COMMIT');
    await tail.run(conn);
    const row = (res[iRead] as Row[])[0];
    if (!row) throw new Error(`payment reference ${input.reference} vanished after insert`);
    return { owner: String(row.owner_id), amount: BigInt(String(row.amount)) };
  });
}

/** The SingleWrites port over the bucket router: the use cases never see the router. */
export class RoutedSingleWrites implements SingleWrites {
  constructor(private readonly router: BucketRouter) {}

  claimPaymentReference(input: Parameters<SingleWrites['claimPaymentReference']>[0]): Promise<{ owner: string; amount: bigint }> {
    return claimPaymentReference(this.router, input);
  }

  voidTransfer(input: Parameters<SingleWrites['voidTransfer']>[0]): Promise<{ voided: boolean; transfer: TransferRecord | undefined }> {
    return voidTransfer(this.router, input);
  }
}
