// Standalone mode reads the same custom resources from YAML files that the
// Kubernetes mode reads from the API server.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';

export const API_GROUP = 'quarantine.forensics.dev';
export const API_VERSION = `${API_GROUP}/v1alpha1`;

const ObjectHeader = z.object({
  apiVersion: z.string(),
  kind: z.string(),
  metadata: z.object({ name: z.string().min(1), namespace: z.string().optional() }).loose(),
}).loose();

export interface ManifestObject {
  file: string;
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string | undefined;
  body: Record<string, unknown>;
}

export class ManifestError extends Error {
  override name = 'ManifestError';
}

function yamlFiles(dir: string): string[] {
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new ManifestError(`manifest directory ${dir} does not exist`);
  }
  if (st.isFile()) return [dir];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => join(dir, f));
}

/** Every object of our API group in DIR's YAML files; other kinds are ignored. */
export function readManifests(dir: string): ManifestObject[] {
  const out: ManifestObject[] = [];
  for (const file of yamlFiles(dir)) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ManifestError(`cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
    const docs = parseAllDocuments(text);
    for (const [i, doc] of docs.entries()) {
      if (doc.errors.length > 0) throw new ManifestError(`${file}: document ${i + 1}: ${doc.errors[0]?.message ?? 'invalid YAML'}`);
      let value: unknown;
      try {
        // The yaml library refuses alias expansion beyond a bound (an alias bomb) by throwing.
        value = doc.toJS({ maxAliasCount: 100 });
      } catch (err) {
        throw new ManifestError(`${file}: document ${i + 1}: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (value === null || value === undefined) continue;
      const header = ObjectHeader.safeParse(value);
      if (!header.success) {
        const issue = header.error.issues[0];
        throw new ManifestError(`${file}: document ${i + 1}: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
      }
      if (!header.data.apiVersion.startsWith(`${API_GROUP}/`)) continue;
      out.push({
        file, apiVersion: header.data.apiVersion, kind: header.data.kind, name: header.data.metadata.name,
        namespace: header.data.metadata.namespace, body: value as Record<string, unknown>,
      });
    }
  }
  return out;
}
