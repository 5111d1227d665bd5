// results.json is the record; BENCHMARKS.md is rendered from it. A run
// replaces the figures it measured again and keeps the rest, so the report
// always shows the latest measurement of everything, each traceable to the
// run (date, command, load) that produced it.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Figure, Target } from '../scenario.ts';
import type { Machine } from './machine.ts';

export interface ScenarioRun {
  scenario: string;
  description: string;
  command: string;
  startedAt: string;
  durationS: number;
  /** 1-minute load average before and after: another job on a 2-core machine shows here. */
  loadBefore: number;
  loadAfter: number;
  machine: Machine;
  notes: string[];
  error?: string | undefined;
  /** Words after the command in the runs table (a row read back from a report that carried them). */
  remark?: string | undefined;
}

/** As a scenario returned it, with ceiling and ratio always present (null when there is none) for readers of the JSON. */
export interface StoredFigure extends Omit<Figure, 'ceiling' | 'ratio'> {
  ceiling: number | null;
  ratio: number | null;
  scenario: string;
  /** startedAt of the run that measured it (runs are identified by scenario and start time); '' when not known (read back from a report that did not say). */
  measuredAt: string;
}

export interface Results {
  schema: 2;
  updatedAt: string;
  runs: ScenarioRun[];
  figures: StoredFigure[];
  /** The plots the report last linked, kept while no run has data to draw them again. */
  plots?: PlotRef[];
}

export function readResults(path: string): Results {
  if (existsSync(path)) {
    try {
      const parsed = JSON.parse(readFileSync(path, 'utf8')) as Results;
      if (parsed.schema === 2) return parsed;
    } catch {
      // A damaged record is replaced rather than aborting a benchmark run.
    }
  }
  return { schema: 2, updatedAt: new Date(0).toISOString(), runs: [], figures: [] };
}

function rankIn(order: readonly string[]): (s: string) => number {
  return (s) => {
    const i = order.indexOf(s);
    return i < 0 ? order.length : i;
  };
}

/**
 * A figure measured again replaces its previous value; figures this run did
 * not measure (other scenarios, or sizes left out by a parameter) stay with
 * the run that measured them, which stays in the record as long as one of
 * its figures does.
 */
export function mergeResults(prev: Results, run: ScenarioRun, figures: Figure[], order: readonly string[]): Results {
  const stored = new Map<string, StoredFigure>(figures.map((f) => [f.figure, {
    ...f,
    ceiling: f.ceiling ?? null,
    ratio: f.ratio ?? (f.ceiling !== undefined && f.ceiling !== 0 ? f.value / f.ceiling : null),
    scenario: run.scenario,
    measuredAt: run.startedAt,
  }]));
  const labels = new Set(figures.map((f) => f.label));
  // A figure read back from a rendered report has no id of its own, only its label.
  const replaced = (f: StoredFigure) => stored.has(f.figure) || labels.has(f.label);
  // The scenario just run lists its figures in the order it measured them;
  // older figures of it that this run did not measure follow.
  const merged: StoredFigure[] = [
    ...prev.figures.filter((f) => f.scenario !== run.scenario && !replaced(f)),
    ...stored.values(),
    ...prev.figures.filter((f) => f.scenario === run.scenario && !replaced(f)),
  ];
  const rank = rankIn(order);
  merged.sort((a, b) => rank(a.scenario) - rank(b.scenario));
  const runs = [...prev.runs, run];
  const latest = new Map<string, ScenarioRun>();
  for (const r of runs) latest.set(r.scenario, r);
  const used = new Set(merged.map((f) => `${f.scenario}@${f.measuredAt}`));
  // A figure of unknown date may come from any run of its scenario: they all stay.
  const kept = runs.filter((r) => used.has(`${r.scenario}@${r.startedAt}`) || used.has(`${r.scenario}@`) || latest.get(r.scenario) === r);
  return { schema: 2, updatedAt: new Date().toISOString(), runs: kept, figures: merged, ...(prev.plots === undefined ? {} : { plots: prev.plots }) };
}

export function writeResults(path: string, results: Results): void {
  writeFileSync(path, `${JSON.stringify(results, null, 1)}\n`);
}

function fmt(v: number | null | undefined, unit: string): string {
  if (v === undefined || v === null || !Number.isFinite(v)) return '—';
  const abs = Math.abs(v);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  const n = v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  return unit === '' ? n : `${n} ${unit}`;
}

function ratioText(r: number | null | undefined): string {
  if (r === undefined || r === null || !Number.isFinite(r)) return '—';
  if (r >= 10) return `${Math.round(r).toLocaleString('en-US')}×`;
  return r >= 0.1 ? `${r.toFixed(2)}` : r.toPrecision(2);
}

/** Whether `value` meets `t`; `ratio` (value / ceiling, when known) meets a target's `orRatio` on its own. */
export function meetsTarget(value: number, t: Target, ratio?: number | null): boolean {
  if (t.op === '<=') return value <= t.value;
  return value >= t.value || (t.orRatio !== undefined && ratio !== undefined && ratio !== null && ratio >= t.orRatio);
}

