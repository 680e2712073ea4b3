/**
 * The Ledger's domain vocabulary. Assets and kinds use the contract's numbering on purpose: the
 * same small integers are stored in the shard databases, so a row read with the mysql client means
 * the same thing as a message read with grpcurl. Amounts and ids are bigint / decimal strings from
 * the wire to the database; no amount ever passes through a JS number.
 */

import { LEDGER_CONTRACT } from '../../kit/contract-rules.js';

export const Asset = { COIN: 1, INCOME: 2, EXP: 3 } as const;
export type Asset = (typeof Asset)[keyof typeof Asset];
export const ASSETS: readonly Asset[] = [Asset.COIN, Asset.INCOME, Asset.EXP];
export const ASSET_NAMES: Record<Asset, string> = { 1: 'COIN', 2: 'INCOME', 3: 'EXP' };

export const Kind = { TOP_UP: 1, GIFT: 2, EXP_GRANT: 3, PAYOUT: 4, ADJUSTMENT: 5 } as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

export const isAsset = (n: number): n is Asset => n === 1 || n === 2 || n === 3;
export const isKind = (n: number): n is Kind => Number.isInteger(n) && n >= 1 && n <= 5;

/** The issuer of every asset: the other side of mints and burns, with no balance row. */
export const ISSUER = '0';

/** Bounds from the contract. */
export const LIMITS = {
  maxAmount: 1_000_000_000_000n,
  /** No balance passes this (also a CHECK constraint on accounts). */
  maxBalance: 1_000_000_000_000_000_000n,
  idLength: 64,
  referenceLength: 128,
  ...LEDGER_CONTRACT,
  reasonLength: 128,
  /** Transfers one CreateTransfers call may carry. */
  batchTransfers: 500,
} as const;

/** Transfer and payment-reference ids: what fits in a URL, a log line and a NATS subject token. */
export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

export interface AccountKey {
  /** Decimal int64; "0" is the asset's issuer. */
  owner: string;
  asset: Asset;
}

export type TransferStatus = 'pending' | 'settled' | 'voided';

/**
 * How a transfer touches the shards:
 * - `mint`: issuer → user. Homed on the payee's shard, credited in the same transaction.
 * - `burn`: user → issuer. Homed on the payer's shard; the issuer side has no balance.
 * - `move`: user → another user (a gift). Debited on the payer's shard; the credit travels
 *   through the outbox to the payee's shard, aggregated with other credits to the same account.
 */
export type TransferMode = 'mint' | 'burn' | 'move';

export interface TransferRecord {
  transferId: string;
  homeOwner: string;
  kind: Kind;
  status: TransferStatus;
  payer: AccountKey;
  payee: AccountKey;
  payerBucket: number;
  payeeBucket: number;
  amount: bigint;
  /** The payer's balance right after the debit (0 for the issuer). */
  debitBalanceAfter: bigint;
  /** The payee's balance right after the credit; 0 while pending or for the issuer. */
  creditBalanceAfter: bigint;
  reference: string;
  createdBy: string;
  createdAt: Date;
  settledAt: Date | null;
  /** Business day of createdAt, YYYY-MM-DD. */
  day: string;
}

export interface BalanceRecord {
  asset: Asset;
  amount: bigint;
  pendingCredit: bigint;
  allowNegative: boolean;
  updatedAt: Date | null;
}

export const modeOf = (payer: AccountKey, payee: AccountKey): TransferMode =>
  payer.owner === ISSUER ? 'mint' : payee.owner === ISSUER ? 'burn' : 'move';

/** The owner whose shard stores the transfer: the payer, or the payee for a mint. */
export const homeOwnerOf = (payer: AccountKey, payee: AccountKey): string => (payer.owner === ISSUER ? payee.owner : payer.owner);

export const sameAccount = (a: AccountKey, b: AccountKey) => a.owner === b.owner && a.asset === b.asset;
