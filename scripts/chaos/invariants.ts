import type { GiftSendRecord } from '../load/gift-sends.js';
import { ASSET_LIST, assetName, type ChaosState } from './state.js';

/** One invariant's verdict: a line to print, and what broke it. */
export interface Check {
  name: string;
  holds: boolean;
  /** the figures behind the verdict, printed whether it holds or not */
  details: string[];
  violations: string[];
}

export interface InvariantInput {
  state: ChaosState;
  /** every gift send the load attempted */
  sends: GiftSendRecord[];
  viewers: string[];
  topUpMinor: bigint;
  /**
   * Per board ("live", "day"), per room, each user's exact total as Ranking answers it. Every room
   * went live once before the load, so both boards must hold the sum of the room's paid gifts.
   */
  ranking: Record<string, Map<string, Map<string, bigint>>>;
}

const MAX_SHOWN = 20;

class Verdict {
  readonly details: string[] = [];
  readonly violations: string[] = [];
  private count = 0;

  constructor(readonly name: string) {}

  fail(text: string): void {
    this.count++;
    if (this.violations.length < MAX_SHOWN) this.violations.push(text);
  }

  done(): Check {
    if (this.count > this.violations.length) this.violations.push(`… and ${this.count - this.violations.length} more`);
    return { name: this.name, holds: this.count === 0, details: this.details, violations: this.violations };
  }
}

const sum = (values: Iterable<bigint>) => {
  let t = 0n;
  for (const v of values) t += v;
  return t;
};
const addTo = <K>(m: Map<K, bigint>, k: K, v: bigint) => m.set(k, (m.get(k) ?? 0n) + v);
const tkey = (homeOwner: string, transferId: string) => `${homeOwner}/${transferId}`;

/**
 * The chaos run's verdicts, computed from what the databases hold and what the clients saw. Each
 * is an independent recount (not the Ledger's own CheckInvariants, whose code is under test too).
 */
export function checkInvariants(input: InvariantInput): Check[] {
  return [conservation(input), noDoubleDebit(input), ordersSettled(input), effectsOnce(input)];
}

/** Per asset, what users hold plus what is on its way to them equals what was minted minus what was burned; and every balance is its entries' sum. */
function conservation({ state, viewers, topUpMinor }: InvariantInput): Check {
  const v = new Verdict('money conservation per asset');
  for (const asset of ASSET_LIST) {
    const balances = sum(state.accounts.filter((a) => a.asset === asset && a.owner !== '0').map((a) => a.balance));
    const live = state.transfers.filter((t) => !t.voided);
    const inFlight = sum(live.filter((t) => t.creditInFlight && t.payeeAsset === asset).map((t) => t.amount));
    // A transfer between two assets (COIN → INCOME) burns one and mints the other, as the Ledger counts it.
    const minted = sum(live.filter((t) => t.payee !== '0' && t.payeeAsset === asset && (t.payer === '0' || t.payerAsset !== t.payeeAsset)).map((t) => t.amount));
    const burned = sum(live.filter((t) => t.payer !== '0' && t.payerAsset === asset && (t.payee === '0' || t.payerAsset !== t.payeeAsset)).map((t) => t.amount));
    const holds = balances + inFlight === minted - burned;
    v.details.push(`${assetName(asset)}: balances ${balances} + in flight ${inFlight} ${holds ? '=' : '≠'} minted ${minted} − burned ${burned}`);
    if (!holds) v.fail(`${assetName(asset)}: balances ${balances} + in flight ${inFlight} ≠ minted ${minted} − burned ${burned} (off by ${balances + inFlight - (minted - burned)})`);
  }
  const topUps = sum(state.transfers.filter((t) => !t.voided && t.transferId.startsWith('topup:')).map((t) => t.amount));
  const expected = topUpMinor * BigInt(viewers.length);
  v.details.push(`COIN topped up ${topUps} (expected ${viewers.length} × ${topUpMinor} = ${expected})`);
  if (topUps !== expected) v.fail(`COIN topped up ${topUps}, expected ${expected}`);
  const net = new Map<string, bigint>();
  for (const e of state.entries) addTo(net, `${e.owner}/${e.asset}`, e.side === 'credit' ? e.amount : -e.amount);
  for (const a of state.accounts) {
    const entries = net.get(`${a.owner}/${a.asset}`) ?? 0n;
    if (a.balance !== entries) v.fail(`account ${a.owner}/${assetName(a.asset)} on ${a.shard} holds ${a.balance} but its entries sum to ${entries}`);
    if (a.owner !== '0' && a.balance < 0n) v.fail(`account ${a.owner}/${assetName(a.asset)} is negative: ${a.balance}`);
  }
  v.details.push(`${state.accounts.length} accounts, each equal to the sum of its ${state.entries.length} entries`);
  return v.done();
}

