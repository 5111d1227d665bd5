// The custom resources as a table, and their CustomResourceDefinitions built
// from the same zod schemas that parse them: one definition of each field, so
// the apiserver, the operator and standalone manifests can never disagree.
import { z } from 'zod';
import { stringify } from 'yaml';
import { Cloud, CloudSpec, CloudStatus } from './cloud.ts';
import { QuarantineHold, QuarantineHoldSpec, QuarantineHoldStatus, parseQuarantineHold } from './hold.ts';
import { QuarantineCase, QuarantineCaseSpec, QuarantineCaseStatus, parseQuarantineCase } from './case.ts';
import { QuarantinePolicy, QuarantinePolicySpec, QuarantinePolicyStatus, parseQuarantinePolicy } from './policy.ts';
import { QuarantineRestore, QuarantineRestoreSpec, QuarantineRestoreStatus, parseQuarantineRestore } from './restore.ts';
import { parseResource } from './common.ts';

export const GROUP = 'quarantine.forensics.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  /** 1 = only with `-o wide`. */
  priority?: number;
}

/** What the runtime and the generator need to know about one kind. */
export interface ResourceDef<T = unknown> {
  kind: string;
  plural: string;
  singular: string;
  listKind: string;
  shortNames: string[];
  namespaced: boolean;
  description: string;
  spec: z.ZodType;
  status: z.ZodType;
  printerColumns: PrinterColumn[];
  parse(value: unknown): T;
}

const age: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };
const condition = (type: string): PrinterColumn => ({
  name: type,
  type: 'string',
  jsonPath: `.status.conditions[?(@.type=="${type}")].status`,
});

export const CloudResource: ResourceDef<Cloud> = {
  kind: 'Cloud',
  plural: 'clouds',
  singular: 'cloud',
  listKind: 'CloudList',
  shortNames: ['qcloud'],
  namespaced: false,
  description: 'A source of VMs: an OpenStack or OpenNebula deployment with its AMQP feed, Ceph cluster and API.',
  spec: CloudSpec,
  status: CloudStatus,
  printerColumns: [
    { name: 'Type', type: 'string', jsonPath: '.spec.type' },
    condition('Connected'),
    condition('Consuming'),
    { ...condition('TrashArmed'), priority: 1 },
    { ...condition('CephDriver'), priority: 1 },
    { name: 'Last Event', type: 'date', jsonPath: '.status.lastEventAt', priority: 1 },
    age,
  ],
  parse: (value) => parseResource(Cloud, 'Cloud', value),
};

export const QuarantinePolicyResource: ResourceDef<QuarantinePolicy> = {
  kind: 'QuarantinePolicy',
  plural: 'quarantinepolicies',
  singular: 'quarantinepolicy',
  listKind: 'QuarantinePolicyList',
  shortNames: ['qpolicy', 'qpol'],
  namespaced: false,
  description: 'Which deleted VMs are captured, how, for how long, within what capacity, and when the sweep runs.',
  spec: QuarantinePolicySpec,
  status: QuarantinePolicyStatus,
  printerColumns: [
    { name: 'Mode', type: 'string', jsonPath: '.spec.capture.mode' },
    { name: 'Retention', type: 'string', jsonPath: '.spec.retention.duration' },
    { name: 'Quarantined', type: 'integer', jsonPath: '.status.quarantinedCount' },
    { name: 'Bytes', type: 'integer', jsonPath: '.status.quarantinedBytes', priority: 1 },
    { name: 'Next Sweep', type: 'date', jsonPath: '.status.nextSweep' },
    age,
  ],
  parse: parseQuarantinePolicy,
};

export const QuarantineHoldResource: ResourceDef<QuarantineHold> = {
  kind: 'QuarantineHold',
  plural: 'quarantineholds',
  singular: 'quarantinehold',
  listKind: 'QuarantineHoldList',
  shortNames: ['qhold'],
  namespaced: true,
  description: 'A legal hold: the quarantines it matches never expire while it stands.',
  spec: QuarantineHoldSpec,
  status: QuarantineHoldStatus,
  printerColumns: [
    { name: 'Case', type: 'string', jsonPath: '.spec.caseId' },
    { name: 'Matched', type: 'integer', jsonPath: '.status.matchedCount' },
    { name: 'Until', type: 'date', jsonPath: '.spec.until' },
    age,
  ],
  parse: parseQuarantineHold,
};

