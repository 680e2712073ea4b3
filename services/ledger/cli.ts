/**
 * `npm run ledger -- <command>`: the Ledger's operator CLI, a thin client of the admin RPCs, so it
 * works against any replica and the work itself happens (and survives) on the server side. It
 * reaches the Ledger only through its gRPC API, never the service's modules; the operator's token
 * and channel credentials come from the tooling (scripts/credentials.ts, scripts/tokens.ts).
 *
 *   migrate-bucket <bucket> <shard>   move a bucket online, with a progress bar until it is done
 *   migration <id>                    show a migration
 *   shard-map                         buckets per shard, the identities the map records, and
 *                                     any bucket that is not serving normally
 *   invariants                        run CheckInvariants; exit 1 if anything is wrong
 *   reconcile <YYYY-MM-DD> [--dry-run] recompute a day's income statistics
 *
 * Options: --address host:port (default LEDGER_ADDRESS or 127.0.0.1:50053), --request-id id
 * (migrate-bucket; default a fresh one, pass the same one to re-attach after a Ctrl-C).
 *
 * Calls carry an operator's admin token (`authorization: Bearer …`), the only kind these RPCs
 * accept: signed with AUTH_OPERATOR_KEY (default the development operator key that
 * `npm run auth -- keys` makes), for user LM_ADMIN_ID (default 1), renewed before its hour is up
 * so a long migrate-bucket keeps going. With GRPC_TLS_DIR set (a folder with ca.crt, tls.crt and
 * tls.key: the operator's certificate, e.g. .livemesh/tls/operator from `npm run auth -- certs`),
 * the CLI speaks mutual TLS and checks the server's certificate for the name `ledger`, whatever
 * address it dials.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Metadata, ServiceError } from '@grpc/grpc-js';
import { SingleBar } from 'cli-progress';
import { LedgerServiceClient, MigrationPhase, migrationPhaseToJSON, type Migration } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { assetToJSON } from '../../gen/ts/livemesh/common/v1/common.js';
import { durationToMs } from '../../kit/contract-rules.js';
import { call, type UnaryMethod } from '../../kit/clients.js';
import { errorInfoOf } from '../../kit/grpc-errors.js';
import { bearer, operatorChannel } from '../../scripts/credentials.js';
import { operatorAdminToken } from '../../scripts/tokens.js';

const USAGE = `usage: npm run ledger -- <command> [options]
  migrate-bucket <bucket> <shard> [--request-id id]
  migration <id>
  shard-map
  invariants
  reconcile <YYYY-MM-DD> [--dry-run]
options: --address host:port (default $LEDGER_ADDRESS or 127.0.0.1:50053)
environment: LM_ADMIN_ID (default 1), AUTH_OPERATOR_KEY (default the development operator key),
  GRPC_TLS_DIR (mutual TLS with the operator's certificate, e.g. .livemesh/tls/operator)`;

function parse(argv: string[]): { args: string[]; address: string; requestId: string | undefined; dryRun: boolean } {
  const args: string[] = [];
  let address = process.env.LEDGER_ADDRESS || '127.0.0.1:50053';
  let requestId: string | undefined;
  let dryRun = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--address') address = argv[++i] ?? '';
    else if (a === '--request-id') requestId = argv[++i];
    else if (a === '--dry-run') dryRun = true;
    else if (a.startsWith('--')) fail(`unknown option ${a}\n${USAGE}`, 2);
    else args.push(a);
  }
  return { args, address, requestId, dryRun };
}

function fail(message: string, code = 1): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

/** An operator's admin token for every call; the same one until two thirds of its hour have passed. */
const admin = (): Metadata => bearer(operatorAdminToken(process.env.LM_ADMIN_ID || '1', 'operator'));

/** One admin call through the kit's call helper; requests are written partially here, as proto3 JSON would be. */
function unary<Req, Res>(client: LedgerServiceClient, method: UnaryMethod<LedgerServiceClient>, req: Req): Promise<Res> {
  return call(client, method, req as never, { metadata: admin(), deadlineMs: 60_000 }) as Promise<Res>;
}

function describeError(err: unknown): string {
  const e = err as ServiceError;
  const info = errorInfoOf(e.metadata);
  return `${e.details ?? (err as Error).message}${info ? ` (${info.reason})` : ''}`;
}

const phaseName = (p: MigrationPhase) => migrationPhaseToJSON(p).replace('MIGRATION_PHASE_', '');

