// Every way of placing a hold goes through the same checks: windows that start
// no later than they end, an `until` in the future unless it is the one the
// hold already had. A QuarantineHold resource that fails them is a permanent
// InvalidHold (its Reconciled condition), and nothing reaches the ledger.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import { upsertHold, validateHold, HoldError, HoldExistsError, type HoldInput } from '../../operator/capture/holds.ts';
import { holdController } from '../../operator/kube/controllers/hold.ts';
import { PermanentError } from '../../operator/kube/runtime/index.ts';
import { QuarantineHold } from '../../operator/resources/hold.ts';
import { verifyAudit } from '../../operator/ledger/audit.ts';
import { silentLogger } from '../../operator/log.ts';
import type { ReconcileContext } from '../../operator/kube/runtime/controller.ts';
import { FakeClock } from '../../operator/kube/runtime/clock.ts';

const T0 = Date.parse('2026-05-01T12:00:00Z');
const HOUR = 3_600_000;

/** A small deterministic generator, so that a failure names a reproducible case. */
function* windows(seed: number, n: number): Generator<{ from: number; to: number }> {
  let x = seed;
  const next = () => (x = (x * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < n; i++) yield { from: T0 + Math.floor((next() - 0.5) * 100 * HOUR), to: T0 + Math.floor((next() - 0.5) * 100 * HOUR) };
}

describe('hold validation', () => {
  test('a window is accepted exactly when it does not start after it ends', () => {
    for (const w of windows(7, 500)) {
      const h: HoldInput = { name: 'w', selector: { addresses: [{ address: '192.0.2.1', from: new Date(w.from).toISOString(), to: new Date(w.to).toISOString() }] }, actor: 'a' };
      const ok = (() => {
        try {
          validateHold(h, undefined, new Date(T0));
          return true;
        } catch (err) {
          assert.ok(err instanceof HoldError);
          assert.match(err.message, /starts .* after it ends/);
          return false;
        }
      })();
      assert.equal(ok, w.from <= w.to, `${new Date(w.from).toISOString()} .. ${new Date(w.to).toISOString()}`);
    }
  });

  test('until must be in the future, unless the hold already had it (a lapsed manifest hold stays valid)', async () => {
    const ledger = openLedgerDb('sqlite::memory:');
    await migrateToLatest(ledger);
    const base = { name: 'm', selector: { projects: ['hep'] }, actor: 'manifests' };
    await assert.rejects(upsertHold(ledger.db, { ...base, until: new Date(T0 - 1) }, new Date(T0)), /until 2026-05-01T11:59:59.999Z is not in the future/);
    await assert.rejects(upsertHold(ledger.db, { ...base, until: new Date(T0) }, new Date(T0)), /not in the future/);
    await upsertHold(ledger.db, { ...base, until: new Date(T0 + HOUR) }, new Date(T0));
    // Two hours later the hold has lapsed; the same manifest applies again without error, a changed until does not.
    await upsertHold(ledger.db, { ...base, until: new Date(T0 + HOUR) }, new Date(T0 + 2 * HOUR));
    await assert.rejects(upsertHold(ledger.db, { ...base, until: new Date(T0 + HOUR + 1) }, new Date(T0 + 2 * HOUR)), /not in the future/);
    await assert.rejects(upsertHold(ledger.db, { ...base, selector: { projects: ['astro'] }, until: new Date(T0 + 3 * HOUR) }, new Date(T0 + 2 * HOUR), { ifExists: 'refuse' }), HoldExistsError);
    assert.equal((await verifyAudit(ledger.db)).ok, true);
    await ledger.close();
  });

  test('a QuarantineHold whose until is past is InvalidHold and is not placed', async () => {
    const ledger = openLedgerDb('sqlite::memory:');
    await migrateToLatest(ledger);
    const resource = QuarantineHold.parse({
      apiVersion: 'quarantine.forensics.dev/v1alpha1', kind: 'QuarantineHold', metadata: { name: 'late', namespace: 'security', uid: 'u1' },
      spec: { selector: { projects: ['hep'] }, reason: 'scan', caseId: 'C-1', until: '2026-04-30T00:00:00Z' },
    });
    const ctx: ReconcileContext = {
      key: 'security/late', clock: new FakeClock(T0), log: silentLogger, signal: new AbortController().signal, raw: resource,
      status: async () => undefined, event: async () => undefined, addFinalizer: async () => undefined, removeFinalizer: async () => undefined,
    };
    await assert.rejects(holdController(ledger.db).reconcile(resource, ctx), (err: unknown) => err instanceof PermanentError && err.reason === 'InvalidHold' && /is not in the future/.test(err.message));
    assert.deepEqual(await ledger.db.selectFrom('holds').selectAll().execute(), []);
    await ledger.close();
  });
});