export const QuarantineRestoreResource: ResourceDef<QuarantineRestore> = {
  kind: 'QuarantineRestore',
  plural: 'quarantinerestores',
  singular: 'quarantinerestore',
  listKind: 'QuarantineRestoreList',
  shortNames: ['qrestore'],
  namespaced: true,
  description: 'A request to materialize a quarantine as a new RBD image or an exported file with its SHA-256.',
  spec: QuarantineRestoreSpec,
  status: QuarantineRestoreStatus,
  printerColumns: [
    { name: 'Quarantine', type: 'string', jsonPath: '.spec.quarantineId' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    { name: 'SHA256', type: 'string', jsonPath: '.status.sha256' },
    { name: 'Case', type: 'string', jsonPath: '.spec.caseId', priority: 1 },
    age,
  ],
  parse: parseQuarantineRestore,
};

export const QuarantineCaseResource: ResourceDef<QuarantineCase> = {
  kind: 'QuarantineCase',
  plural: 'quarantinecases',
  singular: 'quarantinecase',
  listKind: 'QuarantineCaseList',
  shortNames: ['qcase'],
  namespaced: true,
  description: 'An investigation from an abuse report: its lines attributed, a legal hold on the matching instances\' quarantines, a report.',
  spec: QuarantineCaseSpec,
  status: QuarantineCaseStatus,
  printerColumns: [
    { name: 'Lines', type: 'integer', jsonPath: '.status.lines' },
    { name: 'Attributed', type: 'integer', jsonPath: '.status.attributed' },
    { name: 'Hold', type: 'string', jsonPath: '.status.hold' },
    age,
  ],
  parse: parseQuarantineCase,
};

export const RESOURCES: readonly ResourceDef[] = [
  CloudResource,
  QuarantinePolicyResource,
  QuarantineHoldResource,
  QuarantineRestoreResource,
  QuarantineCaseResource,
];

export function crdName(def: ResourceDef): string {
  return `${def.plural}.${GROUP}`;
}

export type JsonSchema = { [key: string]: unknown };

const SAFE_INT_BOUND = Number.MAX_SAFE_INTEGER;

/** Removes what zod adds that a CRD does not want, recursively. */
function tidy(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(tidy);
  if (node === null || typeof node !== 'object') return node;
  const out: JsonSchema = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === '$schema') continue;
    // z.number().int() bounds itself to ±2^53; that is noise in kubectl explain.
    if ((k === 'maximum' && v === SAFE_INT_BOUND) || (k === 'minimum' && v === -SAFE_INT_BOUND)) continue;
    // Values of these keys are data, not schemas.
    out[k] = k === 'default' || k === 'enum' || k.startsWith('x-kubernetes-') ? v : tidy(v);
  }
  if (out['format'] === 'date-time') delete out['pattern'];
  return out;
}

/** The OpenAPI v3 schema of a zod type as it is written by clients (defaults optional). */
export function toOpenApi(schema: z.ZodType): JsonSchema {
  return tidy(z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', unrepresentable: 'throw' })) as JsonSchema;
}

export function openApiSchemaOf(def: ResourceDef): JsonSchema {
  return {
    type: 'object',
    description: def.description,
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec: toOpenApi(def.spec),
      status: toOpenApi(def.status),
    },
    required: ['spec'],
  };
}

export function crdFor(def: ResourceDef): JsonSchema {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: crdName(def),
      labels: { 'app.kubernetes.io/name': 'quarantine-operator', 'app.kubernetes.io/part-of': 'quarantine-operator' },
    },
    spec: {
      group: GROUP,
      scope: def.namespaced ? 'Namespaced' : 'Cluster',
      names: {
        kind: def.kind,
        listKind: def.listKind,
        plural: def.plural,
        singular: def.singular,
        shortNames: def.shortNames,
        categories: ['quarantine'],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: def.printerColumns,
          schema: { openAPIV3Schema: openApiSchemaOf(def) },
        },
      ],
    },
  };
}

export const GENERATED_HEADER =
  '# Generated by `npm run gen:crds` (scripts/gen-crds.ts) from operator/resources/*.ts. Do not edit.\n';

/** Where the chart's CRD templates live, relative to the repository root. */
export const CHART_CRD_DIR = 'charts/quarantine-operator/templates/crds';

/**
 * A CRD as a chart template: templates (unlike a chart's crds/ directory) are
 * applied again by `helm upgrade`, so a new field reaches the cluster with the
 * release. `helm.sh/resource-policy: keep` leaves the CRD, and so every
 * resource of its kind, in place when the release is uninstalled.
 */
export function crdTemplateFor(def: ResourceDef): string {
  const crd = crdFor(def);
  const metadata = crd['metadata'] as Record<string, unknown>;
  const templated = { ...crd, metadata: { ...metadata, annotations: { 'helm.sh/resource-policy': 'keep' } } };
  const body = stringify(templated, { lineWidth: 0, aliasDuplicateObjects: false });
  // Helm would read a brace pair in a description or a CEL rule as template code.
  if (body.includes('{{')) throw new Error(`${def.kind}: the CRD contains "{{", which Helm would evaluate as a template`);
  return `${GENERATED_HEADER}{{- if .Values.crds.enabled }}\n${body}{{- end }}\n`;
}

/** Every generated file, relative to the repository root, with its exact content. */
export function renderCrdFiles(): Array<{ path: string; content: string }> {
  const files: Array<{ path: string; content: string }> = [];
  for (const def of RESOURCES) {
    files.push({ path: `crds/${def.plural}.yaml`, content: GENERATED_HEADER + stringify(crdFor(def), { lineWidth: 0, aliasDuplicateObjects: false }) });
    files.push({ path: `${CHART_CRD_DIR}/${def.plural}.yaml`, content: crdTemplateFor(def) });
  }
  return files;
}

