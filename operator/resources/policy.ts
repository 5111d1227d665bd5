// QuarantinePolicy: which deleted VMs are captured, how, for how long, within
// what capacity, and when the sweep runs. Cluster-scoped, because a policy
// spans clouds and the projects inside them, not a Kubernetes namespace.
import { z } from 'zod';
import { Conditions, Count, ObjectMeta, Timestamp, parseResource } from './common.ts';

const Name = z.string().min(1).max(255);
const NameList = z.array(Name).min(1).max(256).meta({ 'x-kubernetes-list-type': 'set' });

const UNIT_MS = { w: 604_800_000, d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 } as const;
const DURATION = /^(?:[0-9]{1,6}[wdhms])+$/;

/**
 * Milliseconds of a duration such as `720h`, `30d` or `1d12h`. Days and weeks
 * are accepted (unlike Go's time.ParseDuration) because retention is stated
 * in days; a day is always 24 h, so a retention never shrinks over a DST change.
 */
export function parseDuration(text: string): number {
  if (!DURATION.test(text)) throw new Error(`${JSON.stringify(text)} is not a duration like 720h, 30d or 1d12h`);
  let ms = 0;
  for (const m of text.matchAll(/([0-9]+)([wdhms])/g)) ms += Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  return ms;
}

const DURATION_MESSAGE = 'must be a duration like 720h, 30d or 1d12h (units w, d, h, m, s)';

// Checked by refine and CEL rather than a pattern, so that both the operator
// and the apiserver answer with the same words instead of a regular expression.
export const Duration = z
  .string()
  .max(64)
  .refine((v) => DURATION.test(v), DURATION_MESSAGE)
  .refine((v) => !DURATION.test(v) || parseDuration(v) > 0, 'must be longer than zero')
  .meta({
    'x-kubernetes-validations': [
      { rule: `self.matches('${DURATION.source}')`, message: DURATION_MESSAGE },
      { rule: "!self.matches('^(0+[wdhms])+$')", message: 'must be longer than zero' },
    ],
  });

function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

// Five fields (minute hour day-of-month month day-of-week), each a run of the
// characters cron expressions use; the scheduler checks ranges when it loads.
const CRON = /^\s*[0-9*,/?LW#A-Za-z-]+(\s+[0-9*,/?LW#A-Za-z-]+){4}\s*$/;

export const PolicySelector = z
  .object({
    /** Names of Cloud resources; all clouds when absent. */
    clouds: NameList.optional(),
    projects: z
      .object({
        in: NameList.optional(),
        notIn: NameList.optional(),
      })
      .optional()
      .describe('Project (tenant) IDs or names to include (in) or exclude (notIn); notIn wins.'),
    users: NameList.optional().describe('User IDs or names whose instances are captured.'),
    flavors: NameList.optional().describe('Flavor names (OpenStack) or templates (OpenNebula).'),
    tags: NameList.optional().describe('Instance tags or metadata keys; an instance with any of them matches.'),
    minInstanceAgeSeconds: z
      .number()
      .int()
      .min(0)
      .max(315_360_000)
      .optional()
      .describe('Skip instances younger than this when deleted (e.g. CI churn).'),
  })
  .describe('Which instances the policy covers; every given field must match, an absent field matches everything.');

export const CaptureSpec = z.object({
  mode: z
    .enum(['trash', 'softDelete', 'onDelete'])
    .default('trash')
    .describe('trash: adopt RBD trash entries (race-free); softDelete: capture on Nova soft delete; onDelete: best-effort snapshot on delete.'),
  disks: z
    .object({
      root: z.boolean().default(true),
      ephemeral: z.boolean().default(true),
      volumes: z.boolean().default(false).describe('Attached Cinder volumes (or OpenNebula persistent images).'),
    })
    .prefault({}),
  flatten: z.boolean().default(false).describe('Copy each quarantine in full, detaching it from its parent image, in the background. Implied by isolate.'),
  isolate: z.boolean().default(true).describe('Once captured, record the SHA-256 of the capture snapshot, copy the quarantine out of the cloud\'s pool and release its anchor there, so that no cloud user can change it. false keeps the copy-on-write clone (status: not isolated).'),
  releaseResources: z.boolean().default(false).describe('softDelete only: force-delete the server once its disks are captured.'),
});

export const RetentionSpec = z.object({
  duration: Duration.describe('How long a quarantine is kept after capture, e.g. 720h or 30d.'),
});

export const CapacitySpec = z
  .object({
    maxBytes: Count.min(1).optional().describe('Provisioned bytes of all quarantines of this policy.'),
    maxCount: Count.min(1).optional(),
    onFull: z
      .enum(['evictOldest', 'refuse'])
      .default('refuse')
      .describe('refuse: capture nothing new while full; evictOldest: delete the oldest unheld quarantines to make room.'),
  })
  .meta({ 'x-kubernetes-validations': [{ rule: 'has(self.maxBytes) || has(self.maxCount)', message: 'capacity needs maxBytes or maxCount' }] })
  .refine((c) => c.maxBytes !== undefined || c.maxCount !== undefined, 'capacity needs maxBytes or maxCount');

export const SweepSpec = z.object({
  schedule: z
    .string()
    .max(128)
    .regex(CRON, 'must be a five-field cron expression such as "0 * * * *"')
    .default('0 * * * *'),
  timeZone: z.string().min(1).max(64).refine(validTimeZone, 'must be an IANA time zone such as Europe/Zurich').default('UTC'),
  dryRun: z.boolean().default(false).describe('Log and audit what would be deleted, delete nothing.'),
});

export const QuarantinePolicySpec = z.object({
  selector: PolicySelector.prefault({}),
  capture: CaptureSpec.prefault({}),
  retention: RetentionSpec,
  capacity: CapacitySpec.optional(),
  sweep: SweepSpec.prefault({}),
});
export type QuarantinePolicySpec = z.infer<typeof QuarantinePolicySpec>;

export const QuarantinePolicyStatus = z.object({
  observedGeneration: z.number().int().min(0).optional(),
  conditions: Conditions.optional(),
  quarantinedCount: Count.optional(),
  quarantinedBytes: Count.optional(),
  lastSweep: Timestamp.optional(),
  nextSweep: Timestamp.optional(),
});
export type QuarantinePolicyStatus = z.infer<typeof QuarantinePolicyStatus>;

export const QuarantinePolicy = z.object({
  apiVersion: z.literal('quarantine.forensics.dev/v1alpha1'),
  kind: z.literal('QuarantinePolicy'),
  metadata: ObjectMeta,
  spec: QuarantinePolicySpec,
  status: QuarantinePolicyStatus.optional(),
});
export type QuarantinePolicy = z.infer<typeof QuarantinePolicy>;

export function parseQuarantinePolicy(value: unknown): QuarantinePolicy {
  return parseResource(QuarantinePolicy, 'QuarantinePolicy', value);
}
