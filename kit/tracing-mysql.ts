/**
 * A client span for every mysql2 statement a kit pool runs: `query` and `execute` on the pool and
 * on the connections it hands out (transactions, batched Statements). The statement text goes
 * into `db.query.text` as the code wrote it, placeholders and all; values never do.
 */
import type { Pool, PoolConnection } from 'mysql2/promise';
import { context, failSpan, SpanKind, trace, tracer } from './tracing.js';

const QUERY_TEXT_LIMIT = 2000;

type Run = (...args: unknown[]) => Promise<unknown>;

/**
 * The span's name: the statement's verb (`SELECT`), or the verbs of several statements sent in one
 * round trip in order, each once (`START SELECT INSERT COMMIT`).
 */
function operationOf(sql: string): string {
  const ops = new Set<string>();
  for (const statement of sql.split(';')) {
    const op = /^\s*([A-Za-z]+)/.exec(statement)?.[1]?.toUpperCase();
    if (op) ops.add(op);
  }
  return ops.size === 0 ? 'QUERY' : [...ops].join(' ');
}

function sqlOf(arg: unknown): string {
  if (typeof arg === 'string') return arg;
  return typeof (arg as { sql?: unknown } | undefined)?.sql === 'string' ? (arg as { sql: string }).sql : '';
}

function traced(target: { query: Run; execute: Run }, database: string): void {
  for (const name of ['query', 'execute'] as const) {
    const original = target[name].bind(target);
    target[name] = (...args: unknown[]) => {
      const sql = sqlOf(args[0]);
      // Only inside a sampled trace: a statement outside any would start a trace per query, and
      // one inside an unsampled trace would make a span nobody records.
      if (!trace.getSpan(context.active())?.isRecording()) return original(...args);
      const span = tracer().startSpan(`mysql ${operationOf(sql)}`, {
        kind: SpanKind.CLIENT,
        attributes: { 'db.system.name': 'mysql', 'db.namespace': database, 'db.query.text': sql.slice(0, QUERY_TEXT_LIMIT) },
      });
      return original(...args).then(
        (out) => {
          span.end();
          return out;
        },
        (err: unknown) => {
          failSpan(span, err);
          span.end();
          throw err;
        },
      );
    };
  }
}

/** Instruments a pool in place and returns it; connections from `getConnection` come instrumented too. */
export function tracePool(pool: Pool, database: string): Pool {
  traced(pool as unknown as { query: Run; execute: Run }, database);
  const getConnection = pool.getConnection.bind(pool);
  pool.getConnection = async () => {
    const conn: PoolConnection = await getConnection();
    traced(conn as unknown as { query: Run; execute: Run }, database);
    return conn;
  };
  return pool;
}