// Keys of JSONSchemaProps in apiextensions.k8s.io/v1; anything else is rejected or silently dropped.
const KNOWN_KEYS = new Set([
  'type', 'format', 'title', 'description', 'default', 'maximum', 'exclusiveMaximum', 'minimum', 'exclusiveMinimum',
  'maxLength', 'minLength', 'pattern', 'maxItems', 'minItems', 'uniqueItems', 'multipleOf', 'enum', 'maxProperties',
  'minProperties', 'required', 'items', 'allOf', 'oneOf', 'anyOf', 'not', 'properties', 'additionalProperties',
  'nullable', 'example', 'externalDocs',
  'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-embedded-resource', 'x-kubernetes-int-or-string',
  'x-kubernetes-list-map-keys', 'x-kubernetes-list-type', 'x-kubernetes-map-type', 'x-kubernetes-validations',
]);
const UNSUPPORTED = ['$ref', 'id', '$id', 'definitions', '$defs', 'patternProperties', 'dependencies', 'additionalItems', 'const', '$schema', 'propertyNames'];
const FORBIDDEN_IN_JUNCTORS = ['type', 'description', 'default', 'additionalProperties', 'nullable', 'title'];

/**
 * The rules of a structural schema (apiextensions' validation), as far as they
 * can be checked without the apiserver: problems as `path: what`, empty if
 * none. The integration test proves the rest by installing the CRDs.
 */
export function structuralProblems(schema: unknown, path = '', inJunctor = false): string[] {
  const problems: string[] = [];
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) return [`${path || '(root)'}: is not a schema object`];
  const s = schema as JsonSchema;
  const at = path || '(root)';
  for (const key of Object.keys(s)) {
    if (UNSUPPORTED.includes(key)) problems.push(`${at}: ${key} is not supported`);
    else if (!KNOWN_KEYS.has(key)) problems.push(`${at}: unknown key ${key}`);
  }
  if (inJunctor) {
    for (const key of FORBIDDEN_IN_JUNCTORS) if (key in s) problems.push(`${at}: ${key} is forbidden inside anyOf/allOf/oneOf/not`);
  } else {
    const open = s['x-kubernetes-int-or-string'] === true || s['x-kubernetes-preserve-unknown-fields'] === true;
    if (s['type'] === undefined && !open) problems.push(`${at}: type is missing`);
    if (s['type'] === 'null') problems.push(`${at}: type null is not allowed (use nullable)`);
    if (Array.isArray(s['type'])) problems.push(`${at}: type must be a single string`);
  }
  if (s['properties'] !== undefined && s['additionalProperties'] !== undefined) {
    problems.push(`${at}: additionalProperties and properties are mutually exclusive`);
  }
  if (s['uniqueItems'] === true) problems.push(`${at}: uniqueItems cannot be true (use x-kubernetes-list-type: set)`);
  if (typeof s['exclusiveMinimum'] === 'number' || typeof s['exclusiveMaximum'] === 'number') {
    problems.push(`${at}: exclusiveMinimum/exclusiveMaximum must be booleans in OpenAPI v3.0`);
  }
  if (s['type'] === 'array' && !inJunctor) {
    if (s['items'] === undefined || Array.isArray(s['items'])) problems.push(`${at}: an array needs exactly one items schema`);
  }
  if (s['x-kubernetes-list-type'] === 'map') {
    const keys = s['x-kubernetes-list-map-keys'];
    const items = s['items'] as JsonSchema | undefined;
    const required = (items?.['required'] as string[] | undefined) ?? [];
    if (!Array.isArray(keys) || keys.length === 0) problems.push(`${at}: list-type map needs x-kubernetes-list-map-keys`);
    else for (const k of keys as string[]) if (!required.includes(k)) problems.push(`${at}: list map key ${k} must be required`);
  }
  const properties = s['properties'];
  if (properties !== undefined) {
    if (typeof properties !== 'object' || properties === null) problems.push(`${at}: properties is not an object`);
    else for (const [name, sub] of Object.entries(properties)) problems.push(...structuralProblems(sub, `${path}.${name}`, inJunctor));
  }
  if (s['items'] !== undefined && !Array.isArray(s['items'])) problems.push(...structuralProblems(s['items'], `${path}[]`, inJunctor));
  if (typeof s['additionalProperties'] === 'object') {
    problems.push(...structuralProblems(s['additionalProperties'], `${path}{}`, inJunctor));
  }
  for (const j of ['anyOf', 'oneOf', 'allOf']) {
    const list = s[j];
    if (Array.isArray(list)) list.forEach((sub, i) => problems.push(...structuralProblems(sub, `${path}.${j}[${i}]`, true)));
  }
  if (s['not'] !== undefined) problems.push(...structuralProblems(s['not'], `${path}.not`, true));
  return problems;
}