async function migrateBucket(client: LedgerServiceClient, bucket: number, shard: number, requestId: string): Promise<void> {
  const started = await unary<object, { migration?: Migration }>(client, 'migrateBucket', { bucket, targetShardId: shard, requestId });
  const id = started.migration?.migrationId ?? fail('MigrateBucket returned no migration');
  process.stdout.write(`migration ${id}: bucket ${bucket}, shard ${started.migration?.sourceShardId} -> ${shard} (request id ${requestId})\n`);
  const bar = new SingleBar({
    format: 'bucket {bucket} [{bar}] {percentage}% | {value}/{total} rows | {phase} | lag {lag}',
    hideCursor: true,
    noTTYOutput: true,
    notTTYSchedule: 1000,
  });
  bar.start(1, 0, { bucket, phase: 'COPYING', lag: 0 });
  let m: Migration | undefined = started.migration;
  for (;;) {
    m = (await unary<object, { migration?: Migration }>(client, 'getMigration', { migrationId: id })).migration;
    if (!m) fail(`migration ${id} disappeared`);
    bar.setTotal(Math.max(1, Number(m.rowsTotal)));
    bar.update(Math.min(Number(m.rowsCopied), Math.max(1, Number(m.rowsTotal))), { phase: phaseName(m.phase), lag: m.lagRows });
    if (m.phase === MigrationPhase.MIGRATION_PHASE_DONE || m.phase === MigrationPhase.MIGRATION_PHASE_FAILED) break;
    await sleep(200);
  }
  if (m.phase === MigrationPhase.MIGRATION_PHASE_DONE) bar.update(Math.max(1, Number(m.rowsTotal)));
  bar.stop();
  if (m.phase === MigrationPhase.MIGRATION_PHASE_FAILED) fail(`migration ${id} FAILED: ${m.error}; the bucket stays on shard ${m.sourceShardId}`);
  const fence = m.fenceDuration ? durationToMs(m.fenceDuration) : undefined;
  process.stdout.write(`migration ${id} DONE: ${m.rowsCopied} rows copied, writes held ${fence === undefined ? 'n/a' : `${fence.toFixed(0)} ms`}\n`);
}

async function main(): Promise<void> {
  const { args, address, requestId, dryRun } = parse(process.argv.slice(2));
  const [command, ...rest] = args;
  let client: LedgerServiceClient;
  try {
    const channel = operatorChannel('ledger');
    client = new LedgerServiceClient(address, channel.credentials, channel.options);
  } catch (err) {
    fail(`ledger: ${(err as Error).message}`);
  }
  const int = (s: string | undefined, what: string) => (s !== undefined && /^[0-9]+$/.test(s) ? Number(s) : fail(`${what} must be a non-negative integer\n${USAGE}`, 2));
  try {
    switch (command) {
      case 'migrate-bucket':
        await migrateBucket(client, int(rest[0], 'bucket'), int(rest[1], 'shard'), requestId ?? `cli-${randomUUID()}`);
        break;
      case 'migration': {
        const res = await unary<object, { migration?: Migration }>(client, 'getMigration', { migrationId: rest[0] ?? '' });
        process.stdout.write(`${JSON.stringify({ ...res.migration, phase: res.migration ? phaseName(res.migration.phase) : undefined }, null, 2)}\n`);
        break;
      }
      case 'shard-map': {
        const res = await unary<
          object,
          { shardMap?: { version: string; ledgerId: string; shards: Array<{ shardId: number; name: string; databaseUid: string }>; buckets: Array<{ bucket: number; shardId: number; state: number; migrationId: string }> } }
        >(
          client,
          'getShardMap',
          {},
        );
        const map = res.shardMap ?? fail('no shard map');
        process.stdout.write(`shard map version ${map.version}, ledger ${map.ledgerId || '(no identity recorded yet)'}\n`);
        for (const s of map.shards) {
          const uid = s.databaseUid ? `, database uid ${s.databaseUid}` : '';
          process.stdout.write(`  shard ${s.shardId} (${s.name}${uid}): ${map.buckets.filter((b) => b.shardId === s.shardId).length} buckets\n`);
        }
        for (const b of map.buckets.filter((x) => x.state !== 1)) process.stdout.write(`  bucket ${b.bucket}: state ${b.state}, migration ${b.migrationId}\n`);
        break;
      }
      case 'invariants': {
        const r = await unary<object, { ok: boolean; assets: Array<{ asset: number; balanceSumMinor: string; pendingCreditMinor: string; mintedMinor: string; burnedMinor: string; holds: boolean }>; transfersChecked: string; violations: string[] }>(
          client,
          'checkInvariants',
          { assets: [] },
        );
        for (const a of r.assets) {
          process.stdout.write(`${assetToJSON(a.asset).padEnd(13)} balances ${a.balanceSumMinor} + in flight ${a.pendingCreditMinor} = minted ${a.mintedMinor} - burned ${a.burnedMinor}: ${a.holds ? 'holds' : 'BROKEN'}\n`);
        }
        process.stdout.write(`${r.transfersChecked} transfers checked; ${r.violations.length === 0 ? 'no violations' : `violations:\n  ${r.violations.join('\n  ')}`}\n`);
        if (!r.ok) process.exitCode = 1;
        break;
      }
      case 'reconcile': {
        const r = await unary<object, { streamersChecked: string; transfersScanned: string; mismatchCount: string; repaired: boolean }>(client, 'reconcile', { day: rest[0] ?? '', streamerId: '0', dryRun });
        process.stdout.write(`${rest[0]}: ${r.streamersChecked} streamers, ${r.transfersScanned} transfers, ${r.mismatchCount} mismatches${r.repaired ? ', repaired' : ''}\n`);
        break;
      }
      default:
        fail(USAGE, 2);
    }
  } catch (err) {
    fail(`ledger ${command}: ${describeError(err)}`);
  } finally {
    client.close();
  }
}

await main();
