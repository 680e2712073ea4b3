import { credentials } from '@grpc/grpc-js';
import { Asset } from '../../gen/ts/livemesh/common/v1/common.js';
import * as giftPb from '../../gen/ts/livemesh/gift/v1/gift.js';
import { GiftServiceClient } from '../../gen/ts/livemesh/gift/v1/gift.js';
import * as ledgerPb from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { LedgerServiceClient } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { fromRoot } from '../../kit/paths.js';
import { giftConfigShape, wireGift } from '../../services/gift/service.js';
import { startServer, stopServer, type Server } from '../../scripts/mesh.js';
import type { Isolation } from '../../scripts/isolation.js';
import { as, unaryApi } from './room.js';
import { startInProcess } from './service.js';

export const giftApi = (client: GiftServiceClient) => unaryApi(client, giftPb);
export const ledgerApi = (client: LedgerServiceClient) => unaryApi(client, ledgerPb);

/** Gift's environment for a test: its own database next to the isolation's, and where Room and Ledger are. */
export function giftEnv(iso: Isolation, roomAddr: string, ledgerAddr: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...iso.env,
    MYSQL_DATABASE: `${iso.database}_gift`,
    ROOM_ADDR: roomAddr,
    LEDGER_ADDR: ledgerAddr,
    GIFT_RECOVERY_AFTER_MS: '1000',
    GIFT_RECOVERY_INTERVAL_MS: '300',
    GIFT_CACHE_TTL_MS: '1000',
    ...extra,
  };
}

/** The Gift service in-process, wired exactly as its process is. */
export const startGift = (iso: Isolation, env: Record<string, string>) => startInProcess('gift', giftConfigShape, wireGift, GiftServiceClient, iso, env);
export type GiftServer = Awaited<ReturnType<typeof startGift>>;

/** A built service process (dist/services/<name>/main.js), ready once its health check says SERVING. */
export async function spawnService(name: 'gift' | 'ledger', env: Record<string, string>): Promise<Server> {
  return startServer(name, fromRoot('dist', 'services', name, 'main.js'), { METRICS_PORT: '-1', LOG_LEVEL: 'warn', DRAIN_GRACE_MS: '0', ...env }, false, new AbortController().signal);
}

export { stopServer };

/**
 * A Gift process (dist/) for the length of `fn`, with a client to it; stopped afterwards whatever
 * `fn` did (a process that killed itself at a fault point is simply gone).
 */
export async function withGiftProcess<T>(env: Record<string, string>, fn: (api: ReturnType<typeof giftApi>, server: Server) => Promise<T>): Promise<T> {
  const server = await spawnService('gift', env);
  const client = new GiftServiceClient(server.address, credentials.createInsecure());
  try {
    return await fn(giftApi(client), server);
  } finally {
    client.close();
    await stopServer(server);
  }
}

/** The Ledger as its own process, on the isolation's database name plus `_ledger` (its shards add `_shardN`). */
export async function spawnLedger(iso: Isolation): Promise<{ server: Server; client: LedgerServiceClient; api: ReturnType<typeof ledgerApi> }> {
  const server = await spawnService('ledger', { ...iso.env, MYSQL_DATABASE: `${iso.database}_ledger` });
  const client = new LedgerServiceClient(server.address, credentials.createInsecure());
  return { server, client, api: ledgerApi(client) };
}

/** Mints COIN for a viewer, as the payment callback would. */
export async function topUp(api: ReturnType<typeof ledgerApi>, ownerId: string, amountMinor: string): Promise<void> {
  await api.topUp({ ownerId, amountMinor, paymentReference: `test-${ownerId}-${Math.random()}`, provider: 'test' }, as('1', 'admin'));
}

export async function balance(api: ReturnType<typeof ledgerApi>, ownerId: string, asset: Asset): Promise<string> {
  const res = await api.getBalances({ ownerId, assets: [asset] }, as('1', 'admin'));
  return res.balances[0]?.amountMinor ?? '0';
}

/** Polls `probe` until `ok` holds, at most `timeoutMs`; fails naming what it waited for and the last value seen. */
export async function until<T>(what: string, probe: () => T | Promise<T>, ok: (v: T) => boolean, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastError: unknown;
  for (;;) {
    try {
      last = await probe();
      if (ok(last)) return last;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const seen = last === undefined ? `last error ${String((lastError as Error | undefined)?.message ?? lastError)}` : `last value ${JSON.stringify(last)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${seen}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Every order ListOrders returns for the query (as admin), all pages, in order_id order. */
export async function allOrders(api: ReturnType<typeof giftApi>, query: Partial<Pick<giftPb.ListOrdersRequest, 'roomId' | 'streamerId' | 'senderId' | 'states'>>): Promise<giftPb.Order[]> {
  const out: giftPb.Order[] = [];
  let pageToken = '';
  do {
    const res = await api.listOrders({ ...query, page: { pageSize: 1000, pageToken } }, as('1', 'admin'));
    out.push(...res.orders);
    pageToken = res.page?.nextPageToken ?? '';
  } while (pageToken);
  return out;
}

/** An account's balance and its credits still in flight between Ledger shards, as BigInt. */
export async function ledgerBalance(api: ReturnType<typeof ledgerApi>, ownerId: string, asset: Asset): Promise<{ amount: bigint; pending: bigint }> {
  const res = await api.getBalances({ ownerId, assets: [asset] }, as('1', 'admin'));
  const b = res.balances[0];
  return { amount: BigInt(b?.amountMinor ?? '0'), pending: BigInt(b?.pendingCreditMinor ?? '0') };
}
