// The ledger's order-independence property on both engines: random cloud
// histories (test/support/histories.ts) applied in event order, reversed,
// shuffled, and shuffled in separate batches with duplicates all give the
// ground truth's trace answers. Longer runs: npm run soak:ledger -- --db URL.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { LedgerDb } from '../../operator/ledger/db.ts';
import { ledgerEngines, openLedger } from '../support/ledger-engines.ts';
import { checkSeed, describeMismatches } from '../support/ledger-property.ts';

const engines = ledgerEngines.map((e) => ({ ...e, histories: e.name === 'sqlite' ? 40 : 10 }));

for (const engine of engines) {
  describe(`ledger order independence on ${engine.name}`, () => {
    let ledger: LedgerDb;
    let close = async () => {};
    before(async () => { ({ ledger, close } = await openLedger(engine)); });
    after(() => close());

    test(`${engine.histories} random histories: every arrival schedule gives the ground truth`, async () => {
      // Seeds beyond the unit slice's, so the two runs cover different histories.
      for (let seed = 1001; seed < 1001 + engine.histories; seed += 1) {
        const ms = await checkSeed(ledger.db, seed);
        assert.equal(ms.length, 0, describeMismatches(ms));
      }
    });

    test(`${engine.histories / 2} random histories with derivation left to passes between random batches: the ground truth`, async () => {
      for (let seed = 2001; seed < 2001 + engine.histories / 2; seed += 1) {
        const ms = await checkSeed(ledger.db, seed, 40, 'deferred');
        assert.equal(ms.length, 0, describeMismatches(ms));
      }
    });
  });
}