/** No transfer has two debits (or two credits), no idempotency key made two orders, no order was paid by two transfers. */
function noDoubleDebit({ state, sends }: InvariantInput): Check {
  const v = new Verdict('no transfer debited twice');
  const debits = new Map<string, number>();
  const credits = new Map<string, number>();
  for (const e of state.entries) {
    const m = e.side === 'debit' ? debits : credits;
    m.set(tkey(e.homeOwner, e.transferId), (m.get(tkey(e.homeOwner, e.transferId)) ?? 0) + 1);
  }
  for (const [k, n] of debits) if (n > 1) v.fail(`transfer ${k} has ${n} debit entries`);
  for (const [k, n] of credits) if (n > 1) v.fail(`transfer ${k} has ${n} credit entries`);
  const giftTransfers = new Map<string, number>();
  for (const t of state.transfers) if (!t.voided && t.transferId.startsWith('gift:')) giftTransfers.set(t.transferId, (giftTransfers.get(t.transferId) ?? 0) + 1);
  for (const [id, n] of giftTransfers) if (n > 1) v.fail(`${id} exists ${n} times`);
  const ordersByKey = new Map<string, number>();
  for (const o of state.orders) ordersByKey.set(`${o.senderId}/${o.idempotencyKey}`, (ordersByKey.get(`${o.senderId}/${o.idempotencyKey}`) ?? 0) + 1);
  const retried = sends.filter((s) => s.attempts.length > 1);
  for (const s of sends) {
    const n = ordersByKey.get(`${s.senderId}/${s.idempotencyKey}`) ?? 0;
    if (n > 1) v.fail(`idempotency key ${s.idempotencyKey} of ${s.senderId} made ${n} orders`);
  }
  const debitCount = [...debits.values()].reduce((a, b) => a + b, 0);
  v.details.push(`${debits.size} transfers with debits (${debitCount} debit entries), ${giftTransfers.size} gift transfers, ${sends.length} sends of which ${retried.length} retried with the same key (${sum(retried.map((s) => BigInt(s.attempts.length - 1)))} retries)`);
  return v.done();
}

/** Every order ended DONE or FAILED; a DONE order moved its amount once, a FAILED one moved nothing; balances agree with the DONE orders. */
function ordersSettled({ state, sends, viewers, topUpMinor }: InvariantInput): Check {
  const v = new Verdict('every order DONE or FAILED, money moved exactly when DONE');
  const byState = new Map<string, number>();
  for (const o of state.orders) byState.set(o.state, (byState.get(o.state) ?? 0) + 1);
  v.details.push(`orders: ${[...byState].map(([s, n]) => `${s} ${n}`).join(', ') || 'none'}`);
  const transfers = new Map(state.transfers.filter((t) => !t.voided).map((t) => [t.transferId, t]));
  const debited = new Set(state.entries.filter((e) => e.side === 'debit').map((e) => e.transferId));
  const credited = new Set(state.entries.filter((e) => e.side === 'credit').map((e) => e.transferId));
  const orderIds = new Set<string>();
  const spent = new Map<string, bigint>();
  const earned = new Map<string, bigint>();
  for (const o of state.orders) {
    orderIds.add(o.orderId);
    const id = `gift:${o.orderId}`;
    const t = transfers.get(id);
    if (o.state === 'DONE') {
      addTo(spent, o.senderId, o.amount);
      addTo(earned, o.streamerId, o.income);
      if (!t) v.fail(`order ${o.orderId} is DONE but ${id} does not exist`);
      else {
        if (t.amount !== o.amount || t.payer !== o.senderId || t.payee !== o.streamerId) v.fail(`order ${o.orderId}: ${id} moved ${t.amount} from ${t.payer} to ${t.payee}, the order says ${o.amount} from ${o.senderId} to ${o.streamerId}`);
        if (!debited.has(id)) v.fail(`order ${o.orderId} is DONE but ${id} has no debit entry`);
        if (!credited.has(id)) v.fail(`order ${o.orderId} is DONE but ${id} was never credited${t.creditInFlight ? ' (still in flight)' : ''}`);
      }
    } else if (o.state === 'FAILED') {
      if (t || debited.has(id)) v.fail(`order ${o.orderId} is FAILED but ${id} moved ${t?.amount ?? '?'}`);
    } else v.fail(`order ${o.orderId} is still ${o.state}`);
  }
  for (const t of transfers.values()) if (t.transferId.startsWith('gift:') && !orderIds.has(t.transferId.slice(5))) v.fail(`${t.transferId} moved ${t.amount} but there is no such order`);
  // What the clients were told must agree with the final state.
  const orderById = new Map(state.orders.map((o) => [o.orderId, o]));
  for (const s of sends) if (s.outcome === 'OK' && (!s.orderId || orderById.get(s.orderId)?.state !== 'DONE')) v.fail(`send ${s.idempotencyKey} was answered OK but its order ${s.orderId ?? '?'} is ${s.orderId ? (orderById.get(s.orderId)?.state ?? 'missing') : 'unknown'}`);
  // Balances: each viewer's COIN is the top-up minus its DONE orders, each streamer's INCOME the sum of its DONE orders.
  const balance = new Map(state.accounts.map((a) => [`${a.owner}/${a.asset}`, a.balance]));
  let checked = 0;
  for (const viewer of viewers) {
    const coin = balance.get(`${viewer}/1`) ?? 0n;
    const expected = topUpMinor - (spent.get(viewer) ?? 0n);
    checked++;
    if (coin !== expected) v.fail(`viewer ${viewer} holds ${coin} COIN, expected ${topUpMinor} − DONE orders ${spent.get(viewer) ?? 0n} = ${expected}`);
  }
  for (const [streamer, income] of earned) {
    const held = balance.get(`${streamer}/2`) ?? 0n;
    checked++;
    if (held !== income) v.fail(`streamer ${streamer} holds ${held} INCOME, DONE orders paid ${income}`);
  }
  v.details.push(`${checked} balances equal to top-up minus DONE orders (viewers) or the sum of DONE orders (streamers); ${sends.filter((s) => s.outcome === 'OK').length} sends answered OK, all DONE`);
  return v.done();
}

