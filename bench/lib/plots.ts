// Which figures of results.json make which plot. Figures are found by their
// stable ids, so a plot keeps working as scenarios add figures, and one whose
// scenario has not run yet (or predates the data it needs) is left out
// rather than drawn empty.
import type { Results, StoredFigure } from './report.ts';
import { PALETTE, plainTick, renderChart, type Point, type Series } from './svg-chart.ts';

export interface Plot {
  /** File name without extension: bench/plots/NAME.png. */
  name: string;
  title: string;
  svg: string;
}

const CEILING_GREY = '#555555';

function when(iso: string): string {
  return iso.replace('T', ' ').replace(/:\d\d(\.\d+)?Z$/, 'Z');
}

/** Which run(s) the plotted numbers come from, since figures of different runs can share a plot. */
function measured(figs: readonly StoredFigure[]): string {
  const dates = [...new Set(figs.map((f) => f.measuredAt))].sort();
  if (dates.length === 0) return '';
  return dates.length === 1 ? `run of ${when(dates[0]!)}` : `runs of ${when(dates[0]!)} to ${when(dates.at(-1)!)}`;
}

function numbers(v: unknown): number[] {
  return Array.isArray(v) ? v.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)) : [];
}

/**
 * Fraction of `total` at or below each sample. `total` can exceed the
 * samples (deletions never captured), so the curve tops out below 1 rather
 * than hiding the misses.
 */
export function ecdf(samples: readonly number[], total = samples.length): Point[] {
  const sorted = [...samples].sort((a, b) => a - b);
  if (sorted.length === 0) return [];
  const n = Math.max(total, sorted.length);
  return [{ x: sorted[0]!, y: 0 }, ...sorted.map((x, i) => ({ x, y: (i + 1) / n }))];
}

/** 100k → 100000, 10M → 10000000; NaN for anything else. */
export function parseSize(label: string): number {
  const m = /^(\d+(?:\.\d+)?)([kMG]?)$/.exec(label);
  if (m === null) return Number.NaN;
  return Number(m[1]) * ({ '': 1, k: 1e3, M: 1e6, G: 1e9 } as Record<string, number>)[m[2]!]!;
}

const CAPTURE_COLOURS: Record<string, string> = {
  'trash.steady': PALETTE[0], 'trash.burst': PALETTE[4],
  'onDelete.steady': PALETTE[1], 'onDelete.burst': PALETTE[7],
  'softDelete.steady': PALETTE[2], 'softDelete.burst': PALETTE[5],
};

function captureLatency(figures: readonly StoredFigure[]): Plot | undefined {
  const byId = new Map(figures.map((f) => [f.figure, f]));
  const used: StoredFigure[] = [];
  const series: Series[] = [];
  for (const mode of ['trash', 'onDelete', 'softDelete']) {
    for (const kind of ['steady', 'burst']) {
      const f = byId.get(`capture.${mode}.${kind}.p50`);
      const samples = numbers(f?.samples);
      if (f === undefined || samples.length === 0) continue;
      const deletions = typeof f.params['deletions'] === 'number' ? f.params['deletions'] : samples.length;
      const count = deletions > samples.length ? `${samples.length} of ${deletions} captured` : `n=${samples.length}`;
      series.push({ label: `${mode} ${kind} (${count})`, points: ecdf(samples, deletions), step: true, color: CAPTURE_COLOURS[`${mode}.${kind}`] });
      used.push(f);
    }
  }
  if (series.length === 0) return undefined;
  // The default driver's ceiling: librbd when the run measured it.
  const bare = byId.get('capture.bare.librbd.p50') ?? byId.get('capture.bare.p50');
  const bareSamples = numbers(bare?.samples);
  if (bare !== undefined && bareSamples.length > 0) {
    series.push({ label: 'bare snap create + clone (ceiling)', points: ecdf(bareSamples), step: true, color: CEILING_GREY, dash: 'dashed' });
  }
  if (bare !== undefined) used.push(bare);
  const bareBurst = byId.get('capture.bare.librbd.burst.p50') ?? byId.get('capture.bare.burst.p50');
  const bareBurstSamples = numbers(bareBurst?.samples);
  if (bareBurst !== undefined && bareBurstSamples.length > 0) {
    series.push({ label: `bare, ${bareBurstSamples.length} at once (burst ceiling)`, points: ecdf(bareBurstSamples), step: true, color: CEILING_GREY, dash: 'dotted' });
    used.push(bareBurst);
  }
  const all = series.flatMap((s) => s.points.map((p) => p.x));
  const title = 'Capture latency per mode';
  return {
    name: 'capture-latency',
    title,
    svg: renderChart({
      title,
      subtitle: `deletion to quarantine durable in the ledger; ${measured(used)}`,
      // 100 ms to tens of seconds: only a log axis shows both ends, and it needs positive values.
      x: { label: 'latency', unit: 'ms', scale: all.every((v) => v > 0) ? 'log' : 'linear', format: plainTick },
      y: { label: 'fraction of deletions captured', min: 0, max: 1.04 },
      series,
      vlines: bare === undefined ? [] : [{ x: bare.value, label: `ceiling: bare p50, ${plainTick(bare.value)} ms`, color: '#000000', dash: 'dashed' }],
    }),
  };
}

