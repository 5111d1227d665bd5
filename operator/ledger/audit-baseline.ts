// The trail's first word on rows that existed before it covered the
// quarantine and hold tables: one `audit.baseline` entry per row, with its
// value at that moment.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from './schema.ts';
import { appendAudit, holdSnapshot, quarantineSnapshot, rowDetails } from './audit.ts';

export async function recordBaseline(db: Kysely<LedgerSchema>): Promise<number> {
  const run = async (trx: Kysely<LedgerSchema>) => {
    let n = 0;
    const quarantines = await trx.selectFrom('quarantines').select(['id', 'state', 'location_pool', 'location_namespace', 'location_image', 'expires_at', 'digest']).orderBy('id').execute();
    for (const q of quarantines) {
      await appendAudit(trx, { actor: 'quarantine-operator/migration', action: 'audit.baseline', subject: q.id, details: rowDetails('quarantines', quarantineSnapshot(q)) });
      n += 1;
    }
    const holds = await trx.selectFrom('holds').select(['name', 'case_id', 'reason', 'selector', 'until', 'released_at', 'created_by']).orderBy('name').execute();
    for (const h of holds) {
      await appendAudit(trx, { actor: 'quarantine-operator/migration', action: 'audit.baseline', subject: h.name, details: rowDetails('holds', holdSnapshot(h)) });
      n += 1;
    }
    return n;
  };
  return db.isTransaction ? run(db) : db.transaction().execute(run);
}
