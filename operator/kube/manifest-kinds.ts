// Validates standalone manifests with the same schemas as the custom resources.
import type { z } from 'zod';
import { ManifestError, type ManifestObject } from './manifest-files.ts';
import { Cloud } from './resources/cloud.ts';

function validate<S extends z.ZodType>(schema: S, obj: ManifestObject): z.infer<S> {
  const r = schema.safeParse(obj.body);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue === undefined || issue.path.length === 0 ? '(root)' : issue.path.join('.');
  throw new ManifestError(`${obj.file}: ${obj.kind} ${obj.name}: ${where}: ${issue?.message ?? 'invalid'}`);
}

export function cloudsOf(objects: ManifestObject[]): Cloud[] {
  const clouds = objects.filter((o) => o.kind === 'Cloud').map((o) => validate(Cloud, o));
  const seen = new Set<string>();
  for (const c of clouds) {
    if (seen.has(c.metadata.name)) throw new ManifestError(`two Cloud resources are named ${c.metadata.name}`);
    seen.add(c.metadata.name);
  }
  return clouds;
}