function targetText(f: StoredFigure): string {
  if (f.target === undefined) return '';
  const ok = meetsTarget(f.value, f.target, f.ratio);
  const share = f.target.orRatio === undefined ? '' : ` or ≥ ${f.target.orRatio} of the ceiling`;
  return `${ok ? 'meets' : '**misses**'} target ${f.target.op === '>=' ? '≥' : '≤'} ${fmt(f.target.value, f.unit)}${share}`;
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function machineLines(m: Machine): string[] {
  return [
    `- CPU: ${m.cpu}, ${m.cores} cores; RAM ${m.ramGiB} GiB; Linux ${m.kernel}`,
    `- Node ${m.node}; RabbitMQ ${m.rabbitmq}; PostgreSQL ${m.postgresql}; SQLite ${m.sqlite} (node:sqlite)`,
  ];
}

/** A plot written to bench/plots/NAME.png, for the report to show. */
export interface PlotRef {
  name: string;
  title: string;
}

/**
 * Renders the whole report; `commentary` maps a scenario to hand-written
 * analysis (bench/notes/NAME.md); `plots` are the ones whose PNG is in
 * bench/plots, linked relative to the repository root where BENCHMARKS.md is.
 */
export function renderMarkdown(results: Results, order: readonly string[], commentary: (scenario: string) => string | undefined, plots: readonly PlotRef[] = []): string {
  const rank = rankIn(order);
  const runs = [...results.runs].sort((a, b) => rank(a.scenario) - rank(b.scenario) || a.startedAt.localeCompare(b.startedAt));
  const scenarios = [...new Set(runs.map((r) => r.scenario))];
  const runsOf = (s: string) => runs.filter((r) => r.scenario === s);
  const when = (iso: string) => iso.replace('T', ' ').replace(/:\d\d\.\d+Z$/, 'Z');
  const out: string[] = [];
  out.push('# Benchmarks', '');
  out.push('Rendered by `npm run bench` (`node bench/run.ts`) from `bench/results.json`; the commentary comes from `bench/notes/*.md`, so edit those, not this file.', '');
  out.push('```sh', 'npm run bench                       # every scenario', 'npm run bench -- ingest trace       # only these', 'npm run bench -- --plots-only       # plots and this file again from results.json', 'npm run bench -- --help             # parameters', '```', '');
  const machines = new Map<string, Machine>();
  for (const r of runs) machines.set(JSON.stringify(r.machine), r.machine);
  if (machines.size === 1) out.push('## Machine', '', ...machineLines([...machines.values()][0]!), '');
  out.push('## Runs', '');
  out.push('| scenario | date (UTC) | command | duration | load (1 min) before → after |', '|---|---|---|---|---|');
  for (const r of runs) {
    const remark = r.remark === undefined ? '' : ` ${cell(r.remark)}`;
    out.push(`| ${r.scenario} | ${when(r.startedAt)} | \`${cell(r.command)}\`${remark} | ${Math.round(r.durationS)} s | ${r.loadBefore} → ${r.loadAfter} |`);
  }
  out.push('');
  out.push('## Figures', '');
  out.push('Ceiling: the same quantity for what the environment allows without our code (the raw broker consume rate, bare `rbd` calls) or for the naive way (a full scan), measured in the same run. Ratio = value / ceiling. A target that names a share of the ceiling ("or ≥ 0.5 of the ceiling") is met by either.', '');
  out.push('| figure | value | ceiling (same run) | ratio | notes |', '|---|---|---|---|---|');
  for (const f of results.figures) {
    const runOf = `run of ${when(f.measuredAt)}`;
    // Every figure names its run, so the report alone tells which run measured what; notes that already name it are not told twice.
    const notes = [targetText(f), f.notes ?? '', f.measuredAt !== '' && !(f.notes ?? '').includes(runOf) ? runOf : ''].filter((s) => s !== '').join('; ');
    out.push(`| ${cell(f.label)} | ${fmt(f.value, f.unit)} | ${fmt(f.ceiling, f.unit)} | ${ratioText(f.ratio)} | ${cell(notes)} |`);
  }
  out.push('');
  if (plots.length > 0) {
    out.push('## Plots', '');
    for (const p of plots) out.push(`![${p.title.replace(/[[\]\\]/g, '\\$&')}](bench/plots/${encodeURIComponent(p.name)}.png)`, '');
  }
  for (const name of scenarios) {
    const mine = runsOf(name);
    const last = mine.at(-1)!;
    out.push(`## ${name}`, '', last.description, '');
    if (last.error !== undefined) out.push(`**The last run failed:** ${last.error}`, '');
    const extra = commentary(name);
    if (extra !== undefined) out.push(extra.trim(), '');
    for (const r of [...mine].reverse()) {
      if (r.notes.length === 0) continue;
      out.push(`Recorded by \`${r.command}\` (${when(r.startedAt)}, load ${r.loadBefore} → ${r.loadAfter}):`, '');
      if (machines.size > 1) out.push(...machineLines(r.machine).map((l) => `  ${l}`));
      for (const line of r.notes) out.push(`- ${line}`);
      out.push('');
    }
  }
  return out.join('\n');
}

export function readCommentary(dir: string): (scenario: string) => string | undefined {
  return (scenario) => {
    const p = join(dir, `${scenario}.md`);
    return existsSync(p) ? readFileSync(p, 'utf8') : undefined;
  };
}
