// A fast seeded slice of the ledger's order-independence property on the
// embedded SQLite ledger (the full run on both engines is
// test/integration/ledger-property.test.ts; longer runs: npm run soak:ledger).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import { checkSeed, describeMismatches } from '../support/ledger-property.ts';

test('every arrival order, split and duplication of 8 random histories gives the ground truth', async () => {
  const ledger = openLedgerDb('sqlite::memory:');
  try {
    await migrateToLatest(ledger);
    for (let seed = 1; seed <= 8; seed += 1) {
      const ms = await checkSeed(ledger.db, seed);
      assert.equal(ms.length, 0, describeMismatches(ms));
    }
  } finally {
    await ledger.close();
  }
});

test('the same 8 histories with derivation left to passes run between random batches, as the intake does, give the ground truth', async () => {
  const ledger = openLedgerDb('sqlite::memory:');
  try {
    await migrateToLatest(ledger);
    for (let seed = 1; seed <= 8; seed += 1) {
      const ms = await checkSeed(ledger.db, seed, 40, 'deferred');
      assert.equal(ms.length, 0, describeMismatches(ms));
    }
  } finally {
    await ledger.close();
  }
});

test('a history long enough that one derivation takes its slots a piece at a time gives the ground truth', async () => {
  // 1,500 steps touch more slots in one batch (the in-order and single-batch schedules) than derive.ts derives
  // at once, so the pieces and what crosses them (a floating IP's port derived in an earlier piece) are exercised.
  const ledger = openLedgerDb('sqlite::memory:');
  try {
    await migrateToLatest(ledger);
    const ms = await checkSeed(ledger.db, 100, 1500);
    assert.equal(ms.length, 0, describeMismatches(ms));
  } finally {
    await ledger.close();
  }
});
