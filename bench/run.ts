// `npm run bench [-- SCENARIO… --param=value…]`: runs the selected scenarios
// (all registered ones by default) against the real services, then updates
// bench/results.json (the record, kept in the repository) and re-renders
// BENCHMARKS.md and bench/plots.
// `--plots-only` re-renders the last two from results.json without running anything.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { scenarios } from './registry.ts';
import type { Context, Figure, Progress, Scenario } from './scenario.ts';
import { RunServices } from './lib/services.ts';
import { StderrProgress } from './lib/progress.ts';
import { describeMachine, load, type Machine } from './lib/machine.ts';
import { mergeResults, readCommentary, readResults, renderMarkdown, writeResults, type PlotRef, type Results, type ScenarioRun } from './lib/report.ts';
import { buildPlots } from './lib/plots.ts';
import { resultsFromReport } from './lib/report-import.ts';
import { svgToPng } from './lib/png.ts';
import { reserveWorkerThreads } from '../operator/ceph/worker-threads.ts';

// The operator runs in this process in some scenarios: the same thread pool as `quarantine run`.
reserveWorkerThreads();

const here = dirname(fileURLToPath(import.meta.url));
const root = dirname(here);
const outDir = join(here, 'out');
const resultsPath = join(here, 'results.json');
const scratchPath = join(outDir, 'results.json');
const reportPath = join(root, 'BENCHMARKS.md');
const plotsDir = join(here, 'plots');
const order = scenarios.map((s) => s.name);

function usage(): string {
  const lines = [
    'usage: npm run bench -- [SCENARIO…] [--PARAM=VALUE…] [--no-report]',
    '       npm run bench -- --plots-only',
    '',
    '--no-report: record the run in bench/out/results.json only (scratch, gitignored); the record, BENCHMARKS.md and bench/plots/ stay as they are',
    '--plots-only: run nothing; render bench/plots/*.png and BENCHMARKS.md again from bench/results.json',
    '--merge-results=FILE: run nothing; merge the runs of another results.json (another checkout or machine) into bench/results.json, then render',
    '',
    'scenarios (default: all):',
  ];
  for (const s of scenarios) {
    lines.push(`  ${s.name.padEnd(10)} ${s.description.split('\n')[0]}`);
    for (const p of s.params) lines.push(`      --${p.name}=${p.default}`.padEnd(40) + ` ${p.description} (env BENCH_${p.name.toUpperCase().replace(/-/g, '_')})`);
  }
  return lines.join('\n');
}

interface Args {
  selected: readonly Scenario[];
  params: Map<string, string>;
  report: boolean;
  plotsOnly: boolean;
  mergeFrom?: string;
}

function parseArgs(argv: string[]): Args | 'help' {
  const params = new Map<string, string>();
  const names: string[] = [];
  let report = true;
  let plotsOnly = false;
  let mergeFrom: string | undefined;
  for (const a of argv) {
    if (a.startsWith('--merge-results=')) {
      mergeFrom = a.slice('--merge-results='.length);
      if (mergeFrom === '') throw new Error('--merge-results needs a file: --merge-results=PATH');
      continue;
    }
    if (a === '--help' || a === '-h') return 'help';
    if (a === '--no-report') {
      report = false;
      continue;
    }
    if (a === '--plots-only') {
      plotsOnly = true;
      continue;
    }
    const m = /^--([a-z0-9-]+)=(.*)$/.exec(a);
    if (m !== null) {
      params.set(m[1]!, m[2]!);
      continue;
    }
    if (a.startsWith('-')) throw new Error(`unknown option ${a} (parameters are --name=value)`);
    names.push(a);
  }
  if (plotsOnly && (names.length > 0 || params.size > 0 || !report)) throw new Error('--plots-only runs no scenario: it takes no scenarios, parameters or --no-report');
  if (mergeFrom !== undefined && (plotsOnly || names.length > 0 || params.size > 0 || !report)) throw new Error('--merge-results runs no scenario: it takes no scenarios, parameters, --plots-only or --no-report');
  const known = new Set(scenarios.flatMap((s) => s.params.map((p) => p.name)));
  for (const k of params.keys()) if (!known.has(k)) throw new Error(`unknown parameter --${k}; see --help`);
  const selected = names.length === 0 ? scenarios : names.map((n) => {
    const s = scenarios.find((x) => x.name === n);
    if (s === undefined) throw new Error(`unknown scenario "${n}"; known: ${order.join(', ')}`);
    return s;
  });
  return { selected, params, report, plotsOnly, ...(mergeFrom === undefined ? {} : { mergeFrom }) };
}

