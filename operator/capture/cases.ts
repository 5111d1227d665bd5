// An investigation: log lines from an abuse report, the instances that held
// their source addresses, and a legal hold on those instances' quarantines —
// the ones captured already and any captured later, since the hold names the
// instances. Everything it does is in the audit trail.
import { z } from 'zod';
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import { appendAudit } from '../ledger/audit.ts';
import type { Holder } from '../ledger/trace.ts';
import type { LogLine, UnreadLine } from '../logs/read.ts';
import type { Attributed } from '../logs/owners.ts';
import { summarizeOwners } from '../logs/owners.ts';
import { upsertHold } from './holds.ts';

export class CaseError extends Error {
  override name = 'CaseError';
}

/** No case of that name: nothing found rather than a bad request. */
export class UnknownCaseError extends CaseError {
  override name = 'UnknownCaseError';
}

export const caseHoldName = (name: string): string => `case-${name}`;
export const caseSubject = (name: string): string => `case/${name}`;
// A CLI case is NAME; a QuarantineCase resource's is NAMESPACE/NAME.
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}(\/[A-Za-z0-9][A-Za-z0-9._-]{0,252})?$/;

export interface CaseRecord {
  name: string;
  reason: string | null;
  createdAt: Date;
  createdBy: string;
  hold: string | null;
  lines: LogLine[];
  unreadable: UnreadLine[];
}

const StoredLine = z.object({ source: z.string(), lineNo: z.number(), text: z.string(), address: z.string(), at: z.string() });
const StoredUnread = z.object({ source: z.string(), lineNo: z.number(), text: z.string(), reason: z.string() });

/** The instances a case holds, per cloud, from its attributed lines. */
export function caseInstances(lines: ReadonlyArray<Attributed<Holder>>): Array<{ cloud: string; id: string }> {
  const seen = new Map<string, { cloud: string; id: string }>();
  for (const l of lines) for (const h of l.holders) if (h.instance !== null) seen.set(`${h.cloud}/${h.instance.id}`, { cloud: h.cloud, id: h.instance.id });
  return [...seen.values()].sort((a, b) => a.cloud.localeCompare(b.cloud) || a.id.localeCompare(b.id));
}

export async function openCase(
  db: Kysely<LedgerSchema>,
  c: { name: string; reason?: string | undefined; lines: ReadonlyArray<Attributed<Holder>>; unreadable: readonly UnreadLine[]; actor: string },
  now: Date,
): Promise<CaseRecord> {
  if (!NAME.test(c.name)) throw new CaseError(`case name "${c.name}" must be letters, digits, '.', '_' or '-' (at most 63), optionally NAMESPACE/NAME`);
  if (await db.selectFrom('cases').select('name').where('name', '=', c.name).executeTakeFirst() !== undefined) {
    throw new CaseError(`case ${c.name} exists already`);
  }
  const instances = caseInstances(c.lines);
  // The hold first: if the case record then fails, the evidence is still protected.
  let hold: string | null = null;
  if (instances.length > 0) {
    hold = caseHoldName(c.name);
    await upsertHold(db, {
      name: hold, caseId: c.name, reason: c.reason ?? `case ${c.name}`, actor: c.actor,
      selector: { clouds: [...new Set(instances.map((i) => i.cloud))], instances: instances.map((i) => i.id) },
    }, now);
  }
  const lines = c.lines.map((l) => ({ source: l.line.source, lineNo: l.line.lineNo, text: l.line.text, address: l.line.address, at: l.line.at.toISOString() }));
  await db.transaction().execute(async (trx) => {
    await trx.insertInto('cases').values({
      name: c.name, reason: c.reason ?? null, created_at: now.getTime(), created_by: c.actor, hold,
      lines: JSON.stringify(lines), unreadable: JSON.stringify(c.unreadable),
    }).execute();
    await appendAudit(trx, {
      actor: c.actor, action: 'case.open', subject: caseSubject(c.name), at: now,
      details: {
        reason: c.reason ?? null, hold, lines: lines.length, unreadable: c.unreadable.length, instances,
        owners: summarizeOwners(c.lines).map((o) => ({ cloud: o.cloud, project: o.project, user: o.user, lines: o.lines })),
      },
    });
  });
  const stored = await getCase(db, c.name);
  if (stored === undefined) throw new CaseError(`case ${c.name} was not recorded`);
  return stored;
}

export async function getCase(db: Kysely<LedgerSchema>, name: string): Promise<CaseRecord | undefined> {
  const r = await db.selectFrom('cases').selectAll().where('name', '=', name).executeTakeFirst();
  if (r === undefined) return undefined;
  return {
    name: r.name, reason: r.reason, createdAt: new Date(Number(r.created_at)), createdBy: r.created_by, hold: r.hold,
    lines: z.array(StoredLine).parse(JSON.parse(r.lines)).map((l) => ({ ...l, at: new Date(l.at) })),
    unreadable: z.array(StoredUnread).parse(JSON.parse(r.unreadable)),
  };
}

export async function listCases(db: Kysely<LedgerSchema>): Promise<Array<{ name: string; reason: string | null; createdAt: Date; createdBy: string; hold: string | null }>> {
  const rows = await db.selectFrom('cases').select(['name', 'reason', 'created_at', 'created_by', 'hold']).orderBy('created_at').execute();
  return rows.map((r) => ({ name: r.name, reason: r.reason, createdAt: new Date(Number(r.created_at)), createdBy: r.created_by, hold: r.hold }));
}
