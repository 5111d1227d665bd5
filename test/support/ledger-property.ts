// The order-independence property, shared by the unit slice, the integration
// test on both engines and `npm run soak:ledger`: every arrival schedule of a
// generated history, decoded by the intake's real decoders, gives the ground
// truth's trace answers.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../../operator/ledger/schema.ts';
import { applyBatch } from '../../operator/ledger/apply.ts';
import { deriveAll, derivePass } from '../../operator/ledger/derive-pending.ts';
import { traceAddress } from '../../operator/ledger/trace.ts';
import { generateHistory, labels, rng, schedules, truthAt } from './histories.ts';
import { decodeRaw } from './cloud-messages.ts';
import { holderSlotsDrift } from './holder-slots.ts';

export interface Mismatch {
  seed: number;
  schedule: string;
  address: string;
  at: string;
  expected: string[];
  actual: string[];
}

let run = 0;

/**
 * How batches are derived: in their own transaction (`now`), or left to
 * derivation passes (`deferred`, as the intake does) run after a random
 * choice of batches and once more before the questions.
 */
export type Derivation = 'now' | 'deferred';

/** Applies every schedule of history `seed` into clouds of its own and returns where answers differ from the truth. */
export async function checkSeed(db: Kysely<LedgerSchema>, seed: number, steps = 40, derivation: Derivation = 'now'): Promise<Mismatch[]> {
  const h = generateHistory(seed, steps);
  const out: Mismatch[] = [];
  run += 1;
  const passHere = rng(seed * 7919 + 17);
  for (const [k, s] of schedules(h, seed).entries()) {
    const cloud = `p${run}-s${seed}-${k}${derivation === 'deferred' ? '-d' : ''}`;
    for (const batch of s.batches) {
      const recorded = batch.map((m) => decodeRaw(m, cloud));
      if (derivation === 'now') await applyBatch(db, recorded);
      else {
        await applyBatch(db, recorded, undefined, { deferDerivation: { at: 0 } });
        if (passHere() < 0.3) await derivePass(db, { cloud });
      }
    }
    if (derivation === 'deferred') await deriveAll(db, { cloud });
    for (const pair of await holderSlotsDrift(db, cloud)) out.push({ seed, schedule: s.name, address: 'holder_slots', at: '', expected: [pair.want], actual: [pair.have] });
    for (const q of h.queries) {
      const actual = labels(await traceAddress(db, q.address, new Date(q.at), cloud));
      const expected = truthAt(h, q.address, q.at);
      if (actual.join(',') !== expected.join(',')) out.push({ seed, schedule: s.name, address: q.address, at: new Date(q.at).toISOString(), expected, actual });
    }
  }
  return out;
}

export function describeMismatches(ms: readonly Mismatch[], limit = 5): string {
  return ms.slice(0, limit).map((m) => `seed ${m.seed} (${m.schedule}): ${m.address} at ${m.at}: expected [${m.expected.join(', ')}], got [${m.actual.join(', ')}]`).join('\n');
}
