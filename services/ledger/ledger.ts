import { createHash } from 'node:crypto';
import { DomainError, idempotencyKeyReused, invalidField, underField, Violations } from '../../kit/domain-error.js';
import { failed, ok, type Outcome } from '../../kit/group-commit.js';
import { isPositiveInt64, requireCaller, requireRole, type Caller } from '../../kit/identity.js';
import { CONTROL_CHARS as CONTROL } from '../../kit/contract-rules.js';
import { isBucket } from './buckets.js';
import { daysBetween, dayDiff, dayOf, isDay } from './days.js';
import { accountsNotAllowed, notAccountOwner, transferNotFound, transferVoided } from './errors.js';
import { levelOf, type Level } from './levels.js';
import {
  Asset,
  ASSETS,
  ID_PATTERN,
  isAsset,
  isKind,
  ISSUER,
  Kind,
  LIMITS,
  sameAccount,
  type AccountKey,
  type BalanceRecord,
  type TransferRecord,
} from './model.js';
import type {
  Audits,
  DailyIncomeRow,
  HistoryCursor,
  InvariantReport,
  LedgerReadPort,
  MigrationRecord,
  Migrations,
  ReconcileReport,
  ShardMapData,
  ShardMapSource,
  SingleWrites,
  TransferCommand,
  TransferOutcome,
  TransferSubmitter,
} from './ports.js';

/** An account as it arrives from the wire: ids as decimal strings, the asset as its enum number. */
export interface AccountInput {
  owner: string;
  asset: number;
}

export interface TransferInput {
  transferId: string;
  kind: number;
  payer: AccountInput | undefined;
  payee: AccountInput | undefined;
  amount: string;
  reference: string;
}

export interface TopUpInput {
  owner: string;
  amount: string;
  paymentReference: string;
  provider: string;
}

export interface HistoryInput {
  account: AccountInput | undefined;
  pageSize: number;
  pageToken: string;
  startTime: Date | undefined;
  endTime: Date | undefined;
  kinds: number[];
}

/** The ports the use cases run on (see ports.ts); service.ts hands in the store's implementations. */
export interface LedgerDeps {
  engine: TransferSubmitter;
  reads: LedgerReadPort;
  writes: SingleWrites;
  audits: Audits;
  migrator: Migrations;
  shardMap: ShardMapSource;
  timeZone: string;
  clock?: () => Date;
}

export const PAGE = { default: 50, max: 200 } as const;
const MAX_INCOME_DAYS = 92;
const TOPUP_PREFIX = 'topup:';

/**
 * Ledger use cases: validation and authorization in front of the transfer engine and the stores.
 * Every client mistake becomes INVALID_ARGUMENT naming the field before anything is written;
 * everything that moves value is idempotent on a key the caller chose.
 */
/** The assets a request names (validated), in order and without repeats; none means every asset. */
function requestedAssets(assets: number[]): readonly Asset[] {
  return assets.length === 0 ? ASSETS : [...new Set(assets as Asset[])].sort((a, b) => a - b);
}

export class Ledger {
  private readonly clock: () => Date;
  /**
   * CheckInvariants scans every shard; callers asking while a scan runs share it (its report is
   * a consistent snapshot from moments before they asked). Under a flood of calls, a scan each
   * slowed the replica until the calls ran past their deadlines (found by the fuzzer).
   */
  private readonly checks = new Map<string, Promise<InvariantReport>>();

  constructor(private readonly deps: LedgerDeps) {
    this.clock = deps.clock ?? (() => new Date());
  }

  get timeZone(): string {
    return this.deps.timeZone;
  }

  async topUp(callerOrNone: Caller | undefined, input: TopUpInput): Promise<TransferOutcome> {
    const caller = requireRole(callerOrNone, ['admin']);
    const v = new Violations();
    v.check(isPositiveInt64(input.owner), 'owner_id', 'must be a positive 64-bit integer');
    const amount = parseAmount(v, 'amount_minor', input.amount);
    checkId(v, 'payment_reference', input.paymentReference);
    v.check(input.provider.length <= LIMITS.providerLength, 'provider', `must be at most ${LIMITS.providerLength} characters`);
    v.check(!CONTROL.test(input.provider), 'provider', 'must not contain control characters');
    v.throwIfAny();
    const claimed = await this.deps.writes.claimPaymentReference({ reference: input.paymentReference, owner: input.owner, amount, provider: input.provider, now: this.clock() });
    if (claimed.owner !== input.owner || claimed.amount !== amount) throw idempotencyKeyReused(input.paymentReference, 'payment_reference');
    const payer = { owner: ISSUER, asset: Asset.COIN };
    const payee = { owner: input.owner, asset: Asset.COIN };
    return this.deps.engine.submit({
      transferId: `${TOPUP_PREFIX}${input.paymentReference}`,
      kind: Kind.TOP_UP,
      payer,
      payee,
      amount,
      reference: input.paymentReference,
      createdBy: caller.userId,
      requestHash: requestHash(Kind.TOP_UP, payer, payee, amount, input.paymentReference),
    });
  }

