// The benchmark record: a run replaces what it measured again, in the order
// it measured it, and keeps the rest with the run that measured them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeResults, renderMarkdown, type Results, type ScenarioRun } from '../../bench/lib/report.ts';
import type { Figure } from '../../bench/scenario.ts';

const machine = { cpu: 'test', cores: 2, ramGiB: 1, node: 'v24', rabbitmq: '3', postgresql: '15', sqlite: '3', kernel: '6' };
const runOf = (scenario: string, startedAt: string): ScenarioRun => ({
  scenario, description: scenario, command: `npm run bench -- ${scenario}`, startedAt, durationS: 1, loadBefore: 0, loadAfter: 0, machine, notes: [],
});
const fig = (figure: string, value: number, ceiling?: number): Figure => ({ figure, label: figure, value, unit: 'ms', ceiling, params: {} });
const empty: Results = { schema: 2, updatedAt: '', runs: [], figures: [] };
const order = ['ingest', 'capture'];

test('a run lists its figures in its own order; figures it did not measure stay, after them', () => {
  let r = mergeResults(empty, runOf('capture', '2026-01-01T00:00:00Z'), [fig('gap0', 0), fig('gap500', 100), fig('old', 5)], order);
  r = mergeResults(r, runOf('ingest', '2026-01-01T01:00:00Z'), [fig('rate', 1000, 2000)], order);
  r = mergeResults(r, runOf('capture', '2026-01-02T00:00:00Z'), [fig('gap0', 0), fig('gap100', 30), fig('gap500', 100)], order);
  assert.deepEqual(r.figures.map((f) => f.figure), ['rate', 'gap0', 'gap100', 'gap500', 'old']);
  assert.equal(r.figures.find((f) => f.figure === 'old')?.measuredAt, '2026-01-01T00:00:00Z');
  assert.equal(r.figures.find((f) => f.figure === 'gap100')?.measuredAt, '2026-01-02T00:00:00Z');
  assert.equal(r.figures.find((f) => f.figure === 'rate')?.ratio, 0.5);
  // The first capture run still owns a figure, so it stays in the record.
  assert.deepEqual(r.runs.map((x) => `${x.scenario}@${x.startedAt}`), ['capture@2026-01-01T00:00:00Z', 'ingest@2026-01-01T01:00:00Z', 'capture@2026-01-02T00:00:00Z']);
  const md = renderMarkdown(r, order, () => undefined);
  assert.ok(md.indexOf('| gap100 |') < md.indexOf('| gap500 |'), md);
  assert.match(md, /\| rate \| 1,000 ms \| 2,000 ms \| 0\.50 \|/);
});

test('a target with a share of the ceiling is met by either the value or the share, and says both', () => {
  const withShare = (figure: string, value: number, ceiling: number): Figure => ({
    ...fig(figure, value, ceiling), unit: '/s', target: { op: '>=', value: 10_000, orRatio: 0.5 },
  });
  const r = mergeResults(empty, runOf('ingest', '2026-01-01T00:00:00Z'), [
    withShare('by-share', 6_000, 11_000), withShare('by-value', 10_500, 30_000), withShare('neither', 6_000, 13_000),
  ], order);
  const md = renderMarkdown(r, order, () => undefined);
  const row = (name: string) => md.split('\n').find((l) => l.startsWith(`| ${name} |`)) ?? '';
  assert.match(row('by-share'), /\| meets target ≥ 10,000 \/s or ≥ 0\.5 of the ceiling/);
  assert.match(row('by-value'), /\| meets target ≥ 10,000 \/s or ≥ 0\.5 of the ceiling/);
  assert.match(row('neither'), /\| \*\*misses\*\* target ≥ 10,000 \/s or ≥ 0\.5 of the ceiling/);
});
