// The (holder, slot) pairs of the facts (holder_slots, migration 0024): every
// writer of address_changes adds the pairs of the facts it writes, and a move
// of facts to another slot moves their pairs, so that a derivation finds all
// the slots of a holder from them (derive.ts). A pair missing would leave a
// slot underived when its holder's end or address list changes; the property
// test (test/support/ledger-property.ts) compares the table with the facts.
import { sql, type Kysely } from 'kysely';
import type { LedgerSchema } from './schema.ts';
import * as pgSets from './pg-sets.ts';
import * as sqliteSets from './sqlite-sets.ts';
import { pieces } from './pieces.ts';

export type HolderSlot = { cloud: string; holder_key: string; slot: string };

const ROWS = 256;
const pairKey = (p: HolderSlot) => `${p.cloud}\u0000${p.holder_key}\u0000${p.slot}`;

/** The distinct pairs of `facts` with a holder, in key order. */
function pairsOf(facts: Iterable<HolderSlot>): HolderSlot[] {
  const seen = new Map<string, HolderSlot>();
  for (const f of facts) {
    if (f.holder_key === '') continue;
    const k = pairKey(f);
    if (!seen.has(k)) seen.set(k, { cloud: f.cloud, holder_key: f.holder_key, slot: f.slot });
  }
  // In one order: two PostgreSQL transactions adding the same new pairs wait for each other's rows in the same order, never crosswise.
  return [...seen.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([, p]) => p);
}

/** Adds the pairs of the facts given (those already there stay as they are). */
export async function addHolderSlots(trx: Kysely<LedgerSchema>, facts: Iterable<HolderSlot>): Promise<void> {
  const rows = pairsOf(facts);
  if (rows.length === 0) return;
  if (pgSets.isPostgres(trx)) {
    await pgSets.insertRows(trx, 'holder_slots', rows, sql`ON CONFLICT DO NOTHING`);
    return;
  }
  for (const part of pieces(rows, ROWS)) await sqliteSets.insertRows(trx, 'holder_slots', part, 'on conflict do nothing');
}

/** Facts of `holder_key` moved from slot `from` to slot `to`: their pair moves with them. */
export async function moveHolderSlots(trx: Kysely<LedgerSchema>, cloud: string, moves: ReadonlyArray<{ holder_key: string; from: string; to: string }>): Promise<void> {
  const gone = pairsOf(moves.map((m) => ({ cloud, holder_key: m.holder_key, slot: m.from })));
  for (const p of gone) await trx.deleteFrom('holder_slots').where('cloud', '=', cloud).where('holder_key', '=', p.holder_key).where('slot', '=', p.slot).execute();
  await addHolderSlots(trx, moves.map((m) => ({ cloud, holder_key: m.holder_key, slot: m.to })));
}
