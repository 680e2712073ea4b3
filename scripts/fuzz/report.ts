/**
 * The printed result: one table for the gRPC methods and one for the BFF routes, each row a
 * target's outcome counts by status and its rate, then every failure with its reproducer.
 */
import type { RunResult, TargetReport } from './runner.js';

const fmt = (n: number) => n.toLocaleString('en-US');

function table(title: string, reports: TargetReport[]): string[] {
  if (reports.length === 0) return [];
  const nameWidth = Math.max(6, ...reports.map((r) => r.name.length));
  const lines = [title, `${'target'.padEnd(nameWidth)}  ${'cases'.padStart(7)}  ${'cases/s'.padStart(7)}  ${'fail'.padStart(4)}  outcomes`];
  for (const r of reports) {
    const outcomes = [...r.counts.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([label, n]) => `${label} ${fmt(n)}`)
      .join(' · ');
    const rate = r.seconds > 0 ? Math.round(r.cases / r.seconds) : 0;
    lines.push(`${r.name.padEnd(nameWidth)}  ${fmt(r.cases).padStart(7)}  ${fmt(rate).padStart(7)}  ${String(r.failures).padStart(4)}  ${outcomes}`);
  }
  const total = reports.reduce((s, r) => s + r.cases, 0);
  const seconds = reports.reduce((s, r) => s + r.seconds, 0);
  const all = new Map<string, number>();
  for (const r of reports) for (const [k, v] of r.counts) all.set(k, (all.get(k) ?? 0) + v);
  const outcomes = [...all.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([label, n]) => `${label} ${fmt(n)}`)
    .join(' · ');
  lines.push(`${'total'.padEnd(nameWidth)}  ${fmt(total).padStart(7)}  ${fmt(Math.round(total / Math.max(seconds, 1e-9))).padStart(7)}  ${String(reports.reduce((s, r) => s + r.failures, 0)).padStart(4)}  ${outcomes}`);
  return lines;
}

/** What the overload-like answers said, one example each: UNAVAILABLE and DEADLINE_EXCEEDED are allowed, but their cause matters. */
function overloadSamples(reports: TargetReport[]): string[] {
  const out: string[] = [];
  for (const r of reports) {
    for (const label of ['UNAVAILABLE', 'RESOURCE_EXHAUSTED', '503', '504', 'NO_RESPONSE']) {
      const n = r.counts.get(label);
      if (n) out.push(`  ${r.name} ${label} ×${fmt(n)}, e.g. ${JSON.stringify(r.samples.get(label) ?? '')}`);
    }
  }
  return out.length > 0 ? ['Overload-type answers (not failures by themselves), one example each:', ...out, ''] : [];
}

export function formatReport(result: RunResult, extra: string[] = []): string {
  const lines = [
    ...table('gRPC methods (status codes)', result.reports.filter((r) => r.kind === 'rpc')),
    '',
    ...table('BFF routes (HTTP statuses)', result.reports.filter((r) => r.kind === 'http')),
    '',
    ...overloadSamples(result.reports),
  ];
  for (const c of result.crashes) {
    lines.push(`CRASH: ${c.process} exited during ${c.target}; the last cases sent before it was noticed:`);
    for (const s of c.suspects) lines.push(`  ${s.replace(/\n/g, '\n  ')}`);
  }
  for (const f of result.failures) {
    lines.push(`FAILURE ${f.target}: ${f.why}`, `  reproduce: ${f.reproducer.replace(/\n/g, '\n  ')}`);
  }
  lines.push(...extra);
  return lines.join('\n');
}
