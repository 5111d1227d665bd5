// Legal holds in the ledger, and which quarantines they cover right now.
import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../ledger/schema.ts';
import { appendAudit, auditKeysOf, holdSnapshot, rowDetails } from '../ledger/audit.ts';
import { holdActive, holdCovers, selectorIsEmpty, type Hold, type HoldSelector } from '../domain/holds.ts';
import { QuarantineStore, HOLDING, type QuarantineRow } from './quarantine-store.ts';

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

export interface HoldInput {
  name: string;
  caseId?: string | undefined;
  reason?: string | undefined;
  selector: HoldSelector;
  until?: Date | undefined;
  actor: string;
}

/** A hold's name is taken (and standing) and the caller did not ask to replace it. */
export class HoldExistsError extends HoldError {
  override name = 'HoldExistsError';
}

/**
 * The checks every way of placing a hold goes through (CLI, QuarantineHold
 * resources, manifest files): a selector that names something, address
 * windows that start no later than they end, and an `until` that is not
 * already past — unless it is the `until` the hold already had, so a lapsed
 * hold in a manifest stays valid on the next start.
 */
export function validateHold(h: HoldInput, existing: HoldRecord | undefined, now: Date): void {
  if (selectorIsEmpty(h.selector)) throw new HoldError(`hold ${h.name} selects nothing: give instances, projects, users, addresses or quarantines`);
  for (const a of h.selector.addresses ?? []) {
    for (const t of [a.from, a.to]) if (t !== undefined && Number.isNaN(Date.parse(t))) throw new HoldError(`hold ${h.name}: "${t}" is not a time`);
    if (a.from !== undefined && a.to !== undefined && Date.parse(a.from) > Date.parse(a.to)) {
      throw new HoldError(`hold ${h.name}: the window on ${a.address} starts (${a.from}) after it ends (${a.to})`);
    }
  }
  if (h.until !== undefined) {
    if (Number.isNaN(h.until.getTime())) throw new HoldError(`hold ${h.name}: until is not a time`);
    const unchanged = existing !== undefined && existing.releasedAt === null && existing.until?.getTime() === h.until.getTime();
    if (!unchanged && h.until.getTime() <= now.getTime()) throw new HoldError(`hold ${h.name}: until ${h.until.toISOString()} is not in the future`);
  }
}

export async function getHold(db: Kysely<LedgerSchema>, name: string): Promise<HoldRecord | undefined> {
  const r = await db.selectFrom('holds').selectAll().where('name', '=', name).executeTakeFirst();
  return r === undefined ? undefined : toRecord(r);
}

/**
 * Creates or updates a hold by name. A QuarantineHold resource or a manifest
 * maps to one name and is replaced as it changes (`ifExists: 'replace'`, the
 * default); the CLI refuses to replace a standing hold it was not told to.
 */
export async function upsertHold(db: Kysely<LedgerSchema>, h: HoldInput, now: Date, opts: { ifExists?: 'replace' | 'refuse' } = {}): Promise<HoldRecord> {
  return db.transaction().execute(async (trx) => {
    const existing = await trx.selectFrom('holds').selectAll().where('name', '=', h.name).executeTakeFirst();
    validateHold(h, existing === undefined ? undefined : toRecord(existing), now);
    const values = { case_id: h.caseId ?? null, reason: h.reason ?? null, selector: JSON.stringify(h.selector), until: h.until?.getTime() ?? null, released_at: null };
    if (existing === undefined) {
      await trx.insertInto('holds').values({ id: `h${randomBytes(6).toString('hex')}`, name: h.name, created_at: now.getTime(), created_by: h.actor, ...values }).execute();
    } else {
      const same = existing.selector === values.selector && existing.case_id === values.case_id && existing.until === values.until && existing.released_at === null && existing.reason === values.reason;
      if (same) return toRecord(existing);
      if (opts.ifExists === 'refuse' && existing.released_at === null) {
        throw new HoldExistsError(`hold ${h.name} exists already (case ${existing.case_id ?? '-'}); give --replace to change it`);
      }
      await trx.updateTable('holds').set(values).where('name', '=', h.name).execute();
    }
    const row = await trx.selectFrom('holds').selectAll().where('name', '=', h.name).executeTakeFirstOrThrow();
    await appendAudit(trx, {
      actor: h.actor, action: existing === undefined ? 'hold.add' : 'hold.update', subject: h.name, at: now,
      details: rowDetails('holds', holdSnapshot(row), { caseId: h.caseId ?? null, reason: h.reason ?? null, selector: h.selector, until: h.until?.toISOString() ?? null }),
    }, { keys: auditKeysOf(db) });
    return toRecord(row);
  });
}

