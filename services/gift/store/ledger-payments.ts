import { status as Code } from '@grpc/grpc-js';
import { Asset } from '../../../gen/ts/livemesh/common/v1/common.js';
import { TransferKind, type CreateTransfersResponse, type TransferRequest, type TransferResponse } from '../../../gen/ts/livemesh/ledger/v1/ledger.js';
import { DomainError } from '../../../kit/domain-error.js';
import { failed, ok, type Outcome } from '../../../kit/group-commit.js';
import { errorInfoOf, GrpcCallError, serviceErrorOf } from '../../../kit/grpc-errors.js';
import type { LedgerClient } from '../../ledger/client.js';
import type { OrderRecord } from '../model.js';
import type { ExpGrant, Payments, TransferOutcome } from '../ports.js';

/** Answers that leave the outcome of a Transfer unknown: the recovery worker settles those orders. */
const UNKNOWN_OUTCOME = new Set([Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.CANCELLED, Code.UNKNOWN, Code.INTERNAL, Code.RESOURCE_EXHAUSTED]);

const giftTransferId = (orderId: string) => `gift:${orderId}`;
const expTransferId = (orderId: string) => `exp:${orderId}`;

const giftTransfer = (order: OrderRecord): TransferRequest => ({
  transferId: giftTransferId(order.orderId),
  kind: TransferKind.TRANSFER_KIND_GIFT,
  payer: { ownerId: order.senderId, asset: Asset.ASSET_COIN },
  payee: { ownerId: order.streamerId, asset: Asset.ASSET_INCOME },
  amountMinor: order.amountMinor,
  reference: `gift order ${order.orderId}`,
});

const expTransfer = (grant: ExpGrant): TransferRequest => ({
  transferId: expTransferId(grant.orderId),
  kind: TransferKind.TRANSFER_KIND_EXP_GRANT,
  payer: { ownerId: '0', asset: Asset.ASSET_EXP },
  payee: { ownerId: grant.senderId, asset: Asset.ASSET_EXP },
  amountMinor: grant.expMinor,
  reference: `gift order ${grant.orderId}`,
});

/**
 * Payments through the Ledger service. Transfer ids are derived from the order, so every call is
 * safe to repeat. Batches go through CreateTransfers, one call for many orders; each transfer's
 * result is read exactly as a Transfer call's answer would be.
 */
export class LedgerPayments implements Payments {
  constructor(
    private readonly ledger: LedgerClient,
    private readonly deadlineMs = 5000,
  ) {}

  async payGifts(orders: OrderRecord[]): Promise<Array<Outcome<TransferOutcome>>> {
    const results = await this.createTransfers(orders.map(giftTransfer));
    return results.map((r) => {
      if (r.ok) return ok({ kind: 'paid', balanceAfter: r.value.payerBalance?.amountMinor ?? null });
      const reason = GrpcCallError.is(r.error) ? errorInfoOf(r.error.metadata)?.reason : undefined;
      if (reason === 'INSUFFICIENT_FUNDS') return ok({ kind: 'insufficient_funds' });
      if (reason === 'TRANSFER_VOIDED') return ok({ kind: 'voided' });
      return failed(unknownOrRethrow(r.error));
    });
  }

  async settle(order: OrderRecord): Promise<'paid' | 'voided'> {
    const res = await this.ledger
      .voidTransfer({ transferId: giftTransferId(order.orderId), homeOwnerId: order.senderId, reason: `gift order ${order.orderId} recovery` }, { deadlineMs: this.deadlineMs })
      .catch((err: unknown) => {
        throw unknownOrRethrow(err);
      });
    return res.transfer ? 'paid' : 'voided';
  }

  async grantExps(grants: ExpGrant[]): Promise<Array<Outcome<void>>> {
    const results = await this.createTransfers(grants.map(expTransfer));
    return results.map((r) => (r.ok ? ok(undefined) : failed(unknownOrRethrow(r.error))));
  }

  /**
   * One CreateTransfers call; each result as the ServiceError or response its own Transfer call
   * would have given. A failure of the whole call (the Ledger down, a deadline) fails every item
   * the way it would have failed each single call.
   */
  private async createTransfers(transfers: TransferRequest[]): Promise<Array<Outcome<TransferResponse>>> {
    let res: CreateTransfersResponse;
    try {
      res = await this.ledger.createTransfers({ transfers }, { deadlineMs: this.deadlineMs });
    } catch (err) {
      return transfers.map(() => failed(err));
    }
    if (res.results.length !== transfers.length) {
      const err = new DomainError('unavailable', 'DEPENDENCY_UNAVAILABLE', `ledger: CreateTransfers answered ${res.results.length} results for ${transfers.length} transfers`);
      return transfers.map(() => failed(err));
    }
    return res.results.map((r) => (r.transfer ? ok(r.transfer) : failed(serviceErrorOf(r.error ?? { code: Code.UNKNOWN, message: 'no result', details: [] }))));
  }
}

/** UNAVAILABLE-like answers become the domain's "unknown outcome"; definite refusals pass through as they are. */
function unknownOrRethrow(err: unknown): unknown {
  if (GrpcCallError.is(err) && UNKNOWN_OUTCOME.has(err.code)) {
    return new DomainError('unavailable', 'DEPENDENCY_UNAVAILABLE', `ledger: ${err.details || 'unavailable'}`);
  }
  return err;
}
