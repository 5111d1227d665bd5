// Writes the table of values in charts/quarantine-operator/README.md from
// values.yaml (its keys, defaults and comments), between the two markers.
// `--check` only compares and fails when the README is stale.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { valuesTable, spliceValuesTable } from '../operator/kube/chart-readme.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const chart = join(root, 'charts', 'quarantine-operator');
const readmePath = join(chart, 'README.md');
const current = readFileSync(readmePath, 'utf8');
const wanted = spliceValuesTable(current, valuesTable(readFileSync(join(chart, 'values.yaml'), 'utf8'), JSON.parse(readFileSync(join(chart, 'values.schema.json'), 'utf8')) as object));
if (process.argv.includes('--check')) {
  if (wanted !== current) {
    process.stderr.write('gen-chart-readme: charts/quarantine-operator/README.md is out of date; run `npm run gen:chart-readme`\n');
    process.exit(1);
  }
  process.stdout.write('gen-chart-readme: up to date\n');
} else {
  if (wanted !== current) writeFileSync(readmePath, wanted);
  process.stdout.write(wanted === current ? 'gen-chart-readme: up to date\n' : 'gen-chart-readme: wrote charts/quarantine-operator/README.md\n');
}
