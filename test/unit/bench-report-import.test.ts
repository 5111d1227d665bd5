// A report read back into a record renders the same report again, so a
// checkout that has only BENCHMARKS.md loses nothing the report shows when a
// run of one scenario is merged into it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeResults, renderMarkdown, type Results, type ScenarioRun, type StoredFigure } from '../../bench/lib/report.ts';
import { resultsFromReport } from '../../bench/lib/report-import.ts';
import { rng } from '../support/histories.ts';

const order = ['ingest', 'apply', 'trace', 'capture'];
const machine = { cpu: 'AMD EPYC', cores: 2, ramGiB: 23.5, node: 'v24.21.0', rabbitmq: '3.10.8', postgresql: '15.20 (Debian)', sqlite: '3.53.4', kernel: '6.18.44' };
const units = ['ms', '/s', 'MiB', '%', 's', 'calls', ''];
const words = ['quiet', 'run', 'load 0.5 → 1.2', 'p99', 'a | pipe', '(or ≥ 0.5 of the bare consumer)', '10M intervals', 'SQLite (file)', '`code`'];

function generated(seed: number): Results {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const magnitude = () => Number((10 ** (r() * 8 - 4)).toPrecision(3));
  const runs: ScenarioRun[] = [];
  // Runs are told apart by the minute they started in, as the report shows them.
  const minutes = new Set<number>();
  for (const scenario of order) {
    const n = 1 + Math.floor(r() * 3);
    for (let i = 0; i < n; i++) {
      let minute = 10 + Math.floor(r() * 40);
      while (minutes.has(i * 100 + minute)) minute = 10 + ((minute - 9) % 40);
      minutes.add(i * 100 + minute);
      runs.push({
        scenario,
        description: `${scenario}: what it measures`,
        command: `npm run bench -- ${scenario} --${scenario}-n=${1000 * (i + 1)}`,
        startedAt: `2026-12-0${1 + i}T1${i}:${minute}:00.000Z`,
        durationS: Math.floor(r() * 3000),
        loadBefore: Math.round(r() * 3000) / 100,
        loadAfter: Math.round(r() * 3000) / 100,
        machine,
        notes: r() < 0.5 ? [] : [`${pick(words)} ${Math.floor(r() * 100)}`, pick(words)],
      });
    }
  }
  let results: Results = { schema: 2, updatedAt: '', runs: [], figures: [] };
  let k = 0;
  for (const run of runs) {
    const figures = Array.from({ length: Math.floor(r() * 4) }, () => {
      const unit = pick(units);
      const value = magnitude();
      const ceiling = r() < 0.6 ? magnitude() : undefined;
      k += 1;
      return {
        figure: `${run.scenario}.f${k}`,
        label: `${run.scenario} figure ${k}, ${pick(words)}`,
        value,
        unit,
        ceiling,
        ...(r() < 0.4 ? { target: { op: pick(['>=', '<='] as const), value: magnitude() } } : {}),
        params: {},
        ...(r() < 0.7 ? { notes: `${pick(words)}; ${pick(words)} ${Math.floor(r() * 1000)}` } : {}),
      };
    });
    results = mergeResults(results, run, figures, order);
  }
  return results;
}

test('a rendered report read back renders the same report, for generated records', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const first = renderMarkdown(generated(seed), order, () => undefined);
    const back = resultsFromReport(first, order);
    assert.equal(renderMarkdown(back, order, () => undefined), first, `seed ${seed}`);
  }
});

test('figures read back keep their scenario, run, target and ceiling', () => {
  const results = generated(7);
  const back = resultsFromReport(renderMarkdown(results, order, () => undefined), order);
  assert.equal(back.figures.length, results.figures.length);
  for (const [i, f] of results.figures.entries()) {
    const b: StoredFigure = back.figures[i]!;
    assert.equal(b.label, f.label);
    assert.equal(b.scenario, f.scenario);
    assert.equal(b.measuredAt.slice(0, 16), f.measuredAt.slice(0, 16));
    assert.equal(b.target?.op, f.target?.op);
    assert.equal(b.ceiling === null, f.ceiling === null);
  }
  assert.deepEqual(back.runs.map((r) => r.machine), results.runs.map(() => machine));
});

test('a run that measures a figure of the same label replaces the one read back from the report', () => {
  const results = generated(11);
  const back = resultsFromReport(renderMarkdown(results, order, () => undefined), order);
  const old = back.figures.find((f) => f.scenario === 'trace')!;
  const run: ScenarioRun = { ...back.runs.find((r) => r.scenario === 'trace')!, startedAt: '2026-12-09T09:00:00.000Z', notes: [] };
  const next = mergeResults(back, run, [{ figure: 'trace.sqlite.p99', label: old.label, value: 1.5, unit: old.unit, params: {} }], order);
  const same = next.figures.filter((f) => f.label === old.label);
  assert.equal(same.length, 1);
  assert.equal(same[0]!.figure, 'trace.sqlite.p99');
  assert.equal(same[0]!.measuredAt, '2026-12-09T09:00:00.000Z');
  assert.equal(next.figures.length, back.figures.length);
});

test('hand-written rows keep their words: a remark after the command, two durations, a figure of unknown run', () => {
  const md = [
    '# Benchmarks', '', '## Machine', '', '- CPU: AMD EPYC, 2 cores; RAM 23.5 GiB; Linux 6.18', '- Node v24; RabbitMQ 3; PostgreSQL 15; SQLite 3 (node:sqlite)', '',
    '## Runs', '', '| scenario | date (UTC) | command | duration | load (1 min) before → after |', '|---|---|---|---|---|',
    '| apply | 2026-12-04 00:03Z | `npm run bench -- apply` without 0017, then with it | 167 s, 191 s | 23.04 → 27.45, 28.5 → 27.86 |',
    '| apply | 2026-12-04 00:41Z | `npm run bench -- apply --no-report` | 64 s | 18.33 → 21.18 |', '',
    '## Figures', '', 'Ceiling: …', '', '| figure | value | ceiling (same run) | ratio | notes |', '|---|---|---|---|---|',
    '| apply rate | 1,458 /s | 8,167 /s | 0.18 | **misses** target ≥ 10,000 /s; batches of 400; run of 2026-12-04 00:41Z |',
    '| apply bytes | 3,263 MiB | — | — | quiet run of 2026-12-04 00:03Z, load 0.5 |',
    '| apply RSS | 119 MiB | — | — | measured some day |', '',
  ].join('\n');
  const back = resultsFromReport(md, ['apply']);
  assert.equal(back.runs[0]!.command, 'npm run bench -- apply');
  assert.equal(back.runs[0]!.remark, 'without 0017, then with it (durations 167 s, 191 s; load 23.04 → 27.45, 28.5 → 27.86)');
  assert.deepEqual(back.figures.map((f) => [f.value, f.unit, f.ceiling, f.measuredAt]), [
    [1458, '/s', 8167, '2026-12-04T00:41:00.000Z'],
    [3263, 'MiB', null, '2026-12-04T00:03:00.000Z'],
    [119, 'MiB', null, ''],
  ]);
  assert.deepEqual(back.figures[0]!.target, { op: '>=', value: 10000 });
  const again = renderMarkdown(back, ['apply'], () => undefined);
  assert.match(again, /\| apply RSS \| 119 MiB \| — \| — \| measured some day \|/);
  assert.match(again, /`npm run bench -- apply` without 0017, then with it \(durations 167 s, 191 s;/);
});
