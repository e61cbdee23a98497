// What the side-by-side benchmark reports: the metric definitions, the per-pair summary
// (median, min–max, ratio of medians to the reference pair), the text table (Markdown, so it
// can be pasted into the README as is) and a hand-written SVG bar chart (one panel per
// metric, one bar per pair with a min–max whisker). A wirepool-only metric (main-thread CPU)
// shows "n/a" for a wireguard-go daemon, and so has no ratio. Pure functions.

import { type Summary, ratio, summarize } from './stats.js';

export interface MetricDef {
  key: string;
  label: string;
  unit: string;
  better: 'higher' | 'lower';
  /** A figure only wirepool has, of the pair's client or server daemon: "n/a" where that daemon is wireguard-go. */
  wirepoolOnly?: 'client' | 'server';
}

/** Table rows, in order. Samples are one value per round. */
export const METRICS: readonly MetricDef[] = [
  { key: 'tcp1', label: 'TCP, 1 stream', unit: 'Mbit/s', better: 'higher' },
  { key: 'tcp4', label: 'TCP, 4 streams', unit: 'Mbit/s', better: 'higher' },
  { key: 'udp64_pps', label: 'UDP 64 B, received', unit: 'kpps', better: 'higher' },
  { key: 'udp64_loss', label: 'UDP 64 B, loss', unit: '%', better: 'lower' },
  { key: 'udp1400_pps', label: 'UDP 1400 B, received', unit: 'kpps', better: 'higher' },
  { key: 'udp1400_loss', label: 'UDP 1400 B, loss', unit: '%', better: 'lower' },
  { key: 'ping_idle_p50', label: 'ping idle, p50', unit: 'ms', better: 'lower' },
  { key: 'ping_idle_p99', label: 'ping idle, p99', unit: 'ms', better: 'lower' },
  { key: 'ping_load_p50', label: 'ping under TCP load, p50', unit: 'ms', better: 'lower' },
  { key: 'ping_load_p99', label: 'ping under TCP load, p99', unit: 'ms', better: 'lower' },
  { key: 'cpu_client', label: 'CPU of sending daemon (TCP)', unit: 's/GB', better: 'lower' },
  { key: 'cpu_server', label: 'CPU of receiving daemon (TCP)', unit: 's/GB', better: 'lower' },
  { key: 'main_client', label: 'main thread of sending daemon (TCP)', unit: 'µs/packet', better: 'lower', wirepoolOnly: 'client' },
  { key: 'main_server', label: 'main thread of receiving daemon (TCP)', unit: 'µs/packet', better: 'lower', wirepoolOnly: 'server' },
];

export interface Cell extends Summary {
  /** median / the reference pair's median (NaN without a reference or when meaningless). */
  ratio: number;
  /** The metric does not exist for this pair (a wirepool-only figure of a wireguard-go daemon). */
  notApplicable?: true;
}

export interface PairInfo {
  id: string;
  label: string;
  /** Implementation of the client (A) and server (B) daemon; needed for wirepoolOnly metrics. */
  client?: string;
  server?: string;
}

/** Whether metric m exists for pair p (false: a wirepool-only figure of a wireguard-go daemon). */
export function applies(m: MetricDef, p: PairInfo): boolean {
  if (m.wirepoolOnly === undefined) return true;
  const impl = m.wirepoolOnly === 'client' ? p.client : p.server;
  return impl === undefined || impl === 'wirepool';
}

export interface BenchSummary {
  /** Pair id the ratios are relative to, or null (not measured). */
  reference: string | null;
  pairs: PairInfo[];
  metrics: MetricDef[];
  /** cells[metricKey][pairId] */
  cells: Record<string, Record<string, Cell>>;
}

export type Samples = Record<string, Record<string, number[]>>;

/** Summarises samples[pairId][metricKey] (one number per round; NaN = failed run). */
export function buildSummary(pairs: PairInfo[], samples: Samples, referenceId: string | null, metrics: readonly MetricDef[] = METRICS): BenchSummary {
  const reference = referenceId !== null && pairs.some((p) => p.id === referenceId) ? referenceId : null;
  const cells: BenchSummary['cells'] = {};
  for (const m of metrics) {
    const row: Record<string, Cell> = {};
    for (const p of pairs) {
      row[p.id] = applies(m, p) ? { ...summarize(samples[p.id]?.[m.key] ?? []), ratio: NaN } : { ...summarize([]), ratio: NaN, notApplicable: true };
    }
    const ref = reference !== null ? row[reference]!.median : NaN;
    for (const p of pairs) row[p.id]!.ratio = ratio(row[p.id]!.median, ref);
    cells[m.key] = row;
  }
  return { reference, pairs, metrics: [...metrics], cells };
}

/** A number with about three significant digits ("–" for NaN). */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return '–';
  const a = Math.abs(x);
  if (a >= 100 || a === 0) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  return x.toPrecision(2);
}

function cellText(c: Cell, isReference: boolean): string {
  if (c.notApplicable === true) return 'n/a';
  if (c.n === 0) return '–';
  const range = c.n > 1 ? ` [${fmt(c.min)}–${fmt(c.max)}]` : '';
  const r = !isReference && Number.isFinite(c.ratio) ? ` ×${c.ratio.toFixed(2)}` : '';
  return `${fmt(c.median)}${range}${r}`;
}

