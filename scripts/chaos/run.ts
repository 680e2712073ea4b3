/**
 * One chaos run, for `npm run chaos` and its smoke test: the mesh as separate processes on private
 * Redis and NATS and a cuttable MySQL, under the mixed load, while faults are injected; then the
 * system is left to settle and every invariant is checked against the databases.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import mysql, { type Connection } from 'mysql2/promise';
import { GetRoomRankingRequest, RankingPeriod } from '../../gen/ts/livemesh/ranking/v1/ranking.js';
import { CheckInvariantsRequest } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { mysqlOptions } from '../../kit/mysql.js';
import { isolate } from '../isolation.js';
import { as, unary } from '../load/calls.js';
import { formatKind, meshClients, startLoad, type CallRecord, type LoadRates, type LoadReport, type MeshClients } from '../load/index.js';
import { startMesh, type Mesh } from '../mesh.js';
import { Rng } from '../random.js';
import { faultSchedule, inject, type FaultKind, type FaultRecord } from './faults.js';
import { checkInvariants, type Check } from './invariants.js';
import { startChaosInfra } from './private-infra.js';
import { readChaosState, unsettled } from './state.js';
import { faultImpacts, readsDuringMysqlCuts, type FaultImpact } from './windows.js';

export interface ChaosOptions {
  durationMs: number;
  seed: number;
  rates: LoadRates;
  /** pause between two faults: drawn from [min, max] ms */
  faultGapMs: [number, number];
  /** a fixed fault sequence (the smoke test); default: the seeded schedule until durationMs */
  faults?: FaultKind[];
  replicas?: number;
  rooms?: number;
  viewers?: number;
  /** how long to wait for every order to be DONE or FAILED and every credit applied */
  settleTimeoutMs: number;
  log: (line: string) => void;
  /** extra service environment */
  env?: Record<string, string>;
  /** called with the database name before cleanup, e.g. to break the ledger on purpose and check again */
  beforeCleanup?: (ctx: { admin: Connection; database: string; recheck: () => Promise<Check[]> }) => Promise<void>;
}

