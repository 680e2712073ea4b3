import { RankingErrorReason, rankingErrorReasonToJSON } from '../../gen/ts/livemesh/ranking/v1/ranking.js';
import { DomainError, reasonName, type ErrorKind } from '../../kit/domain-error.js';

/** ErrorInfo.domain for every Ranking-specific reason. */
const RANKING_DOMAIN = 'livemesh.ranking';

function rankingError(kind: ErrorKind, reason: RankingErrorReason, message: string, metadata: Record<string, string> = {}): DomainError {
  return new DomainError(kind, reasonName(rankingErrorReasonToJSON, reason), message, { domain: RANKING_DOMAIN, metadata });
}

/** A period this board does not have: still a bad field, so `field` names it like FIELD_INVALID does. */
export const periodNotSupported = (what: string) =>
  new DomainError('invalid_argument', reasonName(rankingErrorReasonToJSON, RankingErrorReason.RANKING_ERROR_REASON_PERIOD_NOT_SUPPORTED), `period: ${what}`, {
    domain: RANKING_DOMAIN,
    metadata: { field: 'period' },
    violations: [{ field: 'period', description: what }],
  });

export const rebuildInProgress = (target: string) =>
  rankingError('aborted', RankingErrorReason.RANKING_ERROR_REASON_REBUILD_IN_PROGRESS, `a rebuild of ${target} (or an overlapping target) is running; retry when it ends`, { target });

export const dayOutOfRange = (day: string, why: string) =>
  rankingError('failed_precondition', RankingErrorReason.RANKING_ERROR_REASON_DAY_OUT_OF_RANGE, `day ${day} ${why}`, { day });

export const rebuildSourceUnavailable = (
  why = 'RebuildRanking reads paid orders from the Gift service, and this replica has no GIFT_ADDR configured',
) => rankingError('failed_precondition', RankingErrorReason.RANKING_ERROR_REASON_REBUILD_SOURCE_UNAVAILABLE, `${why}; the boards were not touched`);
