// QuarantineCase: an investigation opened from an abuse report's log lines, as
// `quarantine case open` does: the lines attributed, a legal hold on every
// matching instance's quarantines, the case in the audit trail. Namespaced,
// like holds and restores, so a case team's RBAC stays in its namespace.
import { z } from 'zod';
import { Conditions, Count, ObjectMeta, Timestamp, parseResource } from './common.ts';

export const LOG_FORMAT_NAMES = ['zeek-tsv', 'zeek-json', 'nfdump', 'combined', 'batch', 'syslog', 'csv'] as const;

export const CaseLog = z.object({
  name: z.string().min(1).max(253).describe('Where the lines come from, e.g. the file name the site sent; names lines in the report.'),
  text: z.string().min(1).max(1_000_000).describe('The log lines, as the site sent them.'),
  format: z.enum(LOG_FORMAT_NAMES).optional().describe('Recognised from the first lines when absent.'),
  date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/).optional().describe('The day of logs that carry only a time of day (YYYY-MM-DD).'),
  tz: z.string().min(1).max(64).optional().describe('Zone of times written without one: UTC, +02:00 or a name such as Europe/Zurich.'),
  field: z.string().min(1).max(64).optional().describe('The field holding the address (Zeek field, CSV column name, syslog KEY=, src/dst).'),
  column: z.number().int().min(1).max(64).optional().describe('The column (CSV) or the Nth address of a line holding the address.'),
});
export type CaseLog = z.infer<typeof CaseLog>;

export const QuarantineCaseSpec = z.object({
  reason: z.string().min(1).max(4096).optional(),
  cloud: z.string().min(1).max(253).optional().describe('Attribute to this cloud only.'),
  logs: z.array(CaseLog).min(1).max(64).describe('The abuse report: read once, when the case is opened; later changes are not applied.'),
});
export type QuarantineCaseSpec = z.infer<typeof QuarantineCaseSpec>;

export const CaseOwner = z.object({
  cloud: z.string(),
  project: z.string().optional(),
  user: z.string().optional(),
  lines: Count,
  instances: z.array(z.string()).max(1024),
});

export const QuarantineCaseStatus = z.object({
  observedGeneration: z.number().int().min(0).optional(),
  conditions: Conditions.optional(),
  caseName: z.string().optional().describe('The case in the ledger (`quarantine case report NAME`).'),
  hold: z.string().optional().describe('The legal hold placed on the instances\' quarantines.'),
  openedAt: Timestamp.optional(),
  lines: Count.optional(),
  attributed: Count.optional(),
  unreadable: Count.optional(),
  owners: z.array(CaseOwner).max(256).optional(),
});
export type QuarantineCaseStatus = z.infer<typeof QuarantineCaseStatus>;

export const QuarantineCase = z.object({
  apiVersion: z.literal('quarantine.forensics.dev/v1alpha1'),
  kind: z.literal('QuarantineCase'),
  metadata: ObjectMeta,
  spec: QuarantineCaseSpec,
  status: QuarantineCaseStatus.optional(),
});
export type QuarantineCase = z.infer<typeof QuarantineCase>;

export function parseQuarantineCase(value: unknown): QuarantineCase {
  return parseResource(QuarantineCase, 'QuarantineCase', value);
}