export interface ChaosResult {
  checks: Check[];
  faults: FaultImpact[];
  /** faults the run tried and could not inject */
  skippedFaults: FaultKind[];
  load: LoadReport;
  settleMs: number;
  ok: boolean;
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosResult> {
  const log = opts.log;
  const random = new Rng(opts.seed);
  const iso = isolate('chaos', 'lmchaos');
  const infra = await startChaosInfra(log);
  let mesh: Mesh | undefined;
  let admin: Connection | undefined;
  try {
    admin = await mysql.createConnection(mysqlOptions(infra.directMysqlUrl));
    log(`chaos: starting the mesh (${opts.replicas ?? 2} replicas per service, and the BFF) on private Redis ${infra.redisUrl}, NATS ${infra.natsUrl}, MySQL through a proxy on :${infra.mysqlProxy.port}`);
    mesh = await startMesh({
      env: {
        ...iso.env,
        ...infra.env,
        LOG_LEVEL: 'warn',
        DRAIN_GRACE_MS: '0',
        GIFT_RECOVERY_AFTER_MS: '2000',
        GIFT_RECOVERY_INTERVAL_MS: '500',
        // The MariaDB is shared (151 connections, other suites run beside this one): 4 per pool
        // still leaves every replica more connections than it has calls waiting on MySQL.
        MYSQL_POOL_SIZE: '4',
        ...opts.env,
      },
      replicas: opts.replicas ?? 2,
      onLine: (p, line, stream) => {
        if (stream === "stderr" || /"level":"(error|fatal)"/.test(line)) log(`  ${p.name}: ${line.slice(0, 300)}`);
      },
    });
    log(`chaos: mesh ready: ${mesh.processes.map((p) => `${p.name}:${p.port}`).join(' ')}`);

    const calls: CallRecord[] = [];
    const load = await startLoad(mesh, { rates: opts.rates, seed: opts.seed, world: { rooms: opts.rooms ?? 6, viewers: opts.viewers ?? 60, log }, onCall: (c) => calls.push(c), log });
    log(`chaos: load at ${opts.rates.gifts} gifts/s, ${opts.rates.chat} chat/s, ${opts.rates.roomReads} room reads/s, ${opts.rates.bffReads} BFF reads/s for ${(opts.durationMs / 1000).toFixed(0)} s`);
    const started = Date.now();
    const progress = setInterval(() => {
      const s = load.snapshot();
      const kinds = Object.values(s.kinds);
      const total = kinds.reduce((t, k) => t + k.calls, 0);
      const failed = kinds.reduce((t, k) => t + k.failed, 0);
      log(`chaos: +${Math.round((Date.now() - started) / 1000)} s  ${total} calls, ${failed} failed  gifts ${s.gifts.ok} ok / ${s.gifts.refused} refused / ${s.gifts.inFlight} in flight`);
    }, 10_000);

    const faults: FaultRecord[] = [];
    const skipped: FaultKind[] = [];
    const next = faultSchedule(random);
    const fixed = opts.faults ? [...opts.faults] : undefined;
    const gap = () => opts.faultGapMs[0] + random.below(opts.faultGapMs[1] - opts.faultGapMs[0] + 1);
    try {
      await sleep(gap());
      while (fixed ? fixed.length > 0 : Date.now() - started < opts.durationMs) {
        const kind = fixed ? (fixed.shift() as FaultKind) : next();
        try {
          faults.push(await inject(kind, { mesh, infra, database: iso.database, admin, random, log }));
        } catch (err) {
          // A fault the run could not inject (the shared MariaDB refusing the admin connection) is
          // skipped, said so, and missing from the fault table; the checks still run.
          log(`chaos: could not inject ${kind}: ${err instanceof Error ? err.message : String(err)}`);
          skipped.push(kind);
        }
        await sleep(gap());
      }
      const left = opts.durationMs - (Date.now() - started);
      if (left > 0) await sleep(left);
    } finally {
      clearInterval(progress);
      // Nothing may stay broken while the system settles.
      await infra.mysqlProxy.resume();
    }

    log('chaos: stopping the load; sends still retrying get up to 30 s');
    const report = await load.stop({ drainMs: 30_000 });
    const settleStart = Date.now();
    let settled = await unsettled(admin, iso.database);
    let lastLine = 0;
    while ((settled.openOrders > 0 || settled.creditsInFlight > 0) && Date.now() - settleStart < opts.settleTimeoutMs) {
      if (Date.now() - lastLine > 5000) {
        log(`chaos: settling: ${settled.openOrders} orders not yet DONE or FAILED, ${settled.creditsInFlight} credits in flight`);
        lastLine = Date.now();
      }
      await sleep(500);
      settled = await unsettled(admin, iso.database);
    }
    const settleMs = Date.now() - settleStart;
    log(`chaos: settled in ${(settleMs / 1000).toFixed(1)} s (${settled.openOrders} orders open, ${settled.creditsInFlight} credits in flight)`);

    const clients = meshClients(mesh);
    const conn = admin;
    const recheck = async (): Promise<Check[]> => {
      const state = await readChaosState(conn, iso.database);
      const rooms = report.world.rooms.map((r) => r.roomId);
      const ranking = { live: await boards(clients, rooms, RankingPeriod.RANKING_PERIOD_LIVE), day: await boards(clients, rooms, RankingPeriod.RANKING_PERIOD_DAY) };
      return [
        ...checkInvariants({ state, sends: report.giftSends, viewers: report.world.viewers, topUpMinor: report.world.topUpMinor, ranking }),
        await ledgerAgrees(clients),
      ];
    };
    const checks = [...(await recheck()), readsDuringMysqlCuts(faults, calls), noCrashes(mesh)];
    const impacts = faultImpacts(faults, calls);
    if (opts.beforeCleanup) await opts.beforeCleanup({ admin, database: iso.database, recheck });
    clients.close();
    return { checks, faults: impacts, skippedFaults: skipped, load: report, settleMs, ok: checks.every((c) => c.holds) };
  } finally {
    await mesh?.stop();
    await admin?.end().catch(() => undefined);
    await infra.stop();
    await iso.cleanup().catch((err: unknown) => log(`chaos: cleanup failed: ${String(err)}`));
  }
}

/**
 * Each room's board for `period`, exact totals per user (a read returns at most 100; the run has
 * fewer viewers). Ranking answers from a per-replica snapshot and, while refreshing it, with the
 * previous one, however old (its time is in the answer): a board is read until its snapshot is
 * younger than the question.
 */
export async function boards(c: MeshClients, roomIds: string[], period: RankingPeriod): Promise<Map<string, Map<string, bigint>>> {
  const out = new Map<string, Map<string, bigint>>();
  for (const roomId of roomIds) {
    const asked = Date.now();
    for (let attempt = 0; ; attempt++) {
      const res = await unary(c.ranking, 'getRoomRanking', GetRoomRankingRequest.fromPartial({ roomId, period, limit: 100 }), as('1', 'admin'), 10_000);
      if (!res.value) throw new Error(`GetRoomRanking ${roomId}: ${res.code} ${res.error?.details ?? ''}`);
      if ((res.value.snapshotTime?.getTime() ?? 0) >= asked || attempt >= 20) {
        out.set(roomId, new Map(res.value.entries.map((e) => [e.userId, BigInt(e.scoreMinor)])));
        break;
      }
      await sleep(100);
    }
  }
  return out;
}

/** The Ledger's own cross-shard check, as a second opinion beside the independent recount. */
async function ledgerAgrees(c: MeshClients): Promise<Check> {
  const res = await unary(c.ledger, 'checkInvariants', CheckInvariantsRequest.fromPartial({}), as('1', 'admin'), 30_000);
  const v = res.value;
  if (!v) return { name: "the Ledger's CheckInvariants agrees", holds: false, details: [], violations: [`CheckInvariants: ${res.code} ${res.error?.details ?? ''}`] };
  return {
    name: "the Ledger's CheckInvariants agrees",
    holds: v.ok,
    details: [`${v.transfersChecked} transfers checked, ${v.unbalancedTransferCount} unbalanced, ${v.negativeBalanceCount} negative balances`],
    violations: v.violations.slice(0, 20),
  };
}

function noCrashes(mesh: Mesh): Check {
  const crashed = mesh.crashed();
  const kills = mesh.processes.reduce((n, p) => n + p.exits.filter((e) => e.expected).length, 0);
  return {
    name: 'no process crashed',
    holds: crashed.length === 0,
    details: [`${mesh.processes.length} processes, ${kills} exits asked for (SIGKILLs), ${crashed.length} not asked for`],
    violations: crashed.map((p) => `${p.name} exited on its own: ${JSON.stringify(p.exits.filter((e) => !e.expected))}`),
  };
}

/** The printed verdict: load per kind, each fault with its impact, each invariant. */
export function formatResult(r: ChaosResult): string[] {
  const lines: string[] = ['', 'calls per kind (failed = UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN, CANCELLED, HTTP 5xx or no answer):'];
  for (const [kind, s] of Object.entries(r.load.kinds)) {
    lines.push(`  ${formatKind(kind as never, s)}`);
    for (const [code, messages] of Object.entries(s.messages)) for (const [text, n] of messages) lines.push(`      ${code} ×${n}: ${text}`);
  }
  const all = Object.values(r.load.kinds);
  const total = all.reduce((t, k) => t + k.calls, 0);
  const failed = all.reduce((t, k) => t + k.failed, 0);
  lines.push(`  all: ${total} calls, ${failed} failed (${total === 0 ? '0.00' : ((100 * failed) / total).toFixed(2)}%)`);
  const g = r.load.gifts;
  lines.push(`  gift sends: ${g.attempted} keys, ${g.ok} OK, ${g.refused} refused, ${g.unresolved} given up while unresolved`);
  lines.push('', 'faults (failed calls from the fault until 5 s after it or the next fault; recovery = from its end until every kind that failed succeeded again):');
  for (const f of r.faults) {
    const rec = f.recoveryMs === undefined ? 'never' : `${(f.recoveryMs / 1000).toFixed(2)} s`;
    lines.push(`  ${f.fault.kind.padEnd(23)} ${f.fault.target.padEnd(16)} lasted ${((f.fault.endedAt - f.fault.startedAt) / 1000).toFixed(1).padStart(5)} s  failed ${String(f.failedCalls).padStart(4)}/${String(f.calls).padEnd(5)} recovery ${rec}`);
  }
  if (r.skippedFaults.length > 0) lines.push(`  could not inject: ${r.skippedFaults.join(', ')}`);
  const recs = r.faults.map((f) => f.recoveryMs).filter((x): x is number => x !== undefined).sort((a, b) => a - b);
  if (recs.length > 0) lines.push(`  recovery: median ${(recs[Math.floor(recs.length / 2)]! / 1000).toFixed(2)} s, max ${(recs[recs.length - 1]! / 1000).toFixed(2)} s`);
  lines.push(`  settled ${(r.settleMs / 1000).toFixed(1)} s after the load stopped`, '', 'invariants:');
  for (const c of r.checks) {
    lines.push(`  ${c.holds ? 'HOLDS ' : 'BROKEN'}  ${c.name}`);
    for (const d of c.details) lines.push(`          ${d}`);
    for (const v of c.violations) lines.push(`          ! ${v}`);
  }
  lines.push('', r.ok ? 'chaos: every invariant holds' : `chaos: ${r.checks.filter((c) => !c.holds).length} invariant(s) broken`);
  return lines;
}
