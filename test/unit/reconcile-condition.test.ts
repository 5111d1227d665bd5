// The Cloud's Reconciled condition from the latest pass of each listing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reconciledStatus } from '../../operator/reconcile/condition.ts';
import { emptyDrift } from '../../operator/domain/inventory.ts';
import type { PassSummary } from '../../operator/ledger/observe.ts';

const pass = (listing: string, over: Partial<PassSummary> = {}): PassSummary => ({
  listing, startedAt: Date.parse('2026-05-01T10:00:00Z'), finishedAt: Date.parse('2026-05-01T10:00:05Z'), outcome: 'ok', error: null, drift: emptyDrift(), ...over,
});

test('Reconciled: Unknown without an API or before the first pass, True without drift, False with drift or a failed listing', () => {
  assert.deepEqual([reconciledStatus(false, []).condition.status, reconciledStatus(false, []).condition.reason], ['Unknown', 'NoApi']);
  assert.equal(reconciledStatus(true, []).condition.reason, 'NoPassYet');
  const clean = reconciledStatus(true, [pass('ports'), pass('servers')]);
  assert.deepEqual([clean.condition.status, clean.condition.reason], ['True', 'NoDrift']);
  assert.equal(clean.field?.lastPassAt, '2026-05-01T10:00:00.000Z');
  const drift = emptyDrift();
  drift.floating.added = 2;
  drift.instance.closed = 1;
  const drifted = reconciledStatus(true, [pass('floatingips', { drift }), pass('servers')]);
  assert.deepEqual([drifted.condition.status, drifted.condition.reason], ['False', 'Drift']);
  assert.match(drifted.condition.message, /3 fact\(s\) the notifications missed \(1 instance closed, 2 floating added\)/);
  assert.deepEqual(drifted.field?.drift?.['floating'], { added: 2, closed: 0 });
  const failed = reconciledStatus(true, [pass('ports', { outcome: 'failed', error: 'GET /v2.0/ports: HTTP 503' })]);
  assert.deepEqual([failed.condition.status, failed.condition.reason], ['False', 'ListingFailed']);
  assert.match(failed.condition.message, /ports: GET \/v2\.0\/ports: HTTP 503/);
});