/**
 * Renders every plot the results have data for into bench/plots (SVG, and
 * the PNG the report links). Returns the plots whose PNG was written, and
 * why the rest were not.
 */
async function writePlots(results: Results, progress: Progress): Promise<{ plots: PlotRef[]; error?: string }> {
  mkdirSync(plotsDir, { recursive: true });
  const plots: PlotRef[] = [];
  for (const p of buildPlots(results)) {
    progress.update(`plot ${p.name}`);
    writeFileSync(join(plotsDir, `${p.name}.svg`), p.svg);
    try {
      writeFileSync(join(plotsDir, `${p.name}.png`), await svgToPng(p.svg));
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      progress.log(`plots: ${error}`);
      return { plots, error };
    }
    plots.push({ name: p.name, title: p.title });
  }
  progress.log(plots.length === 0 ? 'plots: no data to draw any plot again' : `plots: wrote ${plots.map((p) => `${p.name}.png`).join(', ')} to ${relative(root, plotsDir)}/`);
  return { plots: keptPlots(results.plots ?? [], plots) };
}

/** A plot no run has data for any more (e.g. the record was read back from the report) keeps its last PNG. */
function keptPlots(before: readonly PlotRef[], drawn: readonly PlotRef[]): PlotRef[] {
  const fresh = new Map(drawn.map((p) => [p.name, p]));
  const out = before.filter((p) => fresh.has(p.name) || existsSync(join(plotsDir, `${p.name}.png`))).map((p) => fresh.get(p.name) ?? p);
  for (const p of drawn) if (!out.some((q) => q.name === p.name)) out.push(p);
  return out;
}

/**
 * The record. A checkout that has a report but no record (one made before the
 * record was kept in the repository) gets the record back from the report, so
 * that a run of one scenario does not render a report of that scenario alone.
 */
function readRecord(progress: Progress): Results {
  if (existsSync(resultsPath) || !existsSync(reportPath)) return readResults(resultsPath);
  const record = resultsFromReport(readFileSync(reportPath, 'utf8'), order);
  progress.log(`${relative(root, resultsPath)} is missing: read ${record.figures.length} figures and ${record.runs.length} runs back from ${relative(root, reportPath)}`);
  return record;
}

function render(results: Results, plots: readonly PlotRef[]): void {
  writeResults(resultsPath, { ...results, plots: [...plots] });
  writeFileSync(reportPath, renderMarkdown(results, order, readCommentary(join(here, 'notes')), plots));
}

/** Merges the runs recorded in another results.json, oldest first, as if they had run here. */
async function mergeFrom(path: string): Promise<number> {
  const progress = new StderrProgress();
  if (!existsSync(path)) {
    progress.log(`${path}: no such file`);
    return 2;
  }
  const other = readResults(path);
  if (other.figures.length === 0) {
    progress.log(`${path}: not a results record with figures`);
    return 2;
  }
  let record = readRecord(progress);
  let merged = 0;
  for (const run of [...other.runs].sort((a, b) => a.startedAt.localeCompare(b.startedAt))) {
    const figures: Figure[] = other.figures
      .filter((f) => f.scenario === run.scenario && f.measuredAt === run.startedAt)
      .map(({ scenario: _s, measuredAt: _m, ceiling, ratio, ...f }) => ({ ...f, ceiling: ceiling ?? undefined, ratio: ratio ?? undefined }));
    if (figures.length === 0 && run.error === undefined) continue;
    if (record.runs.some((r) => r.scenario === run.scenario && r.startedAt === run.startedAt)) continue;
    record = mergeResults(record, run, figures, order);
    merged += 1;
  }
  progress.log(`merged ${merged} runs from ${path}`);
  const { plots, error } = await writePlots(record, progress);
  render(record, plots);
  progress.log(`wrote ${relative(root, resultsPath)} and ${relative(root, reportPath)}`);
  return error === undefined ? 0 : 1;
}

async function plotsOnly(): Promise<number> {
  const progress = new StderrProgress();
  const results = readRecord(progress);
  if (results.figures.length === 0) {
    progress.log(`${relative(root, resultsPath)} is missing, unreadable or empty: run the benchmarks first (npm run bench)`);
    return 1;
  }
  const { plots, error } = await writePlots(results, progress);
  // Nothing new to report when the plots failed; rewriting would only drop the Plots section.
  if (error !== undefined) return 1;
  render(results, plots);
  progress.log(`wrote ${reportPath}`);
  return 0;
}

