// The ledger's (holder, slot) pairs against its facts (operator/ledger/holder-slots.ts):
// checked after the property test's schedules and the reconciliation scenarios.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../../operator/ledger/schema.ts';

/**
 * Where holder_slots differs from the (holder, slot) pairs of the facts (of
 * one cloud, or of all): a pair missing leaves a slot underived when its
 * holder changes, one left over after its facts moved (a MAC's slot adopted
 * by its port) is work for nothing.
 */
export async function holderSlotsDrift(db: Kysely<LedgerSchema>, cloud?: string): Promise<Array<{ want: string; have: string }>> {
  let facts = db.selectFrom('address_changes').select(['cloud', 'holder_key', 'slot']).distinct().where('holder_key', '<>', '');
  let pairs = db.selectFrom('holder_slots').select(['cloud', 'holder_key', 'slot']);
  if (cloud !== undefined) {
    facts = facts.where('cloud', '=', cloud);
    pairs = pairs.where('cloud', '=', cloud);
  }
  const key = (r: { cloud: string; holder_key: string; slot: string }) => `${r.cloud} ${r.holder_key} ${r.slot}`;
  const want = new Set((await facts.execute()).map(key));
  const have = new Set((await pairs.execute()).map(key));
  return [
    ...[...want].filter((k) => !have.has(k)).map((k) => ({ want: k, have: '(missing)' })),
    ...[...have].filter((k) => !want.has(k)).map((k) => ({ want: '(none)', have: k })),
  ];
}