/** Standing holds selected by name or by case id. */
async function standing(db: Kysely<LedgerSchema>, by: { name?: string; caseId?: string }): Promise<string[]> {
  let q = db.selectFrom('holds').select('name').where('released_at', 'is', null);
  if (by.name !== undefined) q = q.where('name', '=', by.name);
  if (by.caseId !== undefined) q = q.where('case_id', '=', by.caseId);
  return (await q.execute()).map((r) => r.name);
}

/** Releases holds by name or by case id; the quarantines they covered become sweepable again. */
export async function releaseHolds(db: Kysely<LedgerSchema>, by: { name?: string; caseId?: string }, actor: string, now: Date): Promise<string[]> {
  const names = await standing(db, by);
  if (names.length === 0) return [];
  // Named in each release entry: what the release gave back to retention.
  const released = await releasedBy(db, { removed: names }, now);
  return db.transaction().execute(async (trx) => {
    const names = await standing(trx, by);
    for (const name of names) {
      await trx.updateTable('holds').set({ released_at: now.getTime() }).where('name', '=', name).execute();
      const row = await trx.selectFrom('holds').selectAll().where('name', '=', name).executeTakeFirstOrThrow();
      await appendAudit(trx, { actor, action: 'hold.release', subject: name, at: now, details: rowDetails('holds', holdSnapshot(row), { caseId: by.caseId ?? null, releases: released }) }, { keys: auditKeysOf(db) });
    }
    return names;
  });
}

/**
 * The quarantines that no standing hold would cover any more if the holds
 * named in `removed` were released and `replaced` changed as given: what a
 * removal or a narrowing gives back to retention.
 */
export async function releasedBy(db: Kysely<LedgerSchema>, change: { removed?: readonly string[]; replaced?: Hold }, now: Date): Promise<string[]> {
  const rows = await new QuarantineStore(db).list({ states: HOLDING });
  const current = (await listHolds(db)).filter((h) => holdActive(h, now));
  const before = await holdsCovering(db, rows, now, current);
  const gone = new Set(change.removed ?? []);
  const after: Hold[] = current.filter((h) => !gone.has(h.name)).map((h) => (change.replaced !== undefined && h.name === change.replaced.name ? { ...h, ...change.replaced } : h));
  if (change.replaced !== undefined && !current.some((h) => h.name === change.replaced?.name)) after.push(change.replaced);
  const kept = await holdsCovering(db, rows, now, after.filter((h) => holdActive(h, now)));
  return rows.filter((q) => before.has(q.id) && !kept.has(q.id)).map((q) => q.id);
}

export async function listHolds(db: Kysely<LedgerSchema>, opts: { includeReleased?: boolean } = {}): Promise<HoldRecord[]> {
  let q = db.selectFrom('holds').selectAll();
  if (opts.includeReleased !== true) q = q.where('released_at', 'is', null);
  return (await q.orderBy('created_at').execute()).map(toRecord);
}

/** For each quarantine, the names of the active holds that cover it. */
export async function holdsCovering(db: Kysely<LedgerSchema>, quarantines: readonly QuarantineRow[], now: Date, among?: readonly Hold[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const holds = among ?? (await listHolds(db)).filter((h) => holdActive(h, now));
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
