// The chart README lists every value of values.yaml with its default and a
// description, and is exactly what `npm run gen:chart-readme` writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { spliceValuesTable, valueRows, valuesTable } from '../../operator/kube/chart-readme.ts';

const chart = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'charts', 'quarantine-operator');
const valuesYaml = readFileSync(join(chart, 'values.yaml'), 'utf8');
const schema = JSON.parse(readFileSync(join(chart, 'values.schema.json'), 'utf8')) as object;

test('the README’s table of values is up to date', () => {
  const readme = readFileSync(join(chart, 'README.md'), 'utf8');
  assert.equal(spliceValuesTable(readme, valuesTable(valuesYaml, schema)), readme, 'run `npm run gen:chart-readme` and commit the README');
});

test('every value has a description, and every top-level key of values.yaml is in the table', () => {
  const rows = valueRows(valuesYaml, schema);
  assert.deepEqual(rows.filter((r) => r.description === '').map((r) => r.key), []);
  const top = Object.keys(parse(valuesYaml) as Record<string, unknown>);
  for (const key of top) assert.ok(rows.some((r) => r.key === key || r.key.startsWith(`${key}.`)), key);
  const defaults = rows.find((r) => r.key === 'secrets.apiToken.key');
  assert.equal(defaults?.default, '"token"');
});

test('a closed map is a group of values; an open one (a Kubernetes object) is one value', () => {
  const rows = valueRows('# A group.\na:\n  # The b.\n  b: 1\n  c: 2\n\n  d: 3\n# Passed through.\nk:\n  x: {y: 1}\n', {
    properties: { a: { additionalProperties: false, properties: {} }, k: {} },
  } as object);
  assert.deepEqual(rows, [
    { key: 'a.b', default: '1', description: 'The b.' },
    { key: 'a.c', default: '2', description: 'The b.' },
    { key: 'a.d', default: '3', description: 'A group.' },
    { key: 'k', default: '{"x":{"y":1}}', description: 'Passed through.' },
  ]);
});
