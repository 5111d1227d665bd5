// Writes the CustomResourceDefinitions (crds/ and the chart's copy) from the
// zod schemas in operator/resources. `--check` only compares, and fails
// with the list of files that differ (for CI and the drift test).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RESOURCES, openApiSchemaOf, renderCrdFiles, structuralProblems } from '../operator/resources/crd.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const check = process.argv.includes('--check');

const problems = RESOURCES.flatMap((def) => structuralProblems(openApiSchemaOf(def)).map((p) => `${def.kind}: ${p}`));
if (problems.length > 0) {
  process.stderr.write(`gen-crds: the schemas are not structural:\n  ${problems.join('\n  ')}\n`);
  process.exit(1);
}

const stale: string[] = [];
for (const file of renderCrdFiles()) {
  const target = join(root, file.path);
  let current: string | undefined;
  try {
    current = readFileSync(target, 'utf8');
  } catch {
    current = undefined;
  }
  if (current === file.content) continue;
  stale.push(file.path);
  if (!check) {
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, file.content);
  }
}

if (check && stale.length > 0) {
  process.stderr.write(`gen-crds: out of date: ${stale.join(', ')}; run \`npm run gen:crds\`\n`);
  process.exit(1);
}
process.stdout.write(stale.length === 0 ? 'gen-crds: up to date\n' : `gen-crds: wrote ${stale.join(', ')}\n`);
