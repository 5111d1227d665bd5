// The ledger's order-independence property on both engines: random cloud
// histories (test/support/histories.ts) applied in event order, reversed,
// shuffled, and shuffled in separate batches with duplicates all give the
// ground truth's trace answers. Longer runs: npm run soak:ledger -- --db URL.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { createTestDatabase } from '../support/pg.ts';
import { checkSeed, describeMismatches } from '../support/ledger-property.ts';

const engines: Array<{ name: string; histories: number; open: () => Promise<{ url: string; cleanup: () => Promise<void> }> }> = [
  { name: 'sqlite', histories: 40, open: async () => ({ url: 'sqlite::memory:', cleanup: async () => undefined }) },
  { name: 'postgres', histories: 10, open: async () => { const t = await createTestDatabase(); return { url: t.url, cleanup: () => t.drop() }; } },
];

for (const engine of engines) {
  describe(`ledger order independence on ${engine.name}`, () => {
    let ledger: LedgerDb;
    let cleanup: () => Promise<void>;
    before(async () => {
      const t = await engine.open();
      cleanup = t.cleanup;
      ledger = openLedgerDb(t.url);
      await migrateToLatest(ledger);
    });
    after(async () => {
      await ledger.close();
      await cleanup();
    });

    test(`${engine.histories} random histories: every arrival schedule gives the ground truth`, async () => {
      // Seeds beyond the unit slice's, so the two runs cover different histories.
      for (let seed = 1001; seed < 1001 + engine.histories; seed += 1) {
        const ms = await checkSeed(ledger.db, seed);
        assert.equal(ms.length, 0, describeMismatches(ms));
      }
    });
  });
}
