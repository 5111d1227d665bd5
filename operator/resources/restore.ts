// QuarantineRestore: an investigator's request to materialize one quarantine,
// either as a new RBD image (a clone, read-only unless asked otherwise) or as
// an exported file with its SHA-256 digest. A request is a record of what was
// asked: its spec cannot change once made.
import { z } from 'zod';
import { Conditions, Count, ObjectMeta, Timestamp, parseResource } from './common.ts';

const PoolName = z.string().min(1).max(128).regex(/^[A-Za-z0-9_.][A-Za-z0-9_.-]*$/, 'must be a pool name');

export const RestoreTarget = z.object({
  pool: PoolName,
  namespace: z.string().min(1).max(128).optional().describe('RBD namespace inside the pool.'),
  image: z.string().min(1).max(255).regex(/^[^/@\s]+$/, 'must be an RBD image name (no /, @ or spaces)'),
  readOnly: z.boolean().default(true).describe('Protect the new image against writes (evidence must not change).'),
});

export const RestoreExport = z.object({
  path: z
    .string()
    .min(2)
    .max(4096)
    .refine((p) => p.startsWith('/') && !p.split('/').includes('..'), 'must be an absolute path without ..')
    .meta({
      'x-kubernetes-validations': [
        { rule: "self.startsWith('/') && !self.split('/').exists(p, p == '..')", message: 'must be an absolute path without ..' },
      ],
    }),
  format: z.enum(['raw']).default('raw'),
});

const EXACTLY_ONE = 'exactly one of target or export must be set';

export const QuarantineRestoreSpec = z
  .object({
    quarantineId: z.string().min(1).max(255).describe('The quarantine to restore, as `quarantine list` shows it.'),
    target: RestoreTarget.optional().describe('Clone the quarantine into a new RBD image.'),
    export: RestoreExport.optional().describe('Write the quarantine to a file on the operator (raw image) and record its SHA-256.'),
    reason: z.string().min(1).max(4096),
    caseId: z.string().min(1).max(253),
  })
  .refine((s) => (s.target === undefined) !== (s.export === undefined), EXACTLY_ONE)
  // A union here would be a oneOf, which a structural schema cannot carry.
  .meta({
    'x-kubernetes-validations': [
      { rule: 'has(self.target) != has(self.export)', message: EXACTLY_ONE },
      { rule: 'self == oldSelf', message: 'spec is immutable: create a new QuarantineRestore instead' },
    ],
  });
export type QuarantineRestoreSpec = z.infer<typeof QuarantineRestoreSpec>;

export const RestorePhase = z.enum(['Pending', 'Running', 'Succeeded', 'Failed']);
export type RestorePhase = z.infer<typeof RestorePhase>;

export const QuarantineRestoreStatus = z.object({
  observedGeneration: z.number().int().min(0).optional(),
  phase: RestorePhase.optional(),
  image: z.string().max(512).optional().describe('pool[/namespace]/image of the restored clone.'),
  path: z.string().max(4096).optional(),
  bytes: Count.optional(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits').optional(),
  startedAt: Timestamp.optional(),
  completedAt: Timestamp.optional(),
  progress: z.number().int().min(0).max(100).optional().describe('Percent done.'),
  conditions: Conditions.optional(),
});
export type QuarantineRestoreStatus = z.infer<typeof QuarantineRestoreStatus>;

export const QuarantineRestore = z.object({
  apiVersion: z.literal('quarantine.forensics.dev/v1alpha1'),
  kind: z.literal('QuarantineRestore'),
  metadata: ObjectMeta,
  spec: QuarantineRestoreSpec,
  status: QuarantineRestoreStatus.optional(),
});
export type QuarantineRestore = z.infer<typeof QuarantineRestore>;

export function parseQuarantineRestore(value: unknown): QuarantineRestore {
  return parseResource(QuarantineRestore, 'QuarantineRestore', value);
}
