// Reconciliation against a listing the test controls, on the embedded SQLite
// ledger (the same scenarios run on PostgreSQL in test/integration/ledger-reconcile.test.ts).
import { test } from 'node:test';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import { applyBatch } from '../../operator/ledger/apply.ts';
import { reconcileScenarios } from '../support/reconcile-scenarios.ts';

for (const s of reconcileScenarios) {
  test(s.name, async () => {
    const ledger = openLedgerDb('sqlite::memory:');
    try {
      await migrateToLatest(ledger);
      await s.run(ledger.db, (ns) => applyBatch(ledger.db, ns.map((n) => ({ notification: n, body: n.messageId }))));
    } finally {
      await ledger.close();
    }
  });
}
