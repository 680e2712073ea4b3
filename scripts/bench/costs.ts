/**
 * What a unit of work costs the whole system, measured around a benchmark window: MariaDB's own
 * statement and commit counters, the CPU of every process involved (services, mariadbd,
 * nats-server, redis-server, the load generator), and the gRPC calls the services served. A
 * snapshot before and after the window, divided by the work done, gives the per-send figures
 * issue 14 asks for without instrumenting the code under test.
 *
 * MariaDB's counters are global: anything else using the same server during the window is
 * counted too, so these figures are exact only on an otherwise idle server (the bench says so).
 */
import { readdirSync, readFileSync } from 'node:fs';
import mysql from 'mysql2/promise';
import { mysqlOptions } from '../../kit/mysql.js';
import { processCpuSeconds } from '../stats.js';

/** The first local process whose command name is one of `names` (and whose command line mentions `arg`, when given). */
export function localPid(names: string[], arg?: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const comm = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
      if (!names.includes(comm)) continue;
      if (arg !== undefined && !readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').some((a) => a.includes(arg))) continue;
      return Number(entry);
    } catch {
      // a process that just ended
    }
  }
  return undefined;
}

/** The local mysqld/mariadbd, if there is one: its CPU time shows what each workload costs the database. */
export const localDatabasePid = (): number | undefined => localPid(['mariadbd', 'mysqld']);

const STATUS = ['Questions', 'Com_begin', 'Com_commit', 'Com_rollback', 'Com_select', 'Com_insert', 'Com_update', 'Com_update_multi', 'Com_delete', 'Com_delete_multi'] as const;
/** InnoDB's own count of read-write transactions committed (autocommit writes included). */
const TRX_COUNTER = 'trx_rw_commits';

export interface CostSnapshot {
  status: Record<string, number>;
  rwCommits: number | undefined;
  cpu: Map<string, number>;
  grpc: Map<string, Map<string, number>>;
}

export interface CostWatch {
  /** label → pid: CPU is read for each, when the process still exists */
  processes: Map<string, number>;
  /** label → metrics URL: grpc_server_handled_total by method is read from each */
  metrics: Map<string, string>;
}

/** Reads MariaDB's counters over one dedicated connection; turns on InnoDB's commit counter if it is off. */
export class DatabaseCounters {
  private constructor(private readonly conn: mysql.Connection, private readonly trxCounter: boolean) {}

  static async open(url: string): Promise<DatabaseCounters> {
    const conn = await mysql.createConnection(mysqlOptions(url));
    let trx = true;
    try {
      await conn.query(`SET GLOBAL innodb_monitor_enable = '${TRX_COUNTER}'`);
    } catch {
      trx = false;
    }
    return new DatabaseCounters(conn, trx);
  }

  async read(): Promise<{ status: Record<string, number>; rwCommits: number | undefined }> {
    const [rows] = await this.conn.query(`SHOW GLOBAL STATUS WHERE Variable_name IN (?)`, [STATUS]);
    const status = Object.fromEntries((rows as Array<{ Variable_name: string; Value: string }>).map((r) => [r.Variable_name, Number(r.Value)]));
    let rwCommits: number | undefined;
    if (this.trxCounter) {
      const [m] = await this.conn.query('SELECT count FROM information_schema.INNODB_METRICS WHERE name = ?', [TRX_COUNTER]);
      const v = (m as Array<{ count: number | string }>)[0]?.count;
      rwCommits = v === undefined ? undefined : Number(v);
    }
    return { status, rwCommits };
  }

  async close(): Promise<void> {
    await this.conn.end();
  }
}

/** grpc_server_handled_total per method from one Prometheus text page. */
async function handledByMethod(url: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  for (const line of text.split('\n')) {
    if (!line.startsWith('grpc_server_handled_total{')) continue;
    const method = /grpc_method="([^"]+)"/.exec(line)?.[1] ?? '?';
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    out.set(method, (out.get(method) ?? 0) + value);
  }
  return out;
}

export async function snapshot(db: DatabaseCounters, watch: CostWatch): Promise<CostSnapshot> {
  const cpu = new Map<string, number>();
  for (const [label, pid] of watch.processes) {
    try {
      cpu.set(label, processCpuSeconds(pid));
    } catch {
      // gone: its CPU is not counted
    }
  }
  const self = process.cpuUsage();
  cpu.set('load generator', (self.user + self.system) / 1e6);
  const grpc = new Map<string, Map<string, number>>();
  await Promise.all([...watch.metrics].map(async ([label, url]) => grpc.set(label, await handledByMethod(url).catch(() => new Map<string, number>()))));
  const { status, rwCommits } = await db.read();
  return { status, rwCommits, cpu, grpc };
}

export interface Costs {
  /** statements MariaDB executed (Questions, less this meter's own two) */
  statements: number;
  /** read-write transactions InnoDB committed, autocommit writes included (undefined: counter unavailable) */
  transactions: number | undefined;
  /** explicit BEGIN/COMMIT pairs */
  explicitCommits: number;
  byKind: Record<string, number>;
  /** gRPC calls the services served, less those the load generator made (`clientMethods`) */
  serviceCalls: number;
  serviceCallsByMethod: Map<string, number>;
  cpuUs: Map<string, number>;
}

/** The difference of two snapshots, per unit of work (`units` sends). */
export function costsBetween(a: CostSnapshot, b: CostSnapshot, units: number, clientMethods: Map<string, number>): Costs {
  const d = (k: string) => (b.status[k] ?? 0) - (a.status[k] ?? 0);
  const per = (n: number) => n / units;
  const byMethod = new Map<string, number>();
  for (const [label, after] of b.grpc) {
    const before = a.grpc.get(label) ?? new Map<string, number>();
    for (const [method, n] of after) {
      const delta = n - (before.get(method) ?? 0);
      if (delta > 0) byMethod.set(method, (byMethod.get(method) ?? 0) + delta);
    }
  }
  for (const [method, n] of clientMethods) byMethod.set(method, (byMethod.get(method) ?? 0) - n);
  for (const [method, n] of byMethod) if (n <= 0) byMethod.delete(method);
  const cpuUs = new Map<string, number>();
  for (const [label, after] of b.cpu) {
    const before = a.cpu.get(label);
    if (before !== undefined) cpuUs.set(label, per((after - before) * 1e6));
  }
  return {
    // The meter's own SHOW STATUS and INNODB_METRICS reads are statements too.
    statements: per(d('Questions') - (a.rwCommits === undefined ? 1 : 2)),
    transactions: a.rwCommits === undefined || b.rwCommits === undefined ? undefined : per(b.rwCommits - a.rwCommits),
    explicitCommits: per(d('Com_commit')),
    byKind: {
      select: per(d('Com_select') - (a.rwCommits === undefined ? 0 : 1)),
      insert: per(d('Com_insert')),
      update: per(d('Com_update') + d('Com_update_multi')),
      delete: per(d('Com_delete') + d('Com_delete_multi')),
      'begin/commit': per(d('Com_begin') + d('Com_commit') + d('Com_rollback')),
    },
    serviceCalls: per([...byMethod.values()].reduce((s, n) => s + n, 0)),
    serviceCallsByMethod: new Map([...byMethod].map(([m, n]) => [m, per(n)])),
    cpuUs,
  };
}
