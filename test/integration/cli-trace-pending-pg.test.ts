// On PostgreSQL too, `trace ip` answers from what the operator has
// acknowledged: its direct path steps aside while a derivation is pending, and
// the full path derives first (test/unit/cli-trace-pending.test.ts has SQLite).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cli } from '../support/cli-ledger.ts';
import { createTestDatabase } from '../support/pg.ts';
import { EXIT } from '../../operator/cli/errors.ts';
import { migrateToLatest, openLedgerDb } from '../../operator/ledger/db.ts';
import { pendingDerivation } from '../../operator/ledger/derive-pending.ts';
import { traceDirect } from '../../operator/ledger/trace-direct.ts';
import { at } from '../support/events.ts';
import { ADDRESS, FLOATING, iso, seedPendingDeletion } from '../support/pending-deletion.ts';

test('PostgreSQL: trace ip derives what the intake left pending before it answers', async () => {
  const database = await createTestDatabase();
  try {
    const ledger = openLedgerDb(database.url);
    try {
      await migrateToLatest(ledger);
      await seedPendingDeletion(ledger);
      assert.equal((await pendingDerivation(ledger.db)).rows, 1);
    } finally {
      await ledger.close();
    }
    assert.equal(await traceDirect(database.url, ADDRESS, at(20)), undefined, 'the direct path steps aside');
    const after = await cli(['--db', database.url, 'trace', 'ip', ADDRESS, '--at', iso(20)]);
    assert.equal(after.code, EXIT.notFound, `${after.out}${after.err}`);
    const floating = await cli(['--db', database.url, 'trace', 'ip', FLOATING, '--at', iso(20)]);
    assert.equal(floating.code, EXIT.notFound, floating.out);
    // Derived by the command: the direct path answers again, the holding ending with the deletion.
    const direct = await traceDirect(database.url, ADDRESS, at(5));
    assert.equal(direct?.holders[0]?.instance?.id, 'vm-1');
    assert.equal(direct?.holders[0]?.to, iso(10));
  } finally {
    await database.drop();
  }
});
