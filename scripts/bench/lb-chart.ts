/**
 * The bench:lb chart: each replica's CPU over time, one panel per phase, as a self-contained SVG
 * (no library: a few polylines are less code than any charting dependency's setup).
 */

export interface Panel {
  title: string;
  /** Sample times in seconds from the phase start, and each replica's CPU (% of one core). */
  samples: Array<{ t: number; cpu: number[] }>;
  /** Vertical markers: measured window bounds, kill, restart. */
  marks: Array<{ t: number; label: string }>;
}

const COLORS = ['#1f77b4', '#2ca02c', '#9467bd', '#d62728', '#ff7f0e', '#8c564b'];
const W = 860;
const PANEL_H = 150;
const LEFT = 48;
const RIGHT = 150;
const TOP = 28;
const GAP = 44;

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** Moving average over `n` samples, so 250 ms /proc granularity does not read as noise. */
function smooth(values: number[], n: number): number[] {
  return values.map((_, i) => {
    const from = Math.max(0, i - n + 1);
    const slice = values.slice(from, i + 1);
    return slice.reduce((a, b) => a + b, 0) / slice.length;
  });
}

export function renderCpuChart(panels: Panel[], replicaLabels: string[], caption: string): string {
  const height = TOP + panels.length * (PANEL_H + GAP) + 20;
  const plotW = W - LEFT - RIGHT;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${LEFT}" y="16" font-size="13" font-weight="bold">${esc(caption)}</text>`,
  ];
  const maxCpu = Math.max(50, ...panels.flatMap((p) => p.samples.flatMap((s) => s.cpu))) * 1.05;
  panels.forEach((panel, pi) => {
    const y0 = TOP + pi * (PANEL_H + GAP) + 16;
    const tMax = Math.max(1, ...panel.samples.map((s) => s.t));
    const x = (t: number) => LEFT + (t / tMax) * plotW;
    const y = (v: number) => y0 + PANEL_H - (v / maxCpu) * PANEL_H;
    out.push(`<text x="${LEFT}" y="${y0 - 6}" font-weight="bold">${esc(panel.title)}</text>`);
    out.push(`<rect x="${LEFT}" y="${y0}" width="${plotW}" height="${PANEL_H}" fill="none" stroke="#999"/>`);
    for (const v of [0, 25, 50, 75, 100].filter((v) => v <= maxCpu)) {
      out.push(`<line x1="${LEFT}" x2="${LEFT + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/>`);
      out.push(`<text x="${LEFT - 4}" y="${y(v) + 4}" text-anchor="end" fill="#666">${v}%</text>`);
    }
    for (let t = 0; t <= tMax; t += 5) out.push(`<text x="${x(t)}" y="${y0 + PANEL_H + 13}" text-anchor="middle" fill="#666">${t}s</text>`);
    for (const m of panel.marks) {
      out.push(`<line x1="${x(m.t)}" x2="${x(m.t)}" y1="${y0}" y2="${y0 + PANEL_H}" stroke="#888" stroke-dasharray="3,3"/>`);
      out.push(`<text x="${x(m.t) + 3}" y="${y0 + 11}" fill="#555">${esc(m.label)}</text>`);
    }
    replicaLabels.forEach((label, ri) => {
      const series = smooth(panel.samples.map((s) => s.cpu[ri] ?? 0), 4);
      const points = panel.samples.map((s, i) => `${x(s.t).toFixed(1)},${y(series[i]!).toFixed(1)}`).join(' ');
      out.push(`<polyline fill="none" stroke="${COLORS[ri % COLORS.length]}" stroke-width="1.5" points="${points}"/>`);
      if (pi === 0) {
        const ly = y0 + 14 + ri * 16;
        out.push(`<line x1="${W - RIGHT + 12}" x2="${W - RIGHT + 30}" y1="${ly - 4}" y2="${ly - 4}" stroke="${COLORS[ri % COLORS.length]}" stroke-width="2"/>`);
        out.push(`<text x="${W - RIGHT + 34}" y="${ly}">${esc(label)}</text>`);
      }
    });
  });
  out.push(`<text x="${LEFT}" y="${height - 6}" fill="#666">CPU of each replica process (utime+stime from /proc, % of one core, 1 s moving average); dashed lines mark the measured window and events.</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
