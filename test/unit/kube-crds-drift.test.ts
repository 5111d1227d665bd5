// The CRD files are generated from the zod schemas; these tests fail when a
// schema changed and the files were not regenerated, and when a schema would
// not be structural (the apiserver refuses those, or prunes data silently).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { CHART_CRD_DIR, type JsonSchema, RESOURCES, crdFor, crdTemplateFor, openApiSchemaOf, renderCrdFiles, structuralProblems } from '../../operator/resources/crd.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('crds/ and the chart’s CRD templates are exactly what `npm run gen:crds` writes now', () => {
  const expected = renderCrdFiles();
  const stale: string[] = [];
  for (const file of expected) {
    let current: string | undefined;
    try {
      current = readFileSync(join(root, file.path), 'utf8');
    } catch {
      current = undefined;
    }
    if (current !== file.content) stale.push(file.path);
  }
  assert.deepEqual(stale, [], `generated CRDs are out of date: ${stale.join(', ')}; run \`npm run gen:crds\` and commit the result`);
  for (const dir of ['crds', CHART_CRD_DIR]) {
    const extra = readdirSync(join(root, dir)).filter((f) => !expected.some((e) => e.path === `${dir}/${f}`));
    assert.deepEqual(extra, [], `${dir} holds files the generator does not write; remove them or run \`npm run gen:crds\``);
  }
});

test('every CRD schema is structural', () => {
  for (const def of RESOURCES) assert.deepEqual(structuralProblems(openApiSchemaOf(def)), [], def.kind);
});

test('the structural check catches what the apiserver rejects', () => {
  const bad: Array<[JsonSchema, RegExp]> = [
    [{ type: 'object', properties: { a: { $ref: '#/x' } } }, /\.a: \$ref is not supported/],
    [{ type: 'object', properties: { a: {} } }, /\.a: type is missing/],
    [{ type: 'object', properties: { a: { type: 'string' } }, additionalProperties: false }, /mutually exclusive/],
    [{ type: 'object', properties: { a: { type: 'null' } } }, /type null/],
    [{ type: 'array', items: { type: 'string' }, uniqueItems: true }, /uniqueItems/],
    [{ type: 'object', properties: { a: { type: 'string', const: 'x' } } }, /const is not supported/],
    [{ type: 'object', oneOf: [{ type: 'object', properties: { a: { type: 'string' } } }] }, /oneOf\[0\]: type is forbidden/],
    [{ type: 'number', exclusiveMinimum: 0 }, /must be booleans/],
    [{ type: 'array', items: { type: 'object', properties: { k: { type: 'string' } } }, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['k'] }, /list map key k must be required/],
    [{ type: 'object', patternProperties: { '.*': { type: 'string' } } }, /patternProperties is not supported/],
  ];
  for (const [schema, message] of bad) {
    const problems = structuralProblems(schema);
    assert.ok(problems.some((p) => message.test(p)), `${JSON.stringify(schema)} → ${JSON.stringify(problems)}`);
  }
});

function schemaAt(schema: JsonSchema, jsonPath: string): JsonSchema | undefined {
  // .status.conditions[?(@.type=="X")].status → status, conditions, [], status
  const parts = jsonPath.replace(/\[\?\(@[^)]*\)\]/g, '.[]').split('.').filter(Boolean);
  let node: JsonSchema | undefined = schema;
  for (const p of parts) {
    if (node === undefined) return undefined;
    node = p === '[]' ? (node['items'] as JsonSchema | undefined) : ((node['properties'] as Record<string, JsonSchema> | undefined)?.[p]);
  }
  return node;
}

test('printer columns point at fields that exist, with matching types', () => {
  for (const def of RESOURCES) {
    const schema = openApiSchemaOf(def);
    for (const col of def.printerColumns) {
      if (col.jsonPath === '.metadata.creationTimestamp') continue;
      const node = schemaAt(schema, col.jsonPath);
      assert.ok(node, `${def.kind} column ${col.name}: ${col.jsonPath} is not in the schema`);
      const expected = col.type === 'date' ? 'string' : col.type;
      assert.equal(node['type'], expected, `${def.kind} column ${col.name}`);
      if (col.type === 'date') assert.equal(node['format'], 'date-time', `${def.kind} column ${col.name}`);
    }
  }
});

test('every generated file parses back to its CRD, with a status subresource, short names and the quarantine category', () => {
  for (const def of RESOURCES) {
    const onDisk = parse(readFileSync(join(root, 'crds', `${def.plural}.yaml`), 'utf8')) as {
      spec: { scope: string; names: { shortNames: string[]; categories: string[] }; versions: Array<{ subresources: unknown }> };
    };
    assert.deepEqual(onDisk, crdFor(def));
    assert.deepEqual(onDisk.spec.versions[0]?.subresources, { status: {} });
    assert.ok(onDisk.spec.names.shortNames.length > 0);
    assert.deepEqual(onDisk.spec.names.categories, ['quarantine']);
    assert.equal(onDisk.spec.scope, def.namespaced ? 'Namespaced' : 'Cluster');
  }
});

test('the chart’s CRD templates are the CRDs behind crds.enabled, kept on uninstall', () => {
  for (const def of RESOURCES) {
    const text = crdTemplateFor(def);
    const m = /^#[^\n]*\n\{\{- if \.Values\.crds\.enabled \}\}\n([\s\S]*)\{\{- end \}\}\n$/.exec(text);
    assert.ok(m, `${def.kind}: not wrapped in crds.enabled`);
    const crd = parse(m[1] ?? '') as { metadata: { annotations: Record<string, string> } };
    assert.equal(crd.metadata.annotations['helm.sh/resource-policy'], 'keep');
    const { annotations: _kept, ...metadata } = crd.metadata;
    assert.deepEqual({ ...crd, metadata }, crdFor(def));
  }
});
