// The intake leaves each batch's derivation to a pass (operator/ledger/derive-pending.ts)
// that runs once deliveries pause: a test that reads intervals after the rows arrived waits for it too.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../../operator/ledger/schema.ts';
import { pendingDerivation } from '../../operator/ledger/derive-pending.ts';

export async function untilDerived(db: Kysely<LedgerSchema>, cloud?: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while ((await pendingDerivation(db, cloud)).rows > 0) {
    if (Date.now() > deadline) throw new Error(`the intake's derivation passes did not catch up within ${ms} ms`);
    await sleep(10);
  }
}
