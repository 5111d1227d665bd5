// Legal holds in the ledger, and which quarantines they cover right now.
import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import { appendAudit } from '../ledger/audit.ts';
import { holdActive, holdCovers, selectorIsEmpty, type Hold, type HoldSelector } from '../domain/holds.ts';
import type { QuarantineRow } from './quarantine-store.ts';

export class HoldError extends Error {
  override name = 'HoldError';
}

export interface HoldRecord extends Hold {
  id: string;
  reason: string | null;
  createdAt: Date;
  releasedAt: Date | null;
  createdBy: string | null;
}

function toRecord(r: { id: string; name: string; case_id: string | null; reason: string | null; selector: string; created_at: number; until: number | null; released_at: number | null; created_by: string | null }): HoldRecord {
  return {
    id: r.id, name: r.name, caseId: r.case_id ?? undefined, reason: r.reason, selector: JSON.parse(r.selector) as HoldSelector,
    until: r.until === null ? undefined : new Date(r.until), createdAt: new Date(r.created_at), releasedAt: r.released_at === null ? null : new Date(r.released_at), createdBy: r.created_by,
  };
}

/** Creates or updates a hold by name (a QuarantineHold resource maps to one name). */
export async function upsertHold(db: Kysely<LedgerSchema>, h: { name: string; caseId?: string | undefined; reason?: string | undefined; selector: HoldSelector; until?: Date | undefined; actor: string }, now: Date): Promise<HoldRecord> {
  if (selectorIsEmpty(h.selector)) throw new HoldError(`hold ${h.name} selects nothing: give instances, projects, users, addresses or quarantines`);
  for (const a of h.selector.addresses ?? []) {
    for (const t of [a.from, a.to]) if (t !== undefined && Number.isNaN(Date.parse(t))) throw new HoldError(`hold ${h.name}: "${t}" is not a time`);
  }
  return db.transaction().execute(async (trx) => {
    const existing = await trx.selectFrom('holds').selectAll().where('name', '=', h.name).executeTakeFirst();
    const values = { case_id: h.caseId ?? null, reason: h.reason ?? null, selector: JSON.stringify(h.selector), until: h.until?.getTime() ?? null, released_at: null };
    if (existing === undefined) {
      await trx.insertInto('holds').values({ id: `h${randomBytes(6).toString('hex')}`, name: h.name, created_at: now.getTime(), created_by: h.actor, ...values }).execute();
    } else {
      const same = existing.selector === values.selector && existing.case_id === values.case_id && existing.until === values.until && existing.released_at === null && existing.reason === values.reason;
      if (same) return toRecord(existing);
      await trx.updateTable('holds').set(values).where('name', '=', h.name).execute();
    }
    await appendAudit(trx, { actor: h.actor, action: existing === undefined ? 'hold.add' : 'hold.update', subject: h.name, at: now, details: { caseId: h.caseId ?? null, reason: h.reason ?? null, selector: h.selector, until: h.until?.toISOString() ?? null } });
    return toRecord(await trx.selectFrom('holds').selectAll().where('name', '=', h.name).executeTakeFirstOrThrow());
  });
}

/** Releases holds by name or by case id; the quarantines they covered become sweepable again. */
export async function releaseHolds(db: Kysely<LedgerSchema>, by: { name?: string; caseId?: string }, actor: string, now: Date): Promise<string[]> {
  return db.transaction().execute(async (trx) => {
    let q = trx.selectFrom('holds').select('name').where('released_at', 'is', null);
    if (by.name !== undefined) q = q.where('name', '=', by.name);
    if (by.caseId !== undefined) q = q.where('case_id', '=', by.caseId);
    const names = (await q.execute()).map((r) => r.name);
    for (const name of names) {
      await trx.updateTable('holds').set({ released_at: now.getTime() }).where('name', '=', name).execute();
      await appendAudit(trx, { actor, action: 'hold.release', subject: name, at: now, details: { caseId: by.caseId ?? null } });
    }
    return names;
  });
}

export async function listHolds(db: Kysely<LedgerSchema>, opts: { includeReleased?: boolean } = {}): Promise<HoldRecord[]> {
  let q = db.selectFrom('holds').selectAll();
  if (opts.includeReleased !== true) q = q.where('released_at', 'is', null);
  return (await q.orderBy('created_at').execute()).map(toRecord);
}

/** For each quarantine, the names of the active holds that cover it. */
export async function holdsCovering(db: Kysely<LedgerSchema>, quarantines: readonly QuarantineRow[], now: Date): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const holds = (await listHolds(db)).filter((h) => holdActive(h, now));
  if (holds.length === 0 || quarantines.length === 0) return out;
  const instances = new Map<string, { project: string | null; user: string | null }>();
  for (const r of await db.selectFrom('instances').select(['cloud', 'instance_id', 'project', 'user_id']).where('instance_id', 'in', [...new Set(quarantines.map((q) => q.instance_id))]).execute()) {
    instances.set(`${r.cloud}/${r.instance_id}`, { project: r.project, user: r.user_id });
  }
  for (const h of holds) {
    const holders = new Set<string>();
    for (const a of h.selector.addresses ?? []) {
      const from = a.from === undefined ? Number.MIN_SAFE_INTEGER : Date.parse(a.from);
      const to = a.to === undefined ? Number.MAX_SAFE_INTEGER : Date.parse(a.to);
      // Every instance whose interval on the address overlaps the window.
      const rows = await db.selectFrom('address_intervals').select(['cloud', 'instance_id']).where('address', '=', a.address)
        .where('valid_from', '<', to).where((eb) => eb.or([eb('valid_to', 'is', null), eb('valid_to', '>', from)])).execute();
      for (const r of rows) if (r.instance_id !== null) holders.add(`${r.cloud}/${r.instance_id}`);
    }
    for (const q of quarantines) {
      const facts = instances.get(`${q.cloud}/${q.instance_id}`);
      const prov = JSON.parse(q.provenance) as { instance?: { project?: string | null; user?: string | null } };
      const project = facts?.project ?? prov.instance?.project ?? null;
      const user = facts?.user ?? prov.instance?.user ?? null;
      if (holdCovers(h, { id: q.id, cloud: q.cloud, instanceId: q.instance_id, project, user }, holders)) {
        out.set(q.id, [...(out.get(q.id) ?? []), h.name]);
      }
    }
  }
  return out;
}
