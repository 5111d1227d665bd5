// Everything a case's report says, gathered from the ledger at report time:
// the lines attributed again (the ledger may have learned more since the case
// was opened), owners, instances with their life spans and addresses, the
// quarantined disks with digests and locations, the holds, and the audit
// entries of the case, its hold and its disks.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import { attribute, holdersDuring } from '../ledger/attribute.ts';
import type { Holder } from '../ledger/trace.ts';
import { instanceHistory, type InstanceHistory } from '../ledger/instance-history.ts';
import { summarizeOwners, type OwnerSummary } from '../logs/owners.ts';
import type { UnreadLine } from '../logs/read.ts';
import { isolationLabel } from './isolation-label.ts';
import { QuarantineStore } from './quarantine-store.ts';
import { holdsCovering, listHolds } from './holds.ts';
import { caseInstances, caseSubject, getCase, UnknownCaseError } from './cases.ts';

export interface CaseReport {
  case: { name: string; reason: string | null; createdAt: string; createdBy: string; hold: string | null };
  generatedAt: string;
  counts: { lines: number; attributed: number; unattributed: number; unreadable: number; instances: number; quarantines: number };
  owners: OwnerSummary[];
  lines: Array<{ source: string; line: number; address: string; at: string; text: string; holders: Holder[] }>;
  unreadable: UnreadLine[];
  instances: Array<Omit<InstanceHistory, 'events'>>;
  /** Per address of the lines: every holder over the report's time range (the timeline's bars). */
  timeline: { from: string; to: string; addresses: Array<{ address: string; holders: Holder[] }> };
  quarantines: Array<{ id: string; cloud: string; instance: string; disk: string; state: string; bytes: number | null; sha256: string | null; digestAt: string | null; isolation: string; isolatedAt: string | null; location: string; capturedAt: string | null; expiresAt: string | null; heldBy: string[] }>;
  holds: Array<{ name: string; reason: string | null; selector: unknown; createdAt: string; createdBy: string | null; releasedAt: string | null }>;
  audit: Array<{ seq: number; at: string; actor: string; action: string; subject: string | null; details: unknown }>;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(Number(ms)).toISOString());
const MINUTE = 60_000;

/** The picture's time range: the lines, padded so the first and last are not on the edge. */
export function timelineRange(times: readonly number[]): { from: number; to: number } {
  if (times.length === 0) return { from: 0, to: MINUTE };
  const lo = Math.min(...times);
  const hi = Math.max(...times);
  const pad = Math.max((hi - lo) * 0.15, 5 * MINUTE);
  return { from: lo - pad, to: hi + pad };
}

export async function caseReport(db: Kysely<LedgerSchema>, name: string, now: Date): Promise<CaseReport> {
  const c = await getCase(db, name);
  if (c === undefined) throw new UnknownCaseError(`no case ${name}`);
  const holders = await attribute(db, c.lines);
  const attributed = c.lines.map((line, i) => ({ line, holders: holders[i] ?? [] }));
  const ids = caseInstances(attributed);

  const instances: CaseReport['instances'] = [];
  for (const i of ids) for (const h of await instanceHistory(db, i.id, i.cloud)) {
    const { events: _events, ...rest } = h;
    instances.push(rest);
  }

  const range = timelineRange(c.lines.map((l) => l.at.getTime()));
  const timeline: CaseReport['timeline'] = { from: new Date(range.from).toISOString(), to: new Date(range.to).toISOString(), addresses: [] };
  for (const address of [...new Set(c.lines.map((l) => l.address))].sort()) {
    timeline.addresses.push({ address, holders: await holdersDuring(db, address, new Date(range.from), new Date(range.to)) });
  }

  const store = new QuarantineStore(db);
  const rows = (await Promise.all(ids.map((i) => store.list({ cloud: i.cloud, instanceId: i.id })))).flat();
  const covering = await holdsCovering(db, rows, now);
  const quarantines = rows.map((q) => ({
    id: q.id, cloud: q.cloud, instance: q.instance_id, disk: q.disk, state: q.state, bytes: q.bytes === null ? null : Number(q.bytes), sha256: q.digest,
    digestAt: iso(q.digest_at), isolation: isolationLabel(q), isolatedAt: iso(q.isolated_at),
    location: `${q.location_pool}/${q.location_namespace === null ? '' : `${q.location_namespace}/`}${q.location_image}`,
    capturedAt: iso(q.captured_at), expiresAt: iso(q.expires_at), heldBy: covering.get(q.id) ?? [],
  }));

  const holds = (await listHolds(db, { includeReleased: true })).filter((h) => h.caseId === name).map((h) => ({
    name: h.name, reason: h.reason, selector: h.selector, createdAt: h.createdAt.toISOString(), createdBy: h.createdBy, releasedAt: h.releasedAt?.toISOString() ?? null,
  }));
  const subjects = [caseSubject(name), ...holds.map((h) => h.name), ...quarantines.map((q) => q.id)];
  const audit = (await db.selectFrom('audit').selectAll().where('subject', 'in', subjects).orderBy('seq').execute()).map((a) => ({
    seq: Number(a.seq), at: new Date(Number(a.at)).toISOString(), actor: a.actor, action: a.action, subject: a.subject, details: JSON.parse(a.details) as unknown,
  }));

  const lines = attributed.map((a) => ({ source: a.line.source, line: a.line.lineNo, address: a.line.address, at: a.line.at.toISOString(), text: a.line.text, holders: a.holders }));
  return {
    case: { name: c.name, reason: c.reason, createdAt: c.createdAt.toISOString(), createdBy: c.createdBy, hold: c.hold },
    generatedAt: now.toISOString(),
    counts: {
      lines: lines.length + c.unreadable.length, attributed: lines.filter((l) => l.holders.length > 0).length, unattributed: lines.filter((l) => l.holders.length === 0).length,
      unreadable: c.unreadable.length, instances: instances.length, quarantines: quarantines.length,
    },
    owners: summarizeOwners(attributed), lines, unreadable: c.unreadable, instances, timeline, quarantines, holds, audit,
  };
}