function onDeleteWinRate(figures: readonly StoredFigure[]): Plot | undefined {
  const rows = figures.flatMap((f) => {
    const m = /^capture\.onDelete\.winrate\.gap(\d+)$/.exec(f.figure);
    if (m === null) return [];
    const gap = typeof f.params['gap'] === 'number' ? f.params['gap'] : Number(m[1]);
    return [{ gap, f }];
  }).sort((a, b) => a.gap - b.gap);
  if (rows.length === 0) return undefined;
  const series: Series[] = [{ label: 'onDelete win rate', points: rows.map((r) => ({ x: r.gap, y: r.f.value })), color: PALETTE[1], markers: true }];
  const ceilings = rows.filter((r) => r.f.ceiling !== null);
  if (ceilings.length > 0) series.push({ label: 'ceiling', points: ceilings.map((r) => ({ x: r.gap, y: r.f.ceiling! })), color: CEILING_GREY, dash: 'dashed', markers: true });
  const vms = [...new Set(rows.map((r) => r.f.params['vms']))];
  const per = vms.length === 1 && typeof vms[0] === 'number' ? `; ${vms[0]} VMs per gap` : '';
  const title = "onDelete win rate against Nova's delete gap";
  return {
    name: 'ondelete-winrate',
    title,
    svg: renderChart({
      title,
      subtitle: `${measured(rows.map((r) => r.f))}${per}`,
      x: { label: 'Nova delete gap, delete.start to disk removal', unit: 'ms' },
      y: { label: 'win rate', unit: '%', min: 0, max: 105 },
      series,
    }),
  };
}

function ingestRate(figures: readonly StoredFigure[]): Plot | undefined {
  const rows = figures.flatMap((f) => {
    const m = /^ingest\.([^.]+)\.rate$/.exec(f.figure);
    return m !== null && (f.series?.points.length ?? 0) > 0 ? [{ engine: m[1]!, f }] : [];
  });
  if (rows.length === 0) return undefined;
  const colours = [PALETTE[0], PALETTE[3], PALETTE[2], PALETTE[5]];
  const series: Series[] = [];
  rows.forEach(({ engine, f }, i) => {
    const color = colours[i % colours.length];
    const xy = (ps: ReadonlyArray<{ t: number; value: number }>) => ps.map((p) => ({ x: p.t, y: p.value }));
    series.push({ label: engine, points: xy(f.series!.points), color });
    if ((f.ceilingSeries?.points.length ?? 0) > 0) series.push({ label: `${engine}: bare consumer (ceiling)`, points: xy(f.ceilingSeries!.points), color, dash: 'dashed' });
  });
  const title = 'Ingest rate over time';
  return {
    name: 'ingest-rate',
    title,
    svg: renderChart({
      title,
      subtitle: `per-second rate of notifications recorded; ${measured(rows.map((r) => r.f))}`,
      x: { label: 'time since start', unit: 's' },
      y: { label: 'rate', unit: rows[0]!.f.series!.unit },
      series,
    }),
  };
}

