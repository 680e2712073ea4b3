import type { Asset } from '../model.js';
import type { Audits, InvariantReport, ReconcileReport } from '../ports.js';
import type { Shard } from './db.js';
import { checkInvariants } from './invariants.js';
import { reconcileDay } from './reconcile.js';
import type { BucketRouter } from './router.js';

/**
 * The Audits port over every shard. Where reconcile's named lock lives (and the scope that keeps
 * two ledgers sharing a MySQL server apart) is a storage detail, so it is fixed here at wiring time
 * instead of travelling through the use cases.
 */
export class ShardAudits implements Audits {
  constructor(
    private readonly router: BucketRouter,
    private readonly lock: { shard: Shard; scope: string },
  ) {}

  reconcileDay(opts: { day: string; streamer: string | undefined; dryRun: boolean }): Promise<ReconcileReport> {
    return reconcileDay(this.router, { ...opts, lockShard: this.lock.shard, lockScope: this.lock.scope });
  }

  checkInvariants(assets: readonly Asset[]): Promise<InvariantReport> {
    return checkInvariants(this.router, assets);
  }
}
