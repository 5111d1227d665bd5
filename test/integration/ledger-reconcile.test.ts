// The reconciliation scenarios (test/support/reconcile-scenarios.ts) on a
// real PostgreSQL ledger: observed facts, their bounds and the passes' records
// behave as on SQLite.
import { test } from 'node:test';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import { applyBatch } from '../../operator/ledger/apply.ts';
import assert from 'node:assert/strict';
import { reconcileScenarios } from '../support/reconcile-scenarios.ts';
import { holderSlotsDrift } from '../support/holder-slots.ts';
import { createTestDatabase } from '../support/pg.ts';

for (const s of reconcileScenarios) {
  test(`PostgreSQL: ${s.name}`, async () => {
    const database = await createTestDatabase();
    const ledger = openLedgerDb(database.url);
    try {
      await migrateToLatest(ledger);
      await s.run(ledger.db, (ns) => applyBatch(ledger.db, ns.map((n) => ({ notification: n, body: n.messageId }))));
      // The observed facts' pairs, as the intake's (operator/ledger/holder-slots.ts).
      assert.deepEqual(await holderSlotsDrift(ledger.db), []);
    } finally {
      await ledger.close();
      await database.drop();
    }
  });
}