function traceLatency(figures: readonly StoredFigure[]): Plot | undefined {
  const size = (f: StoredFigure, label: string) => (typeof f.params['intervals'] === 'number' ? f.params['intervals'] : parseSize(label));
  const groups = new Map<string, { engine: string; pct: string; points: Array<{ size: number; f: StoredFigure }> }>();
  const candidates = new Map<string, { engine: string; pct: string; points: Array<{ size: number; f: StoredFigure }> }>();
  for (const f of figures) {
    const m = /^trace\.([^.]+)\.([^.]+)\.(p50|p99)(\.candidate-index)?$/.exec(f.figure);
    if (m === null) continue;
    const [, engine, label, pct, candidate] = m as unknown as [string, string, string, string, string | undefined];
    const into = candidate === undefined ? groups : candidates;
    const key = `${engine}.${pct}`;
    const g = into.get(key) ?? { engine, pct, points: [] };
    g.points.push({ size: size(f, label), f });
    into.set(key, g);
  }
  if (groups.size === 0) return undefined;
  const engineRank = (e: string) => (e === 'sqlite' ? 0 : e === 'postgres' ? 1 : 2);
  const ordered = (m: typeof groups) => [...m.values()].sort((a, b) => engineRank(a.engine) - engineRank(b.engine) || a.engine.localeCompare(b.engine) || a.pct.localeCompare(b.pct));
  const colourOf: Record<string, string> = { 'sqlite.p50': PALETTE[0], 'sqlite.p99': PALETTE[4], 'postgres.p50': PALETTE[3], 'postgres.p99': PALETTE[1] };
  const spare = [PALETTE[5], PALETTE[6]];
  const series: Series[] = [];
  const ceilings: Series[] = [];
  ordered(groups).forEach((g, i) => {
    g.points.sort((a, b) => a.size - b.size);
    const color = colourOf[`${g.engine}.${g.pct}`] ?? spare[i % spare.length];
    series.push({ label: `${g.engine} ${g.pct}`, points: g.points.map((p) => ({ x: p.size, y: p.f.value })), color, markers: true });
    const scan = g.points.filter((p) => p.f.ceiling !== null);
    if (scan.length > 0) ceilings.push({ label: `${g.engine} ${g.pct}: full scan (ceiling)`, points: scan.map((p) => ({ x: p.size, y: p.f.ceiling! })), color, dash: 'dashed', markers: true });
  });
  // Not the shipped schema: points beside the lines, never joined to them.
  for (const g of ordered(candidates)) {
    series.push({ label: `${g.engine} ${g.pct}, candidate index`, points: g.points.map((p) => ({ x: p.size, y: p.f.value })), color: PALETTE[2], line: false });
  }
  const used = [...groups.values(), ...candidates.values()].flatMap((g) => g.points.map((p) => p.f));
  const title = 'trace ip latency against ledger size';
  return {
    name: 'trace-latency',
    title,
    svg: renderChart({
      title,
      subtitle: `traceAddress() with the ledger's index, beside a full scan; ${measured(used)}`,
      x: { label: 'ledger size', unit: 'intervals', scale: 'log' },
      y: { label: 'latency', unit: 'ms', scale: 'log', format: plainTick },
      series: [...series, ...ceilings],
    }),
  };
}

/** Every plot the results have data for, in the order of the report. */
export function buildPlots(results: Results): Plot[] {
  const makers = [ingestRate, traceLatency, captureLatency, onDeleteWinRate];
  return makers.map((make) => make(results.figures)).filter((p): p is Plot => p !== undefined);
}
