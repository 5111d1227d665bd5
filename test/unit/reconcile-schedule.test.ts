// The reconciler's schedule on the runtime's work queue: a pass at once when
// leadership starts it, the next one an interval after the previous ended,
// none after it stops, and a pass that throws does not stop the schedule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import { FakeClock, settle } from '../../operator/kube/runtime/clock.ts';
import { CloudReconcile } from '../../operator/reconcile/cloud-reconcile.ts';
import type { OpenNebulaInventory } from '../../operator/domain/inventory.ts';
import { silentLogger } from '../../operator/log.ts';

test('a pass at start, one per interval, none after stop; a failing listing keeps the schedule', async () => {
  const ledger = openLedgerDb('sqlite::memory:');
  try {
    await migrateToLatest(ledger);
    let listings = 0;
    const api: OpenNebulaInventory = {
      type: 'opennebula',
      async *vms() {
        listings += 1;
        if (listings === 2) throw new Error('connection refused');
        yield [];
      },
    };
    const clock = new FakeClock('2026-05-01T10:00:00Z');
    const reports: string[] = [];
    const r = new CloudReconcile({ cloud: 'one', inventory: api, db: ledger.db, clock, logger: silentLogger, intervalMs: 600_000, onPass: (p) => reports.push(p.listings[0]?.outcome ?? '') });
    r.start();
    await settle(20);
    await r.idle();
    assert.equal(listings, 1, 'the first pass runs when leadership starts it');
    await clock.advance(599_000);
    assert.equal(listings, 1);
    await clock.advance(1_000);
    await r.idle();
    assert.equal(listings, 2);
    await clock.advance(600_000);
    await r.idle();
    assert.deepEqual(reports, ['ok', 'failed', 'ok'], 'a failed listing is reported and the next pass still comes');
    await r.stop();
    await clock.advance(3_600_000);
    assert.equal(listings, 3, 'no pass after leadership is lost');
    assert.equal(clock.pendingTimers, 0);
  } finally {
    await ledger.close();
  }
});
