// The CLI answers from what the operator has acknowledged, not only from what
// a derivation pass has reached: the intake leaves intervals to passes (about
// every second, and one a crash interrupted only once the operator is back),
// so `trace` derives what is pending first, as the query API does, and its
// direct path steps aside while anything is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { withTempLedger } from '../support/cli-ledger.ts';
import { writerHolding } from '../support/sqlite-writer.ts';
import { EXIT } from '../../operator/cli/errors.ts';
import { pendingDerivation } from '../../operator/ledger/derive-pending.ts';
import { traceDirect } from '../../operator/ledger/trace-direct.ts';
import { at } from '../support/events.ts';
import { ADDRESS, FLOATING, iso, seedPendingDeletion as seed } from '../support/pending-deletion.ts';

test('trace ip and trace instance derive what the intake left pending before they answer', async () => {
  await withTempLedger('qop-cli-pending-', async (t) => {
    const ledger = await t.open();
    try {
      await seed(ledger);
      assert.equal((await pendingDerivation(ledger.db)).rows, 1, 'the deletion waits for a pass');
    } finally {
      await ledger.close();
    }
    // The direct path would answer from the intervals as they are: it steps aside.
    assert.equal(await traceDirect(t.db, ADDRESS, at(20)), undefined);

    const after = await t.cli(['trace', 'ip', ADDRESS, '--at', iso(20), '-o', 'json']);
    assert.equal(after.code, EXIT.notFound, `${after.out}${after.err}`);
    assert.deepEqual(JSON.parse(after.out).holders, []);
    const floating = await t.cli(['trace', 'ip', FLOATING, '--at', iso(20)]);
    assert.equal(floating.code, EXIT.notFound, floating.out);
    const during = await t.cli(['trace', 'ip', ADDRESS, '--at', iso(5), '-o', 'json']);
    assert.equal(during.code, EXIT.ok, during.err);
    const [holder] = JSON.parse(during.out).holders as Array<{ instance: { id: string }; to: string | null }>;
    assert.equal(holder?.instance.id, 'vm-1');
    assert.equal(holder?.to, iso(10), 'the holding ends with the deletion');

    const life = await t.cli(['trace', 'instance', 'vm-1', '-o', 'json']);
    assert.equal(life.code, EXIT.ok, life.err);
    const addresses = (JSON.parse(life.out) as { addresses: Array<{ address: string; to: string | null }> }).addresses;
    assert.ok(addresses.length >= 2, JSON.stringify(addresses));
    for (const a of addresses) assert.notEqual(a.to, null, `${a.address} still held after the deletion`);

    // Derived now: the direct path answers again, and the same.
    const direct = await traceDirect(t.db, ADDRESS, at(5));
    assert.equal(direct?.holders[0]?.to, iso(10));
  });
});

test('the CLI\'s derivation waits for a writer in another process instead of failing on a stale snapshot', async () => {
  await withTempLedger('qop-cli-pending-', async (t) => {
    const ledger = await t.open();
    try {
      await seed(ledger);
    } finally {
      await ledger.close();
    }
    // Before transactions took the write lock when they began, the derivation read under the writer's lock,
    // and once the writer had committed, its first write failed at once: "database is locked" (SQLITE_BUSY_SNAPSHOT).
    const writer = await writerHolding(join(t.dir, 'ledger.db'), 400);
    const r = await t.cli(['trace', 'ip', ADDRESS, '--at', iso(20)]);
    await writer.done;
    assert.equal(r.code, EXIT.notFound, `${r.out}${r.err}`);
    assert.match(r.out, /nobody held 10\.0\.0\.5/);
  });
});
