// Checks an exported document against the ECS field definitions in
// test/fixtures/ecs: every leaf is a defined field (or a label), of its type.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';

const DIR = join(import.meta.dirname, '../fixtures/ecs');

interface FieldDef {
  type: string;
  array: boolean;
}

function loadFields(): Map<string, FieldDef> {
  const [, ...rows] = readFileSync(join(DIR, 'fields.csv'), 'utf8').trim().split('\n');
  return new Map(rows.map((r) => {
    const c = r.split(',');
    return [c[3] ?? '', { type: c[4] ?? '', array: c[6] === 'array' }];
  }));
}

const FIELDS = loadFields();
const ALLOWED = JSON.parse(readFileSync(join(DIR, 'allowed-values.json'), 'utf8')) as Record<string, string[]>;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function typeProblem(field: string, def: FieldDef, v: unknown): string | null {
  const values = Array.isArray(v) ? v : [v];
  if (Array.isArray(v) && !def.array && def.type !== 'ip' && def.type !== 'keyword') return `${field} is an array`;
  for (const x of values) {
    if (def.type === 'date' && !(typeof x === 'string' && ISO.test(x))) return `${field}: ${JSON.stringify(x)} is not an ISO 8601 date`;
    if (def.type === 'ip' && !(typeof x === 'string' && isIP(x) !== 0)) return `${field}: ${JSON.stringify(x)} is not an IP`;
    if ((def.type === 'keyword' || def.type === 'match_only_text') && typeof x !== 'string') return `${field}: ${JSON.stringify(x)} is not a string`;
  }
  return null;
}

/** The problems of one document; empty when it validates. */
export function ecsProblems(doc: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const walk = (prefix: string, v: unknown) => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      if (prefix === 'labels') {
        // ECS labels: a flat map of keyword values.
        for (const [k, x] of Object.entries(v)) if (typeof x !== 'string' || k.includes('.')) problems.push(`labels.${k} must be a flat string`);
        return;
      }
      for (const [k, x] of Object.entries(v)) walk(prefix === '' ? k : `${prefix}.${k}`, x);
      return;
    }
    const def = FIELDS.get(prefix);
    if (def === undefined) { problems.push(`${prefix} is not an ECS field`); return; }
    const p = typeProblem(prefix, def, v);
    if (p !== null) problems.push(p);
  };
  walk('', doc);
  const event = doc['event'];
  if (event !== null && typeof event === 'object') {
    const e = event as Record<string, unknown>;
    const kind = e['kind'];
    if (typeof kind === 'string' && !ALLOWED['event.kind']?.includes(kind)) problems.push(`event.kind ${kind} is not allowed`);
    const categories = Array.isArray(e['category']) ? e['category'] : [];
    for (const c of categories) if (!ALLOWED['event.category']?.includes(String(c))) problems.push(`event.category ${String(c)} is not allowed`);
    const types = Array.isArray(e['type']) ? e['type'] : [];
    for (const c of categories) {
      const allowed = ALLOWED[`event.type.${String(c)}`];
      if (allowed === undefined) problems.push(`no allowed event.type values recorded for category ${String(c)}`);
      else for (const t of types) if (!allowed.includes(String(t))) problems.push(`event.type ${String(t)} is not allowed with category ${String(c)}`);
    }
  } else problems.push('no event');
  if (doc['@timestamp'] === undefined) problems.push('no @timestamp');
  return problems;
}
