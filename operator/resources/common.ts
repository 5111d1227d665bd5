// Pieces shared by the custom resources' schemas.
import { z } from 'zod';

/** A key of a Secret in the operator's namespace (standalone: a file DIR/<name>/<key> or an env variable). */
export const SecretKeyRef = z.object({
  name: z.string().min(1).max(253).regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a DNS subdomain name'),
  key: z.string().min(1).max(253).regex(/^[-._a-zA-Z0-9]+$/, 'must consist of alphanumerics, -, _ or .'),
});
export type SecretKeyRef = z.infer<typeof SecretKeyRef>;

export const ObjectMeta = z.object({
  name: z.string().min(1).max(253),
  namespace: z.string().optional(),
}).loose();

/**
 * An RFC 3339 time. The apiserver checks `format: date-time` itself, so the
 * long pattern zod would add is left out of the CRD (see crd.ts).
 */
export const Timestamp = z.iso.datetime({ offset: true });

/** int64 counters: `format: int64` tells kubectl and clients the width. */
export const Count = z.number().int().min(0).meta({ format: 'int64' });

export const ConditionStatus = z.enum(['True', 'False', 'Unknown']);
export type ConditionStatus = z.infer<typeof ConditionStatus>;

/** The shape of metav1.Condition, so that kubectl wait --for=condition=… and dashboards understand ours. */
export const Condition = z.object({
  type: z.string().min(1).max(316).regex(/^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/, 'must be a condition type such as Ready'),
  status: ConditionStatus,
  /** A CamelCase word that machines can match on. */
  reason: z.string().min(1).max(1024).regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/, 'must be CamelCase'),
  message: z.string().max(32_768).optional(),
  /** When status last changed; a condition rewritten with the same status keeps it. */
  lastTransitionTime: Timestamp,
  observedGeneration: z.number().int().min(0).optional(),
});
export type Condition = z.infer<typeof Condition>;

export const Conditions = z.array(Condition).max(32).meta({
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
});

/** A custom resource that failed its schema; the message names the object and the field. */
export class ResourceParseError extends Error {
  override name = 'ResourceParseError';
  readonly path: string;
  constructor(message: string, path: string) {
    super(message);
    this.path = path;
  }
}

/**
 * Parses with a resource's schema and reports the first problem as
 * `Kind name: spec.field: message`, so that an event or a log line points at
 * the field to fix.
 */
export function parseResource<S extends z.ZodType>(schema: S, kind: string, value: unknown): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const path = issue === undefined || issue.path.length === 0 ? '(root)' : issue.path.map(String).join('.');
  const meta = (value as { metadata?: { name?: unknown; namespace?: unknown } } | null)?.metadata;
  const name = typeof meta?.name === 'string' ? (typeof meta.namespace === 'string' ? `${meta.namespace}/${meta.name}` : meta.name) : '(unnamed)';
  const more = r.error.issues.length > 1 ? ` (and ${r.error.issues.length - 1} more)` : '';
  throw new ResourceParseError(`${kind} ${name}: ${path}: ${issue?.message ?? 'invalid'}${more}`, path);
}
