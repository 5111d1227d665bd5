// BENCHMARKS.md is rendered from bench/results.json and bench/notes/*.md: a
// hand edit of the report, or a note or record changed without rendering it
// again, would leave the report saying something the record does not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { scenarios } from '../../bench/registry.ts';
import { readCommentary, readResults, renderMarkdown } from '../../bench/lib/report.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('BENCHMARKS.md is what bench/results.json and bench/notes render', () => {
  const results = readResults(join(root, 'bench', 'results.json'));
  const rendered = renderMarkdown(results, scenarios.map((s) => s.name), readCommentary(join(root, 'bench', 'notes')), results.plots ?? []);
  const report = readFileSync(join(root, 'BENCHMARKS.md'), 'utf8');
  // Equal or not, the message names the command that renders it again, not a diff of 2,000 lines.
  assert.ok(report === rendered, 'BENCHMARKS.md differs from what bench/results.json and bench/notes/*.md render: run `npm run bench -- --plots-only`');
});