  async transfer(callerOrNone: Caller | undefined, input: TransferInput): Promise<TransferOutcome> {
    const out = await this.deps.engine.submit(this.transferCommand(callerOrNone, input));
    return this.withCreditSide(out);
  }

  /**
   * CreateTransfers: every transfer validated and authorized alone, then all handed to the
   * engine at once so they share its group commits. One outcome per input, in order; a refusal
   * names its fields under `transfers[<index>].`.
   */
  async transfers(callerOrNone: Caller | undefined, inputs: TransferInput[]): Promise<Array<Outcome<TransferOutcome>>> {
    requireCaller(callerOrNone);
    if (inputs.length === 0) throw invalidField('transfers', `must hold 1 to ${LIMITS.batchTransfers} transfers`);
    if (inputs.length > LIMITS.batchTransfers) throw invalidField('transfers', `must hold at most ${LIMITS.batchTransfers} transfers (got ${inputs.length}); split the batch`);
    const commands = inputs.map((input, i): Outcome<TransferCommand> => {
      try {
        return ok(this.transferCommand(callerOrNone, input));
      } catch (err) {
        return failed(underField(err, `transfers[${i}].`));
      }
    });
    const submitted = this.deps.engine.submitMany(commands.flatMap((c) => (c.ok ? [c.value] : [])));
    let next = 0;
    return Promise.all(
      commands.map(async (c): Promise<Outcome<TransferOutcome>> => {
        if (!c.ok) return c;
        try {
          return ok(await this.withCreditSide(await submitted[next++]!));
        } catch (err) {
          return failed(err);
        }
      }),
    );
  }

  /** Validation and authorization of one Transfer request: the engine's command, or the client's mistake. */
  private transferCommand(callerOrNone: Caller | undefined, input: TransferInput): TransferCommand {
    const caller = requireCaller(callerOrNone);
    const v = new Violations();
    checkId(v, 'transfer_id', input.transferId);
    v.check(!input.transferId.startsWith(TOPUP_PREFIX), 'transfer_id', `the prefix "${TOPUP_PREFIX}" is reserved for TopUp`);
    v.check(isKind(input.kind), 'kind', 'must be one of GIFT, EXP_GRANT, PAYOUT, ADJUSTMENT');
    v.check(input.kind !== Kind.TOP_UP, 'kind', 'TOP_UP transfers are created only by TopUp');
    const payer = parseAccount(v, 'payer', input.payer);
    const payee = parseAccount(v, 'payee', input.payee);
    const amount = parseAmount(v, 'amount_minor', input.amount);
    v.check(input.reference.length <= LIMITS.referenceLength, 'reference', `must be at most ${LIMITS.referenceLength} characters`);
    v.throwIfAny();
    if (!payer || !payee) throw new Error('unreachable: accounts validated');
    if (sameAccount(payer, payee)) throw invalidField('payee', 'must differ from payer');
    const kind = input.kind as Kind;
    checkKindAccounts(kind, payer, payee, input.reference);
    if (kind !== Kind.GIFT && caller.role !== 'admin') throw notAccountOwner(`only admins may create ${kindName(kind)} transfers`);
    if (caller.role !== 'admin' && payer.owner !== caller.userId) throw notAccountOwner(`caller ${caller.userId} may not debit the account of owner ${payer.owner}`);
    return {
      transferId: input.transferId,
      kind,
      payer,
      payee,
      amount,
      reference: input.reference,
      createdBy: caller.userId,
      requestHash: requestHash(kind, payer, payee, amount, input.reference),
    };
  }

  /** A replay of a gift settled since: show its credit side as well. */
  private async withCreditSide(out: TransferOutcome): Promise<TransferOutcome> {
    return out.replayed ? { ...out, transfer: (await this.deps.reads.complete([out.transfer]))[0] ?? out.transfer } : out;
  }

