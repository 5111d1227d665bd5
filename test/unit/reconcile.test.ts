// Reconciliation against a listing the test controls, on the embedded SQLite
// ledger (the same scenarios run on PostgreSQL in test/integration/ledger-reconcile.test.ts).
import { test } from 'node:test';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import { applyBatch } from '../../operator/ledger/apply.ts';
import assert from 'node:assert/strict';
import { reconcileScenarios } from '../support/reconcile-scenarios.ts';
import { holderSlotsDrift } from '../support/holder-slots.ts';

for (const s of reconcileScenarios) {
  test(s.name, async () => {
    const ledger = openLedgerDb('sqlite::memory:');
    try {
      await migrateToLatest(ledger);
      await s.run(ledger.db, (ns) => applyBatch(ledger.db, ns.map((n) => ({ notification: n, body: n.messageId }))));
      // The observed facts' pairs, as the intake's (operator/ledger/holder-slots.ts).
      assert.deepEqual(await holderSlotsDrift(ledger.db), []);
    } finally {
      await ledger.close();
    }
  });
}
