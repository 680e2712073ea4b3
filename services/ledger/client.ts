/**
 * Ledger's public face: what other services (and the BFF) may use of the Ledger, a typed promise
 * client. Nothing else of services/ledger is imported from outside it.
 */
import { LedgerServiceClient } from '../../gen/ts/livemesh/ledger/v1/ledger.js';
import { promiseClient, type PromiseClient } from '../../kit/clients.js';
import type { MeshCredentials } from '../../kit/credentials.js';

export type LedgerClient = PromiseClient<LedgerServiceClient>;

/**
 * A Ledger client over lb/ (P2C over every replica `target` names, this process's token, mTLS
 * when configured). The channel retries reads and the keyed writes (TopUp, Transfer) only;
 * CreateTransfers and VoidTransfer are repeated, when at all, by the caller's own idempotency.
 */
export const ledgerClient = (target: string, credentials: MeshCredentials): LedgerClient => promiseClient(LedgerServiceClient, target, credentials);
