import { setTimeout as sleep } from 'node:timers/promises';
import type { Connection } from 'mysql2/promise';
import type { Rng } from '../random.js';
import type { Mesh } from '../mesh.js';
import type { ChaosInfra } from './private-infra.js';

const FAULT_KINDS = ['kill-replica', 'mysql-kill-connections', 'mysql-cut', 'nats-restart', 'redis-pause'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** One fault as it happened: from the moment it was injected until everything it broke was back. */
export interface FaultRecord {
  kind: FaultKind;
  /** what was hit: "gift-2", "12 connections", "3.4 s" */
  target: string;
  startedAt: number;
  /** when the broken part was whole again (the replica ready, the proxy open, NATS answering, Redis unpaused) */
  endedAt: number;
}

export interface FaultContext {
  mesh: Mesh;
  infra: ChaosInfra;
  /** the run's MYSQL_DATABASE; every service database starts with it */
  database: string;
  /**
   * The run's own connection to the shared MariaDB, opened before the mesh: when the server is at
   * its connection limit (other suites share it) a fault must not depend on getting a new one.
   */
  admin: Connection;
  random: Rng;
  log: (line: string) => void;
}

/**
 * Injects one fault and waits until it is over. Faults run one at a time, so two replicas of one
 * service are never down together: the mesh promises to survive a dying replica, not a dying service.
 */
export async function inject(kind: FaultKind, ctx: FaultContext): Promise<FaultRecord> {
  const startedAt = Date.now();
  const done = (target: string): FaultRecord => ({ kind, target, startedAt, endedAt: Date.now() });
  const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  switch (kind) {
    case 'kill-replica': {
      // Only a service whose replicas are all up: one that failed to come back is not killed twice.
      const victims = ctx.mesh.processes.filter((p) => p.kind === 'grpc' && ctx.mesh.processes.every((q) => q.service !== p.service || q.alive));
      const victim = ctx.random.pick(victims);
      const downMs = 500 + ctx.random.below(2000);
      ctx.log(`chaos: SIGKILL ${victim.name} (pid ${victim.pid ?? '?'}), restart in ${secs(downMs)}`);
      await ctx.mesh.kill(victim.name, 'SIGKILL');
      await sleep(downMs);
      await ctx.mesh.restart(victim.name);
      const r = done(victim.name);
      ctx.log(`chaos: ${victim.name} is back (ready after ${secs(r.endedAt - r.startedAt)})`);
      return r;
    }
    case 'mysql-kill-connections': {
      const killed = await killMysqlConnections(ctx.admin, ctx.database);
      ctx.log(`chaos: KILL on ${killed} MySQL connections of this run's databases`);
      return done(`${killed} connections`);
    }
    case 'mysql-cut': {
      const cutMs = 2000 + ctx.random.below(3000);
      ctx.log(`chaos: MySQL unreachable for ${secs(cutMs)} (proxy cut, ${ctx.infra.mysqlProxy.connections()} connections dropped)`);
      await ctx.infra.mysqlProxy.cut();
      await sleep(cutMs);
      await ctx.infra.mysqlProxy.resume();
      ctx.log('chaos: MySQL reachable again');
      return done(secs(cutMs));
    }
    case 'nats-restart': {
      ctx.log('chaos: restarting nats-server');
      await ctx.infra.restartNats();
      const r = done('nats-server');
      ctx.log(`chaos: nats-server back after ${secs(r.endedAt - r.startedAt)}`);
      return r;
    }
    case 'redis-pause': {
      const pauseMs = 1000 + ctx.random.below(1500);
      ctx.log(`chaos: Redis paused for ${secs(pauseMs)} (CLIENT PAUSE ALL)`);
      await ctx.infra.pauseRedis(pauseMs);
      await sleep(pauseMs);
      return done(secs(pauseMs));
    }
  }
}

/**
 * KILL CONNECTION for every session on this run's databases (the services' pools, through the
 * proxy): what a DBA's kill, a failover or a server-side timeout does to a pool. Nobody else's
 * sessions are touched.
 */
async function killMysqlConnections(conn: Connection, database: string): Promise<number> {
  const [rows] = await conn.query('SELECT id FROM information_schema.processlist WHERE (db = ? OR db LIKE ?) AND id <> CONNECTION_ID()', [database, `${database.replace(/_/g, '\\_')}\\_%`]);
  let killed = 0;
  for (const { id } of rows as Array<{ id: number }>) {
    try {
      await conn.query(`KILL CONNECTION ${Number(id)}`);
      killed++;
    } catch {
      // it ended on its own meanwhile
    }
  }
  return killed;
}

/**
 * The order of faults: every kind early on (a short run still sees each), then a seeded mix where
 * replica kills come up three times as often as the rest — they are the commonest fault in life.
 */
export function faultSchedule(random: Rng): () => FaultKind {
  const weighted: FaultKind[] = ['kill-replica', 'kill-replica', 'kill-replica', 'mysql-kill-connections', 'mysql-cut', 'nats-restart', 'redis-pause'];
  let deck: FaultKind[] = shuffle([...FAULT_KINDS], random);
  return () => {
    if (deck.length === 0) deck = shuffle([...weighted], random);
    return deck.shift() as FaultKind;
  };
}

function shuffle<T>(items: T[], random: Rng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = random.below(i + 1);
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}
