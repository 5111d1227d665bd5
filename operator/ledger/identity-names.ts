// Names of the users and projects a cloud's notifications name only by id,
// read from the cloud's identity API and cached in `identity_names` with the
// time they were read. The cache fills `instances.user_name`/`project_name`
// where no notification gave them, and replaces a name a notification gave
// only when the read is newer than the instance's last event (a rename since):
// names from notifications win when newer. Trace answers read those columns,
// and beside them the source (`keystone`) and the time of the read.
import { sql, type Kysely } from 'kysely';
import type { LedgerSchema } from './schema.ts';
import type { IdentityKind } from '../domain/cloud-api.ts';

export interface IdentityName {
  kind: IdentityKind;
  id: string;
  /** null: the cloud does not know the id. */
  name: string | null;
}

const COLUMNS: Record<IdentityKind, { id: 'user_id' | 'project'; name: 'user_name' | 'project_name' }> = {
  user: { id: 'user_id', name: 'user_name' },
  project: { id: 'project', name: 'project_name' },
};

/**
 * Ids to read from the API, at most `limit`: ids of the cloud's instances that
 * have no name and no fresh cached read, then cached reads older than `ttlMs`
 * (oldest first), so a rename shows within the TTL.
 */
export async function namesToRead(db: Kysely<LedgerSchema>, cloud: string, now: number, ttlMs: number, limit: number): Promise<Array<{ kind: IdentityKind; id: string }>> {
  const out: Array<{ kind: IdentityKind; id: string }> = [];
  const fresh = now - ttlMs;
  for (const kind of ['user', 'project'] as const) {
    const c = COLUMNS[kind];
    if (out.length >= limit) break;
    const rows = await db.selectFrom('instances as i').select(`i.${c.id} as id`).distinct()
      .where('i.cloud', '=', cloud).where(`i.${c.id}`, 'is not', null).where(`i.${c.name}`, 'is', null)
      .where(({ not, exists, selectFrom }) => not(exists(selectFrom('identity_names as n').select('n.id')
        .where('n.cloud', '=', cloud).where('n.kind', '=', kind).whereRef('n.id', '=', `i.${c.id}`).where('n.read_at', '>=', fresh))))
      .limit(limit - out.length).execute();
    for (const r of rows) if (r.id !== null) out.push({ kind, id: r.id });
  }
  if (out.length < limit) {
    const stale = await db.selectFrom('identity_names').select(['kind', 'id']).where('cloud', '=', cloud).where('read_at', '<', fresh)
      .orderBy('read_at').limit(limit - out.length).execute();
    const seen = new Set(out.map((x) => `${x.kind}\u0000${x.id}`));
    for (const r of stale) if (!seen.has(`${r.kind}\u0000${r.id}`)) out.push({ kind: r.kind as IdentityKind, id: r.id });
  }
  return out;
}

/** Records what was read at `readAt` (one row per kind and id, replaced by later reads). */
export async function recordNames(db: Kysely<LedgerSchema>, cloud: string, names: readonly IdentityName[], readAt: number): Promise<void> {
  for (let i = 0; i < names.length; i += 200) {
    const part = names.slice(i, i + 200).map((n) => ({ cloud, kind: n.kind, id: n.id, name: n.name, read_at: readAt }));
    await db.insertInto('identity_names').values(part)
      .onConflict((oc) => oc.columns(['cloud', 'kind', 'id']).doUpdateSet((eb) => ({ name: eb.ref('excluded.name'), read_at: eb.ref('excluded.read_at') }))).execute();
  }
}

/**
 * Puts cached names on the cloud's instances: where the instance has none,
 * or has another one from a notification older than the read, or has the
 * same one from an earlier read. Returns the number of instances changed.
 */
export async function applyNames(db: Kysely<LedgerSchema>, cloud: string): Promise<number> {
  let changed = 0;
  for (const kind of ['user', 'project'] as const) {
    const { id, name } = COLUMNS[kind];
    // One correlated statement, the same on both engines.
    const match = sql`n.cloud = instances.cloud AND n.kind = ${kind} AND n.id = instances.${sql.ref(id)} AND n.name IS NOT NULL`;
    const r = await sql`UPDATE instances SET ${sql.ref(name)} = (SELECT n.name FROM identity_names n WHERE ${match}),
        ${sql.ref(`${name}_source`)} = 'keystone', ${sql.ref(`${name}_at`)} = (SELECT n.read_at FROM identity_names n WHERE ${match})
      WHERE instances.cloud = ${cloud} AND instances.${sql.ref(id)} IS NOT NULL AND EXISTS (SELECT 1 FROM identity_names n WHERE ${match}
        AND (instances.${sql.ref(name)} IS NULL OR (instances.${sql.ref(name)} <> n.name AND instances.last_event_at < n.read_at)
          -- The same name read again: the read time shown moves with it.
          OR (instances.${sql.ref(name)} = n.name AND instances.${sql.ref(`${name}_source`)} = 'keystone' AND instances.${sql.ref(`${name}_at`)} < n.read_at)))`.execute(db);
    changed += Number(r.numAffectedRows ?? 0n);
  }
  return changed;
}
