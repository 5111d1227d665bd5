// Validates standalone manifests with the same schemas as the custom resources.
import type { z } from 'zod';
import { ManifestError, readManifests, type ManifestObject } from './manifest-files.ts';
import { unknownFieldPaths } from './unknown-fields.ts';
import { Cloud } from './cloud.ts';
import { QuarantinePolicy } from './policy.ts';
import { QuarantineHold } from './hold.ts';
import { QuarantineRestore } from './restore.ts';
import { policyFromResource, holdFromResource } from './mapping.ts';
import type { Policy } from '../domain/policy.ts';
import type { Hold } from '../domain/holds.ts';

function validate<S extends z.ZodType>(schema: S, obj: ManifestObject): z.infer<S> {
  const r = schema.safeParse(obj.body);
  if (r.success) {
    // Metadata may carry labels, annotations and the like; what we act on is the spec.
    const unknown = unknownFieldPaths(obj.body['spec'], (r.data as { spec?: unknown }).spec, 'spec');
    if (unknown.length > 0) {
      throw new ManifestError(`${obj.file}: ${obj.kind} ${obj.name}: unknown field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}`);
    }
    return r.data;
  }
  const issue = r.error.issues[0];
  const where = issue === undefined || issue.path.length === 0 ? '(root)' : issue.path.join('.');
  throw new ManifestError(`${obj.file}: ${obj.kind} ${obj.name}: ${where}: ${issue?.message ?? 'invalid'}`);
}

function unique<T>(items: T[], name: (t: T) => string, kind: string): T[] {
  const seen = new Set<string>();
  for (const i of items) {
    if (seen.has(name(i))) throw new ManifestError(`two ${kind} resources are named ${name(i)}`);
    seen.add(name(i));
  }
  return items;
}

export function cloudsOf(objects: ManifestObject[]): Cloud[] {
  return unique(objects.filter((o) => o.kind === 'Cloud').map((o) => validate(Cloud, o)), (c) => c.metadata.name, 'Cloud');
}

export interface ResourceSet {
  clouds: Cloud[];
  policies: Policy[];
  holds: Array<Hold & { reason: string }>;
  restores: QuarantineRestore[];
}

const KNOWN = new Set(['Cloud', 'QuarantinePolicy', 'QuarantineHold', 'QuarantineRestore']);

export function resourcesFromManifests(dir: string): ResourceSet {
  const objects = readManifests(dir);
  for (const o of objects) if (!KNOWN.has(o.kind)) throw new ManifestError(`${o.file}: unknown kind ${o.kind} in ${o.apiVersion}`);
  const policies = objects.filter((o) => o.kind === 'QuarantinePolicy').map((o) => {
    const p = validate(QuarantinePolicy, o);
    return policyFromResource(p);
  });
  const holds = objects.filter((o) => o.kind === 'QuarantineHold').map((o) => holdFromResource(validate(QuarantineHold, { ...o, body: { ...o.body, metadata: { namespace: 'default', ...(o.body['metadata'] as object) } } })));
  const restores = objects.filter((o) => o.kind === 'QuarantineRestore').map((o) => validate(QuarantineRestore, o));
  return {
    restores,
    clouds: cloudsOf(objects),
    policies: unique(policies, (p) => p.name, 'QuarantinePolicy'),
    holds: unique(holds, (h) => h.name, 'QuarantineHold'),
  };
}
