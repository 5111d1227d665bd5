// QuarantineHold: a legal hold. While it stands, the quarantines it matches
// never expire. Namespaced, so that a case team's RBAC can be limited to the
// namespace that holds its holds and restores.
import { isIP } from 'node:net';
import { z } from 'zod';
import { Conditions, Count, ObjectMeta, Timestamp, parseResource } from './common.ts';

const Name = z.string().min(1).max(255);
const NameList = z.array(Name).min(1).max(1024).meta({ 'x-kubernetes-list-type': 'set' });

export const AddressWindow = z
  .object({
    address: z
      .string()
      .max(64)
      .refine((a) => isIP(a) !== 0, 'must be an IPv4 or IPv6 address')
      .meta({ 'x-kubernetes-validations': [{ rule: 'isIP(self)', message: 'must be an IPv4 or IPv6 address' }] }),
    /** Quarantines of instances that held the address at any time in [from, to); open ends are unbounded. */
    from: Timestamp.optional(),
    to: Timestamp.optional(),
  })
  .refine((w) => w.from === undefined || w.to === undefined || Date.parse(w.from) < Date.parse(w.to), {
    message: 'from must be before to',
    path: ['to'],
  })
  .meta({
    'x-kubernetes-validations': [
      { rule: '!has(self.from) || !has(self.to) || timestamp(self.from) < timestamp(self.to)', message: 'from must be before to', fieldPath: '.to' },
    ],
  });

const SELECTOR_FIELDS = ['clouds', 'instances', 'projects', 'users', 'addresses'] as const;

export const HoldSelector = z
  .object({
    clouds: NameList.optional().describe('Every quarantine from these clouds.'),
    instances: NameList.optional().describe('Instance UUIDs (OpenStack) or VM IDs (OpenNebula).'),
    projects: NameList.optional(),
    users: NameList.optional(),
    addresses: z.array(AddressWindow).min(1).max(256).optional().describe('Instances that held one of these addresses in the window.'),
  })
  .refine((s) => SELECTOR_FIELDS.some((f) => s[f] !== undefined), `selector needs at least one of ${SELECTOR_FIELDS.join(', ')}`)
  .meta({
    'x-kubernetes-validations': [
      { rule: SELECTOR_FIELDS.map((f) => `has(self.${f})`).join(' || '), message: `selector needs at least one of ${SELECTOR_FIELDS.join(', ')}` },
    ],
  });

export const QuarantineHoldSpec = z.object({
  selector: HoldSelector,
  reason: z.string().min(1).max(4096),
  caseId: z.string().min(1).max(253).describe('The case or ticket this hold belongs to; recorded in the audit trail.'),
  until: Timestamp.optional().describe('The hold lapses at this time; absent, it stands until deleted.'),
});
export type QuarantineHoldSpec = z.infer<typeof QuarantineHoldSpec>;

export const QuarantineHoldStatus = z.object({
  observedGeneration: z.number().int().min(0).optional(),
  conditions: Conditions.optional(),
  matchedCount: Count.optional().describe('Quarantines this hold currently protects.'),
});
export type QuarantineHoldStatus = z.infer<typeof QuarantineHoldStatus>;

export const QuarantineHold = z.object({
  apiVersion: z.literal('quarantine.forensics.dev/v1alpha1'),
  kind: z.literal('QuarantineHold'),
  metadata: ObjectMeta,
  spec: QuarantineHoldSpec,
  status: QuarantineHoldStatus.optional(),
});
export type QuarantineHold = z.infer<typeof QuarantineHold>;

export function parseQuarantineHold(value: unknown): QuarantineHold {
  return parseResource(QuarantineHold, 'QuarantineHold', value);
}