  async balances(callerOrNone: Caller | undefined, ownerId: string, assets: number[]): Promise<{ owner: string; balances: BalanceRecord[]; level: Level }> {
    const owner = this.ownerOrSelf(callerOrNone, ownerId, 'owner_id');
    const v = new Violations();
    assets.forEach((a, i) => v.check(isAsset(a), `assets[${i}]`, 'must be ASSET_COIN, ASSET_INCOME or ASSET_EXP'));
    v.throwIfAny();
    const wanted = requestedAssets(assets);
    const all = await this.deps.reads.balances(owner, [...new Set([...wanted, Asset.EXP])]);
    const exp = all.find((b) => b.asset === Asset.EXP)?.amount ?? 0n;
    return { owner, balances: all.filter((b) => wanted.includes(b.asset)), level: levelOf(exp) };
  }

  async getTransfer(callerOrNone: Caller | undefined, transferId: string, homeOwner: string): Promise<TransferRecord> {
    const caller = requireCaller(callerOrNone);
    const v = new Violations();
    checkLookupId(v, 'transfer_id', transferId);
    v.check(isPositiveInt64(homeOwner), 'home_owner_id', 'must be a positive 64-bit integer');
    v.throwIfAny();
    const t = await this.deps.reads.transfer(homeOwner, transferId);
    if (!t) throw transferNotFound(homeOwner, transferId);
    if (caller.role !== 'admin' && ![t.homeOwner, t.payer.owner, t.payee.owner].includes(caller.userId)) {
      throw notAccountOwner(`caller ${caller.userId} is not a party to transfer ${transferId}`);
    }
    if (t.status === 'voided') throw transferVoided(transferId);
    return t;
  }

  async voidTransfer(callerOrNone: Caller | undefined, transferId: string, homeOwner: string, reason: string) {
    const caller = requireRole(callerOrNone, ['admin']);
    const v = new Violations();
    checkLookupId(v, 'transfer_id', transferId);
    v.check(isPositiveInt64(homeOwner), 'home_owner_id', 'must be a positive 64-bit integer');
    v.check(reason.length <= LIMITS.reasonLength, 'reason', `must be at most ${LIMITS.reasonLength} characters`);
    v.throwIfAny();
    return this.deps.writes.voidTransfer({ homeOwner, transferId, reason, by: caller.userId, now: this.clock(), timeZone: this.deps.timeZone });
  }

  async history(callerOrNone: Caller | undefined, input: HistoryInput): Promise<{ transfers: TransferRecord[]; nextPageToken: string }> {
    const caller = requireCaller(callerOrNone);
    const v = new Violations();
    const account = parseAccount(v, 'account', input.account);
    v.check(account?.owner !== ISSUER, 'account.owner_id', 'the issuer account has no history; name a user');
    v.check(input.pageSize >= 0 && input.pageSize <= PAGE.max, 'page.page_size', `must be between 0 and ${PAGE.max}`);
    const after = input.pageToken ? decodeCursor(input.pageToken) : undefined;
    v.check(input.pageToken === '' || after !== undefined, 'page.page_token', 'is not a token this RPC returned');
    input.kinds.forEach((k, i) => v.check(isKind(k), `kinds[${i}]`, 'must be a TransferKind other than UNSPECIFIED'));
    v.check(!input.startTime || !input.endTime || input.startTime < input.endTime, 'end_time', 'must be after start_time');
    v.throwIfAny();
    if (!account) throw new Error('unreachable: account validated');
    if (caller.role !== 'admin' && account.owner !== caller.userId) throw notAccountOwner(`caller ${caller.userId} may not read the history of owner ${account.owner}`);
    const page = await this.deps.reads.history({
      account,
      limit: input.pageSize || PAGE.default,
      after,
      startTime: input.startTime,
      endTime: input.endTime,
      kinds: input.kinds as Kind[],
    });
    return { transfers: page.transfers, nextPageToken: page.next ? encodeCursor(page.next) : '' };
  }

  async dailyIncome(callerOrNone: Caller | undefined, streamerId: string, startDay: string, endDay: string) {
    const streamer = this.ownerOrSelf(callerOrNone, streamerId, 'streamer_id');
    const v = new Violations();
    v.check(isDay(startDay), 'start_day', 'must be a calendar day, YYYY-MM-DD');
    v.check(isDay(endDay), 'end_day', 'must be a calendar day, YYYY-MM-DD');
    v.throwIfAny();
    v.check(dayDiff(startDay, endDay) >= 0, 'end_day', 'must not be before start_day');
    v.check(dayDiff(startDay, endDay) <= MAX_INCOME_DAYS, 'end_day', `must be at most ${MAX_INCOME_DAYS} days after start_day`);
    v.throwIfAny();
    const [rows, oldest] = await Promise.all([this.deps.reads.dailyIncome(streamer, startDay, endDay), this.deps.reads.oldestPendingCredit()]);
    const byDay = new Map(rows.map((r) => [r.day, r]));
    const days: DailyIncomeRow[] = daysBetween(startDay, endDay).map((day) => byDay.get(day) ?? { day, income: 0n, count: 0n, reconciled: false, updatedAt: null });
    const now = this.clock();
    return { days, total: days.reduce((s, d) => s + d.income, 0n), timeZone: this.deps.timeZone, asOf: oldest && oldest < now ? oldest : now };
  }

