import type { RankingServiceServer } from '../../gen/ts/livemesh/ranking/v1/ranking.js';
import { unary } from '../../kit/handler.js';
import type { Logger } from '../../kit/logger.js';
import { PERIODS, toProtoEntry as toEntry, toProtoRebuild } from './mapping.js';
import type { RankingReader } from './reads.js';
import type { Rebuilder } from './rebuild.js';

export interface RankingUseCases {
  reader: RankingReader;
  rebuilder: Rebuilder;
}

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
      return toProtoRebuild(await rebuilder.rebuild(ctx.caller, { roomId: req.roomId, day: req.day }, req.dryRun));
    }),
  };
}