/** Each DONE order granted its EXP exactly once and counted on the room's ranking exactly once; a FAILED one did neither. */
function effectsOnce({ state, ranking }: InvariantInput): Check {
  const v = new Verdict("every DONE order's effects applied exactly once");
  const expTransfers = new Map<string, bigint[]>();
  for (const t of state.transfers) if (!t.voided && t.transferId.startsWith('exp:')) expTransfers.set(t.transferId.slice(4), [...(expTransfers.get(t.transferId.slice(4)) ?? []), t.amount]);
  const expOf = new Map<string, bigint>();
  const scores = new Map<string, Map<string, bigint>>();
  let done = 0;
  for (const o of state.orders) {
    const grants = expTransfers.get(o.orderId) ?? [];
    if (o.state === 'DONE') {
      done++;
      addTo(expOf, o.senderId, o.exp);
      if (grants.length !== 1 || grants[0] !== o.exp) v.fail(`order ${o.orderId}: EXP granted ${grants.length} times (${grants.join(', ')}), expected once ${o.exp}`);
      const room = scores.get(o.roomId) ?? new Map<string, bigint>();
      addTo(room, o.senderId, o.amount);
      scores.set(o.roomId, room);
    } else if (grants.length > 0) v.fail(`order ${o.orderId} is ${o.state} but EXP was granted ${grants.length} times`);
  }
  for (const [orderId] of expTransfers) if (!state.orders.some((o) => o.orderId === orderId)) v.fail(`exp:${orderId} has no order`);
  const expBalance = new Map(state.accounts.filter((a) => a.asset === 3).map((a) => [a.owner, a.balance]));
  for (const [user, exp] of expOf) if ((expBalance.get(user) ?? 0n) !== exp) v.fail(`user ${user} holds ${expBalance.get(user) ?? 0n} EXP, DONE orders granted ${exp}`);
  let pairs = 0;
  for (const [period, boards] of Object.entries(ranking)) {
    for (const [roomId, expected] of scores) {
      const board = boards.get(roomId) ?? new Map<string, bigint>();
      for (const [user, amount] of expected) {
        pairs++;
        const score = board.get(user);
        if (score !== amount) v.fail(`room ${roomId}, ${period} board: user ${user} scores ${score ?? 'nothing'}, DONE orders paid ${amount}`);
      }
      for (const [user, score] of board) if (!expected.has(user)) v.fail(`room ${roomId}, ${period} board: user ${user} scores ${score} with no DONE order`);
    }
    for (const [roomId, board] of boards) if (!scores.has(roomId) && board.size > 0) v.fail(`room ${roomId}, ${period} board: ${board.size} ranked users and no DONE order`);
  }
  v.details.push(`${done} DONE orders: one EXP grant each, ${expOf.size} users' EXP equal to their DONE orders; ${pairs} (board, room, sender) scores on the ${Object.keys(ranking).join(' and ')} boards checked against the sum of their paid gifts`);
  return v.done();
}
