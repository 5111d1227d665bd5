// `npm run bench [-- SCENARIO… --param=value…]`: runs the selected scenarios
// (all registered ones by default) against the real services, then updates
// bench/out/results.json and re-renders BENCHMARKS.md.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { scenarios } from './registry.ts';
import type { Context, Figure, Scenario } from './scenario.ts';
import { RunServices } from './lib/services.ts';
import { StderrProgress } from './lib/progress.ts';
import { describeMachine, load, type Machine } from './lib/machine.ts';
import { mergeResults, readCommentary, readResults, renderMarkdown, writeResults, type ScenarioRun } from './lib/report.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = dirname(here);
const outDir = join(here, 'out');
const resultsPath = join(outDir, 'results.json');
const reportPath = join(root, 'BENCHMARKS.md');
const order = scenarios.map((s) => s.name);

function usage(): string {
  const lines = ['usage: npm run bench -- [SCENARIO…] [--PARAM=VALUE…] [--no-report]', '', '--no-report: update bench/out/results.json but leave BENCHMARKS.md as it is', '', 'scenarios (default: all):'];
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
}

function parseArgs(argv: string[]): Args | 'help' {
  const params = new Map<string, string>();
  const names: string[] = [];
  let report = true;
  for (const a of argv) {
    if (a === '--help' || a === '-h') return 'help';
    if (a === '--no-report') {
      report = false;
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
  const known = new Set(scenarios.flatMap((s) => s.params.map((p) => p.name)));
  for (const k of params.keys()) if (!known.has(k)) throw new Error(`unknown parameter --${k}; see --help`);
  const selected = names.length === 0 ? scenarios : names.map((n) => {
    const s = scenarios.find((x) => x.name === n);
    if (s === undefined) throw new Error(`unknown scenario "${n}"; known: ${order.join(', ')}`);
    return s;
  });
  return { selected, params, report };
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
      const next = mergeResults(readResults(resultsPath), run, figures, order);
      writeResults(resultsPath, next);
      if (args.report) writeFileSync(reportPath, renderMarkdown(next, order, readCommentary(join(here, 'notes'))));
    }
  }
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (args.report) progress.log(`wrote ${resultsPath} and ${reportPath}`);
  return failed > 0 ? 1 : 0;
}

process.exitCode = await main();
