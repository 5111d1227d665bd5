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