  async reconcile(callerOrNone: Caller | undefined, day: string, streamerId: string, dryRun: boolean): Promise<ReconcileReport> {
    requireRole(callerOrNone, ['admin']);
    const v = new Violations();
    v.check(isDay(day), 'day', 'must be a calendar day, YYYY-MM-DD');
    v.check(!isDay(day) || dayDiff(dayOf(this.clock(), this.deps.timeZone), day) <= 0, 'day', 'must not be in the future');
    v.check(streamerId === '0' || isPositiveInt64(streamerId), 'streamer_id', 'must be 0 (every streamer) or a positive 64-bit integer');
    v.throwIfAny();
    return this.deps.audits.reconcileDay({ day, streamer: streamerId === '0' ? undefined : streamerId, dryRun });
  }

  async checkInvariants(callerOrNone: Caller | undefined, assets: number[]): Promise<InvariantReport> {
    requireRole(callerOrNone, ['admin']);
    const v = new Violations();
    assets.forEach((a, i) => v.check(isAsset(a), `assets[${i}]`, 'must be ASSET_COIN, ASSET_INCOME or ASSET_EXP'));
    v.throwIfAny();
    const wanted = requestedAssets(assets);
    const key = wanted.join(',');
    const running = this.checks.get(key);
    if (running) return running;
    const check = this.deps.audits.checkInvariants(wanted).finally(() => this.checks.delete(key));
    this.checks.set(key, check);
    return check;
  }

  shardMap(callerOrNone: Caller | undefined): ShardMapData {
    requireRole(callerOrNone, ['admin']);
    return this.deps.shardMap.current;
  }

  async migrateBucket(callerOrNone: Caller | undefined, bucket: number, target: number, requestId: string): Promise<MigrationRecord> {
    requireRole(callerOrNone, ['admin']);
    const v = new Violations();
    v.check(isBucket(bucket), 'bucket', 'must be between 0 and 255');
    v.check(Number.isInteger(target) && target >= 0, 'target_shard_id', 'must be a shard id (0 or more)');
    v.check(requestId.length > 0 && requestId.length <= LIMITS.idLength, 'request_id', `must be 1 to ${LIMITS.idLength} characters`);
    v.check(!CONTROL.test(requestId), 'request_id', 'must not contain control characters');
    v.throwIfAny();
    return this.deps.migrator.start(bucket, target, requestId);
  }

  async migration(callerOrNone: Caller | undefined, id: string): Promise<MigrationRecord> {
    requireRole(callerOrNone, ['admin']);
    if (id.length === 0 || id.length > LIMITS.idLength) throw invalidField('migration_id', `must be 1 to ${LIMITS.idLength} characters`);
    return this.deps.migrator.get(id);
  }

  /** `0` (or empty) means the caller; anyone else's data needs ROLE_ADMIN. */
  private ownerOrSelf(callerOrNone: Caller | undefined, id: string, field: string): string {
    const caller = requireCaller(callerOrNone);
    if (id === '0' || id === '') return caller.userId;
    if (!isPositiveInt64(id)) throw invalidField(field, 'must be 0 (the caller) or a positive 64-bit integer');
    if (id !== caller.userId && caller.role !== 'admin') throw notAccountOwner(`caller ${caller.userId} may not read the data of owner ${id}`);
    return id;
  }
}

function checkId(v: Violations, field: string, id: string): void {
  v.check(id.length > 0, field, 'is required');
  v.check(id.length <= LIMITS.idLength, field, `must be at most ${LIMITS.idLength} characters`);
  v.check(id.length === 0 || id.length > LIMITS.idLength || ID_PATTERN.test(id), field, 'may contain only letters, digits and . _ : -');
}

/** Lookups accept TopUp's derived ids too ("topup:" + a 64-character reference). */
function checkLookupId(v: Violations, field: string, id: string): void {
  const max = LIMITS.idLength + TOPUP_PREFIX.length;
  v.check(id.length > 0, field, 'is required');
  v.check(id.length <= max, field, `must be at most ${max} characters`);
  v.check(/^[A-Za-z0-9._:-]*$/.test(id), field, 'may contain only letters, digits and . _ : -');
}

