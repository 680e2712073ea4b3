import { RankingPeriod, type RankEntry, type RankingServiceServer } from '../../gen/ts/livemesh/ranking/v1/ranking.js';
import { unary } from '../../kit/handler.js';
import type { Logger } from '../../kit/logger.js';
import type { Period } from './boards.js';
import type { RankedEntry, RankingReader } from './reads.js';
import type { Rebuilder } from './rebuild.js';

export interface RankingUseCases {
  reader: RankingReader;
  rebuilder: Rebuilder;
}

const PERIODS: Partial<Record<RankingPeriod, Period>> = {
  [RankingPeriod.RANKING_PERIOD_LIVE]: 'live',
  [RankingPeriod.RANKING_PERIOD_DAY]: 'day',
  [RankingPeriod.RANKING_PERIOD_WEEK]: 'week',
};

const toEntry = (e: RankedEntry): RankEntry => ({ rank: e.rank, userId: e.userId, userName: e.name, scoreMinor: e.score, reachTime: e.rank > 0 ? e.reachAt : undefined });

/** The gRPC face of the Ranking service. */
export function rankingHandlers({ reader, rebuilder }: RankingUseCases, log: Logger): RankingServiceServer {
  return {
    getRoomRanking: unary(log, async (req) => {
      const v = await reader.roomTop(req.roomId, PERIODS[req.period], req.limit);
      return { entries: v.entries.map(toEntry), totalEntries: String(v.total), periodStartTime: v.periodStart, snapshotTime: v.snapshotAt };
    }),
    getStreamerRanking: unary(log, async (req) => {
      const v = await reader.streamerTop(PERIODS[req.period], req.limit);
      return { entries: v.entries.map(toEntry), totalEntries: String(v.total), periodStartTime: v.periodStart, snapshotTime: v.snapshotAt };
    }),
    getUserRank: unary(log, async (req, ctx) => {
      const v = await reader.userRank(ctx.caller, { roomId: req.roomId, period: PERIODS[req.period], userId: req.userId, neighbours: req.neighbours });
      return {
        entry: toEntry(v.entry),
        above: v.above.map(toEntry),
        below: v.below.map(toEntry),
        gapToAboveMinor: v.gapToAbove,
        totalEntries: String(v.total),
        periodStartTime: v.periodStart,
        snapshotTime: v.snapshotAt,
      };
    }),
    rebuildRanking: unary(log, async (req, ctx) => {
      const r = await rebuilder.rebuild(ctx.caller, { roomId: req.roomId, day: req.day }, req.dryRun);
      return {
        ordersScanned: String(r.ordersScanned),
        boardsRebuilt: String(r.boardsRebuilt),
        entriesChanged: String(r.entriesChanged),
        applied: r.applied,
        duration: { seconds: String(Math.floor(r.durationMs / 1000)), nanos: (r.durationMs % 1000) * 1e6 },
      };
    }),
  };
}