async function main(): Promise<number> {
  let args: Args | 'help';
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return 2;
  }
  if (args === 'help') {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  if (args.plotsOnly) return plotsOnly();
  if (args.mergeFrom !== undefined) return mergeFrom(args.mergeFrom);
  mkdirSync(outDir, { recursive: true });
  const progress = new StderrProgress();
  const services = new RunServices();
  const deferred: Array<() => Promise<void> | void> = [];
  const cleanup = async () => {
    while (deferred.length > 0) {
      const fn = deferred.pop()!;
      try {
        await fn();
      } catch (err) {
        progress.log(`cleanup step failed: ${String(err)}`);
      }
    }
    for (const p of await services.release()) progress.log(p);
  };
  // An interrupted run must still give back its vhost and database.
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) process.exit(130);
    interrupted = true;
    progress.log(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const machine: Machine = await describeMachine();
  progress.log(`${machine.cpu}, ${machine.cores} cores, ${machine.ramGiB} GiB; Node ${machine.node}; RabbitMQ ${machine.rabbitmq}; PostgreSQL ${machine.postgresql}; SQLite ${machine.sqlite}; load ${load()}`);
  const commandArgs = process.argv.slice(2);
  const params = args.params;
  let failed = 0;
  let plotError: string | undefined;
  for (const scenario of args.selected) {
    const scoped = progress.scoped(scenario.name);
    const notes: string[] = [];
    const declared = new Map(scenario.params.map((p) => [p.name, p]));
    const ctx: Context = {
      services,
      progress: scoped,
      outDir,
      param(name) {
        const spec = declared.get(name);
        if (spec === undefined) throw new Error(`scenario ${scenario.name} reads undeclared parameter ${name}`);
        return params.get(name) ?? process.env[`BENCH_${name.toUpperCase().replace(/-/g, '_')}`] ?? spec.default;
      },
      defer(fn) {
        deferred.push(fn);
      },
      note(text) {
        notes.push(text);
      },
    };
    const startedAt = new Date().toISOString();
    const loadBefore = load();
    const t0 = performance.now();
    let figures: Figure[] = [];
    let error: string | undefined;
    scoped.log(`start (load ${loadBefore})`);
    try {
      figures = await scenario.run(ctx);
    } catch (err) {
      error = err instanceof Error ? `${err.message}` : String(err);
      scoped.log(`FAILED: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      failed += 1;
    }
    await cleanup();
    if (interrupted) return 130;
    const durationS = (performance.now() - t0) / 1000;
    const used = scenario.params.map((p) => `--${p.name}=${ctx.param(p.name)}`).filter((s) => commandArgs.includes(s));
    const run: ScenarioRun = {
      scenario: scenario.name,
      description: scenario.description,
      command: ['npm run bench --', scenario.name, ...used].join(' '),
      startedAt,
      durationS,
      loadBefore,
      loadAfter: load(),
      machine,
      notes,
      ...(error === undefined ? {} : { error }),
    };
    for (const f of figures) scoped.log(`${f.label}: ${f.value} ${f.unit}${f.ceiling === undefined ? '' : ` (ceiling ${f.ceiling})`}`);
    scoped.log(`done in ${Math.round(durationS)} s`);
    if (figures.length > 0 || error !== undefined) {
      // A failed scenario keeps its previous figures; its section shows the error.
      if (args.report) {
        const next = mergeResults(readRecord(progress), run, figures, order);
        const { plots, error: why } = await writePlots(next, progress);
        plotError = why;
        render(next, plots);
      } else {
        // An exploratory run leaves the committed record alone; --merge-results adopts it later if it should count.
        writeResults(scratchPath, mergeResults(readResults(scratchPath), run, figures, order));
        scoped.log(`recorded in ${relative(root, scratchPath)} only; \`npm run bench -- --merge-results=${relative(root, scratchPath)}\` adopts it`);
      }
    }
  }
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (args.report) progress.log(`wrote ${resultsPath}, ${reportPath} and ${plotsDir}`);
  else progress.log(`wrote ${scratchPath}`);
  if (plotError !== undefined) progress.log('the results are saved; once the plots can be rendered, `npm run bench -- --plots-only` draws them');
  return failed > 0 || plotError !== undefined ? 1 : 0;
}

process.exitCode = await main();