const INT = /^-?[0-9]+$/;

function parseAmount(v: Violations, field: string, raw: string): bigint {
  if (!INT.test(raw)) {
    v.add(field, 'must be an integer number of minor units');
    return 0n;
  }
  const n = BigInt(raw);
  if (n <= 0n) v.add(field, 'must be positive');
  else if (n > LIMITS.maxAmount) v.add(field, `must be at most ${LIMITS.maxAmount} minor units`);
  return n;
}

function parseAccount(v: Violations, field: string, a: AccountInput | undefined): AccountKey | undefined {
  if (!a) {
    v.add(field, 'is required');
    return undefined;
  }
  const ownerOk = a.owner === ISSUER || isPositiveInt64(a.owner);
  v.check(ownerOk, `${field}.owner_id`, 'must be 0 (the issuer) or a positive 64-bit integer');
  v.check(isAsset(a.asset), `${field}.asset`, 'must be ASSET_COIN, ASSET_INCOME or ASSET_EXP');
  return ownerOk && isAsset(a.asset) ? { owner: a.owner, asset: a.asset } : undefined;
}

const kindName = (k: Kind) => (['', 'TOP_UP', 'GIFT', 'EXP_GRANT', 'PAYOUT', 'ADJUSTMENT'] as const)[k];

/** The accounts each kind allows (TransferKind in the contract). */
function checkKindAccounts(kind: Kind, payer: AccountKey, payee: AccountKey, reference: string): void {
  const user = (a: AccountKey) => a.owner !== ISSUER;
  const need = (ok: boolean, field: string, message: string) => {
    if (!ok) throw accountsNotAllowed(field, message);
  };
  switch (kind) {
    case Kind.GIFT:
      need(user(payer) && payer.asset === Asset.COIN, 'payer', 'a GIFT is paid from a user’s COIN');
      need(user(payee) && payee.asset === Asset.INCOME, 'payee', 'a GIFT is paid to a user’s INCOME');
      need(payer.owner !== payee.owner, 'payee.owner_id', 'a GIFT goes to another user');
      return;
    case Kind.EXP_GRANT:
      need(!user(payer) && payer.asset === Asset.EXP, 'payer', 'EXP is granted from the EXP issuer (owner 0); it never moves between users');
      need(user(payee) && payee.asset === Asset.EXP, 'payee', 'EXP is granted to a user’s EXP');
      return;
    case Kind.PAYOUT:
      need(user(payer) && payer.asset === Asset.INCOME, 'payer', 'a PAYOUT is paid from a user’s INCOME');
      need(!user(payee) && payee.asset === Asset.INCOME, 'payee', 'a PAYOUT goes to the INCOME issuer (owner 0)');
      return;
    case Kind.ADJUSTMENT:
      need(user(payer) !== user(payee), 'payee', 'an ADJUSTMENT is between a user and the issuer (owner 0)');
      need(payer.asset === payee.asset, 'payee.asset', 'an ADJUSTMENT stays in one asset');
      if (reference.trim() === '') throw invalidField('reference', 'is required for an ADJUSTMENT: say why');
      return;
    default:
      throw new DomainError('invalid_argument', 'FIELD_INVALID', 'kind: not allowed here', { metadata: { field: 'kind' } });
  }
}

/** What makes two requests with the same key the same request. */
function requestHash(kind: Kind, payer: AccountKey, payee: AccountKey, amount: bigint, reference: string): Buffer {
  return createHash('sha256')
    .update(JSON.stringify([kind, payer.owner, payer.asset, payee.owner, payee.asset, String(amount), reference]))
    .digest()
    .subarray(0, 16);
}

function encodeCursor(c: HistoryCursor): string {
  return Buffer.from(JSON.stringify([c.createdAt, c.homeOwner, c.transferId, c.side])).toString('base64url');
}

function decodeCursor(token: string): HistoryCursor | undefined {
  try {
    const [createdAt, homeOwner, transferId, side] = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as unknown[];
    if (typeof createdAt !== 'string' || Number.isNaN(new Date(createdAt).getTime())) return undefined;
    if (typeof homeOwner !== 'string' || !/^[0-9]{1,20}$/.test(homeOwner)) return undefined;
    if (typeof transferId !== 'string' || !/^[A-Za-z0-9._:-]{1,80}$/.test(transferId)) return undefined;
    if (side !== 1 && side !== 2) return undefined;
    return { createdAt, homeOwner, transferId, side };
  } catch {
    return undefined;
  }
}
