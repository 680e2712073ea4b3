/**
 * Ranking's public face: what other services (and the BFF) may use of Ranking, a typed promise
 * client. Nothing else of services/ranking is imported from outside it.
 */
import { RankingServiceClient } from '../../gen/ts/livemesh/ranking/v1/ranking.js';
import { promiseClient, type PromiseClient } from '../../kit/clients.js';
import type { MeshCredentials } from '../../kit/credentials.js';

export type RankingClient = PromiseClient<RankingServiceClient>;

/** A Ranking client over lb/ (P2C over every replica `target` names, this process's token, mTLS when configured). */
export const rankingClient = (target: string, credentials: MeshCredentials): RankingClient => promiseClient(RankingServiceClient, target, credentials);
