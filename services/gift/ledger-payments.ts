import { status as Code, type Metadata, type ServiceError } from '@grpc/grpc-js';
import { Asset } from '../../gen/ts/livemesh/common/v1/common.js';
import { TransferKind, type LedgerServiceClient, type TransferRequest, type TransferResponse, type VoidTransferResponse } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { DomainError } from '../kit/domain-error.js';
import { errorInfoOf } from '../kit/grpc-errors.js';
import type { OrderRecord } from './model.js';
import type { Payments, TransferOutcome } from './ports.js';

/** Answers that leave the outcome of a Transfer unknown: the recovery worker settles those orders. */
const UNKNOWN_OUTCOME = new Set([Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.CANCELLED, Code.UNKNOWN, Code.INTERNAL, Code.RESOURCE_EXHAUSTED]);

const giftTransferId = (orderId: string) => `gift:${orderId}`;
const expTransferId = (orderId: string) => `exp:${orderId}`;

/** Payments through the Ledger service. Transfer ids are derived from the order, so every call is safe to repeat. */
export class LedgerPayments implements Payments {
  constructor(
    private readonly ledger: LedgerServiceClient,
    private readonly identity: Metadata,
    private readonly deadlineMs = 5000,
  ) {}

  async payGift(order: OrderRecord): Promise<TransferOutcome> {
    try {
      const res = await this.transfer({
        transferId: giftTransferId(order.orderId),
        kind: TransferKind.TRANSFER_KIND_GIFT,
        payer: { ownerId: order.senderId, asset: Asset.ASSET_COIN },
        payee: { ownerId: order.streamerId, asset: Asset.ASSET_INCOME },
        amountMinor: order.amountMinor,
        reference: `gift order ${order.orderId}`,
      });
      return { kind: 'paid', balanceAfter: res.payerBalance?.amountMinor ?? null };
    } catch (err) {
      const reason = errorInfoOf((err as ServiceError).metadata)?.reason;
      if (reason === 'INSUFFICIENT_FUNDS') return { kind: 'insufficient_funds' };
      if (reason === 'TRANSFER_VOIDED') return { kind: 'voided' };
      throw this.unknownOrRethrow(err);
    }
  }

  async settle(order: OrderRecord): Promise<'paid' | 'voided'> {
    const res = await new Promise<VoidTransferResponse>((resolve, reject) =>
      this.ledger.voidTransfer(
        { transferId: giftTransferId(order.orderId), homeOwnerId: order.senderId, reason: `gift order ${order.orderId} recovery` },
        this.identity,
        { deadline: Date.now() + this.deadlineMs },
        (err, r) => (err ? reject(this.unknownOrRethrow(err)) : resolve(r)),
      ),
    );
    return res.transfer ? 'paid' : 'voided';
  }

  async grantExp(grant: { orderId: string; senderId: string; expMinor: string }): Promise<void> {
    try {
      await this.transfer({
        transferId: expTransferId(grant.orderId),
        kind: TransferKind.TRANSFER_KIND_EXP_GRANT,
        payer: { ownerId: '0', asset: Asset.ASSET_EXP },
        payee: { ownerId: grant.senderId, asset: Asset.ASSET_EXP },
        amountMinor: grant.expMinor,
        reference: `gift order ${grant.orderId}`,
      });
    } catch (err) {
      throw this.unknownOrRethrow(err);
    }
  }

  private transfer(req: TransferRequest): Promise<TransferResponse> {
    return new Promise((resolve, reject) =>
      this.ledger.transfer(req, this.identity, { deadline: Date.now() + this.deadlineMs }, (err, res) => (err ? reject(err) : resolve(res))),
    );
  }

  /** UNAVAILABLE-like answers become the domain's "unknown outcome"; definite refusals pass through as they are. */
  private unknownOrRethrow(err: unknown): unknown {
    const code = (err as ServiceError).code;
    if (typeof code === 'number' && UNKNOWN_OUTCOME.has(code)) {
      return new DomainError('unavailable', 'DEPENDENCY_UNAVAILABLE', `ledger: ${(err as ServiceError).details || 'unavailable'}`);
    }
    return err;
  }
}
