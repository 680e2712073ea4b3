import { RankingPeriod, type RankEntry, type RebuildRankingResponse } from '../../gen/ts/livemesh/ranking/v1/ranking.js';
import { msToDuration } from '../../kit/contract-rules.js';
import type { Period } from './boards.js';
import type { RankedEntry } from './reads.js';
import type { RebuildResult } from './rebuild.js';

/** Wire messages to and from Ranking's domain records; the only module besides handlers.ts that knows the protobuf types. */

/** Periods the contract names; UNSPECIFIED maps to undefined, which the reads refuse naming the field. */
export const PERIODS: Partial<Record<RankingPeriod, Period>> = {
  [RankingPeriod.RANKING_PERIOD_LIVE]: 'live',
  [RankingPeriod.RANKING_PERIOD_DAY]: 'day',
  [RankingPeriod.RANKING_PERIOD_WEEK]: 'week',
};

/** A user who is not on the board (rank 0) has no reach time to show. */
export const toProtoEntry = (e: RankedEntry): RankEntry => ({ rank: e.rank, userId: e.userId, userName: e.name, scoreMinor: e.score, reachTime: e.rank > 0 ? e.reachAt : undefined });

export const toProtoRebuild = (r: RebuildResult): RebuildRankingResponse => ({
  ordersScanned: String(r.ordersScanned),
  boardsRebuilt: String(r.boardsRebuilt),
  entriesChanged: String(r.entriesChanged),
  applied: r.applied,
  duration: msToDuration(r.durationMs),
});
