import { spawn, type ChildProcess } from 'node:child_process';
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterAll, beforeAll } from 'vitest';
import { HealthCheckResponse_ServingStatus as Serving, HealthClient } from '../../gen/ts/grpc/health/v1/health.js';
import { Asset } from '../../gen/ts/livemesh/common/v1/common.js';
import { LedgerServiceClient, TransferKind, type TransferRequest } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { kitConfigShape, parseConfig, resolveKitDefaults } from '../../kit/config.js';
import { fromRoot } from '../../kit/paths.js';
import { ServiceHost, type KitConfigValues } from '../../kit/server.js';
import { bucketOf } from '../../services/ledger/buckets.js';
import { ledgerConfigShape, wireLedger, type LedgerConfig, type LedgerParts } from '../../services/ledger/service.js';
import { isolate, type Isolation } from '../../scripts/isolation.js';
import { as, call, LogCapture } from './room.js';

export { as, call };

/** An in-process Ledger replica on a free port, wired exactly as the real process wires it. */
export async function startLedger(iso: Isolation, env: Record<string, string> = {}) {
  const logs = new LogCapture();
  const config = resolveKitDefaults(
    parseConfig({ ...kitConfigShape, ...ledgerConfigShape }, { PORT: '0', METRICS_PORT: '-1', HOST: '127.0.0.1', DRAIN_GRACE_MS: '0', ...iso.env, ...env }) as KitConfigValues,
  ) as LedgerConfig;
  const log = pino({ level: 'info', base: { service: 'ledger' } }, logs.stream);
  const host = new ServiceHost('ledger', config, log);
  const parts = await wireLedger(host, config);
  const port = await host.listen();
  const address = `127.0.0.1:${port}`;
  const client = new LedgerServiceClient(address, credentials.createInsecure());
  return {
    host,
    parts,
    port,
    address,
    client,
    logs,
    async close() {
      client.close();
      await host.drain();
    },
  };
}

export type LedgerServer = Awaited<ReturnType<typeof startLedger>>;

/**
 * One Ledger replica for a whole test file on its own isolation (two shard databases, a KV
 * bucket), torn down and removed afterwards. Read `.current` inside tests.
 */
export function useLedgerServer(name: string, env: Record<string, string> = {}): { iso: Isolation; current: LedgerServer } {
  const fixture = { iso: isolate(name), current: undefined as unknown as LedgerServer };
  beforeAll(async () => {
    fixture.current = await startLedger(fixture.iso, env);
  });
  afterAll(async () => {
    await fixture.current?.close();
    await fixture.iso.cleanup();
  });
  return fixture;
}

/** The built Ledger process (dist/), for tests that kill it. */
export function spawnLedger(iso: Isolation, port: number, env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, [fromRoot('dist', 'services', 'ledger', 'main.js')], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), METRICS_PORT: '-1', LOG_LEVEL: 'warn', DRAIN_GRACE_MS: '0', ...iso.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.resume();
  child.stderr?.resume();
  return child;
}

/** Waits until Health/Check("") answers SERVING at the address, or the process exits. */
export async function waitServing(address: string, child?: ChildProcess, timeoutMs = 30_000): Promise<void> {
  const probe = new HealthClient(address, credentials.createInsecure(), { 'grpc.initial_reconnect_backoff_ms': 50, 'grpc.max_reconnect_backoff_ms': 200 });
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      if (child && (child.exitCode !== null || child.signalCode !== null)) throw new Error(`ledger exited (${child.exitCode ?? child.signalCode}) before serving`);
      const ok = await new Promise<boolean>((resolve) =>
        probe.check({ service: '' }, new Metadata(), { deadline: Date.now() + 1000 }, (err, res) => resolve(!err && res.status === Serving.SERVING)),
      );
      if (ok) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`ledger at ${address} not serving after ${timeoutMs} ms`);
  } finally {
    probe.close();
  }
}

export function killed(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

export const ADMIN = () => as('1', 'admin');

/** Owner ids whose buckets the map assigns to `shard`, starting after `from`. */
export function ownersOn(parts: LedgerParts, shard: number, count: number, from = 100_000): string[] {
  const out: string[] = [];
  for (let id = from; out.length < count; id++) if (parts.router.view.shardOf(bucketOf(String(id))) === shard) out.push(String(id));
  return out;
}

/** Owner ids that fall in one bucket. */
export function ownersInBucket(bucket: number, count: number, from = 200_000): string[] {
  const out: string[] = [];
  for (let id = from; out.length < count; id++) if (bucketOf(String(id)) === bucket) out.push(String(id));
  return out;
}

export const gift = (transferId: string, payer: string, payee: string, amount: string | number): TransferRequest => ({
  transferId,
  kind: TransferKind.TRANSFER_KIND_GIFT,
  payer: { ownerId: payer, asset: Asset.ASSET_COIN },
  payee: { ownerId: payee, asset: Asset.ASSET_INCOME },
  amountMinor: String(amount),
  reference: '',
});

export async function topUp(client: LedgerServiceClient, owner: string, amount: string | number, ref = `pay-${owner}-${Math.random().toString(36).slice(2)}`) {
  return call(client.topUp, client, { ownerId: owner, amountMinor: String(amount), paymentReference: ref, provider: 'test' }, ADMIN());
}

export async function balanceOf(client: LedgerServiceClient, owner: string, asset: Asset): Promise<{ amount: bigint; pending: bigint }> {
  const res = await call(client.getBalances, client, { ownerId: owner, assets: [asset] }, ADMIN());
  const b = res.balances[0];
  return { amount: BigInt(b?.amountMinor ?? '0'), pending: BigInt(b?.pendingCreditMinor ?? '0') };
}

/** A call's error, or throws if it succeeded. */
export async function failure(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error('expected the call to fail');
}