/**
 * The summary as one Markdown table: a row per metric, a column per pair, each cell
 * "median [min–max] ×ratio-to-reference".
 */
export function formatTable(s: BenchSummary): string {
  const header = ['metric', ...s.pairs.map((p) => p.label + (p.id === s.reference ? ' (ref)' : ''))];
  const rows = s.metrics.map((m) => [
    `${m.label}, ${m.unit} ${m.better === 'higher' ? '↑' : '↓'}`,
    ...s.pairs.map((p) => cellText(s.cells[m.key]![p.id]!, p.id === s.reference)),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cols: string[]): string =>
    `| ${cols.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22'];
const REFERENCE_COLOUR = '#7f7f7f';

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * Small multiples: one panel per metric, one horizontal bar per pair (length = median, thin
 * line = min–max, label = median and ratio), scaled to the largest max in the panel.
 */
export function renderSvg(s: BenchSummary, opts: { title: string; subtitle?: string[] }): string {
  const colour = new Map<string, string>();
  let next = 0;
  for (const p of s.pairs) colour.set(p.id, p.id === s.reference ? REFERENCE_COLOUR : PALETTE[next++ % PALETTE.length]!);
  const cols = 3;
  const panelW = 320;
  const barH = 14;
  const gap = 6;
  const barArea = 190;
  const panelH = 34 + s.pairs.length * (barH + gap) + 8;
  const subtitle = [...(opts.subtitle ?? []), 'bar: median; whisker: min–max over rounds; ×: ratio of medians to the reference; ↑ higher is better, ↓ lower is better'];
  const legendTop = 30 + subtitle.length * 16;
  const legendRows = Math.ceil(s.pairs.length / 3);
  const top = legendTop + legendRows * 18 + 10;
  // Text is not measured; ~6 px per character at 11 px is a safe estimate for the width.
  const width = Math.max(cols * panelW + 20, 20 + Math.max(...subtitle.map((l) => l.length)) * 6);
  const height = top + Math.ceil(s.metrics.length / cols) * panelH + 10;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="10" y="20" font-size="15" font-weight="bold">${esc(opts.title)}</text>`);
  subtitle.forEach((line, i) => out.push(`<text x="10" y="${38 + i * 16}" fill="#555555">${esc(line)}</text>`));
  s.pairs.forEach((p, i) => {
    const x = 10 + (i % 3) * panelW;
    const y = legendTop + Math.floor(i / 3) * 18;
    out.push(`<rect x="${x}" y="${y}" width="12" height="12" fill="${colour.get(p.id)}"/>`);
    out.push(`<text x="${x + 18}" y="${y + 10}">${esc(p.label + (p.id === s.reference ? ' (reference)' : ''))}</text>`);
  });
  s.metrics.forEach((m, mi) => {
    const px = 10 + (mi % cols) * panelW;
    const py = top + Math.floor(mi / cols) * panelH;
    out.push(`<g transform="translate(${px},${py})">`);
    out.push(`<rect x="0" y="0" width="${panelW - 10}" height="${panelH - 6}" fill="#f7f7f7" stroke="#dddddd"/>`);
    out.push(`<text x="8" y="16" font-weight="bold">${esc(`${m.label} (${m.unit}) ${m.better === 'higher' ? '↑' : '↓'}`)}</text>`);
    const cells = s.pairs.map((p) => s.cells[m.key]![p.id]!);
    const scaleMax = Math.max(0, ...cells.map((c) => (Number.isFinite(c.max) ? c.max : 0)));
    const sx = (v: number): number => (scaleMax > 0 ? (Math.max(0, v) / scaleMax) * barArea : 0);
    s.pairs.forEach((p, i) => {
      const c = cells[i]!;
      const y = 28 + i * (barH + gap);
      const x0 = 8;
      if (c.n === 0) {
        out.push(`<text x="${x0}" y="${y + barH - 3}" fill="#999999">${c.notApplicable === true ? 'n/a' : 'no data'}</text>`);
        return;
      }
      out.push(`<rect x="${x0}" y="${y}" width="${sx(c.median).toFixed(1)}" height="${barH}" fill="${colour.get(p.id)}"/>`);
      if (c.n > 1) {
        const mid = y + barH / 2;
        out.push(`<line x1="${(x0 + sx(c.min)).toFixed(1)}" y1="${mid}" x2="${(x0 + sx(c.max)).toFixed(1)}" y2="${mid}" stroke="#000000" stroke-width="1.2"/>`);
        for (const v of [c.min, c.max]) out.push(`<line x1="${(x0 + sx(v)).toFixed(1)}" y1="${y + 3}" x2="${(x0 + sx(v)).toFixed(1)}" y2="${y + barH - 3}" stroke="#000000" stroke-width="1.2"/>`);
      }
      const label = fmt(c.median) + (p.id !== s.reference && Number.isFinite(c.ratio) ? ` ×${c.ratio.toFixed(2)}` : '');
      out.push(`<text x="${x0 + barArea + 6}" y="${y + barH - 3}">${esc(label)}</text>`);
    });
    out.push('</g>');
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
