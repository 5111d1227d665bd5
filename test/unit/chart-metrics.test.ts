// The dashboard, the alert rules and the docs name only metrics the operator
// really exports: every quarantine_* name in them is checked against what
// /metrics serves (with every labelled series started, as a running operator
// does for its clouds).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import { createMetrics } from '../../operator/http/metrics.ts';
import { startHttp } from '../../operator/http/server.ts';
import { silentLogger } from '../../operator/log.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const chart = join(root, 'charts', 'quarantine-operator');

async function exportedNames(): Promise<Set<string>> {
  const ledger = openLedgerDb('sqlite::memory:');
  await migrateToLatest(ledger);
  const metrics = createMetrics(ledger.db, {
    isLeader: () => true,
    queueDepth: async () => [{ cloud: 'lab', queue: 'q', messages: 0, deadLetterQueue: 'q.dead-letter', deadLetters: 0 }],
  });
  metrics.knownCloud('lab', ['nova', 'neutron', 'unknown']);
  metrics.trashArmed.set({ cloud: 'lab', pool: 'vms' }, 1);
  metrics.sweepDone('default', { dryRun: false, at: '', deleted: [], wouldDelete: [], held: [], failed: [] }, new Date());
  metrics.auditVerificationOk.set(1);
  metrics.reconcilePasses.inc({ cloud: 'lab', listing: 'ports', outcome: 'ok' }, 0);
  metrics.reconcileLastDrift.set({ cloud: 'lab', kind: 'fixed', change: 'added' }, 0);
  metrics.reconcileLastPass.set({ cloud: 'lab' }, 1);
  metrics.auditVerificationTime.set(1);
  metrics.observeReconciles(() => [{ kind: 'QuarantineHold', failing: 0 }]);
  const http = await startHttp({ host: '127.0.0.1', port: 0, db: ledger.db, metrics, apiToken: undefined, ready: async () => ({ ready: true, reasons: [] }), logger: silentLogger });
  try {
    const text = await (await fetch(`${http.url}/metrics`)).text();
    // Series as served (a name with no sample is not exported in any useful sense).
    return new Set([...text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/gm)].map((m) => m[1] ?? ''));
  } finally {
    await http.close();
    await ledger.close();
  }
}

function namesIn(text: string): Set<string> {
  return new Set([...text.matchAll(/\bquarantine_[a-z0-9_]+\b/g)].map((m) => m[0]));
}

test('every metric the dashboard, the alert rules and the monitoring docs name is served on /metrics', async () => {
  const exported = await exportedNames();
  const sources: Record<string, string> = {
    'dashboard': readFileSync(join(chart, 'dashboards', 'quarantine-operator.json'), 'utf8'),
    'alert rules': readFileSync(join(chart, 'templates', 'prometheusrule.yaml'), 'utf8'),
    'docs/cloud-operators.md': readFileSync(join(root, 'docs', 'cloud-operators.md'), 'utf8'),
  };
  for (const [where, text] of Object.entries(sources)) {
    const names = namesIn(text);
    assert.ok(names.size >= 5, `${where} names metrics`);
    // A histogram's bare name stands for its family (docs); queries use its _bucket/_sum/_count series.
    const missing = [...names].filter((n) => !exported.has(n) && !exported.has(`${n}_bucket`));
    assert.deepEqual(missing, [], `${where} names metrics that /metrics does not serve`);
  }
  // Histograms are queried through their series, as Prometheus stores them.
  assert.ok(namesIn(sources['dashboard'] ?? '').has('quarantine_capture_latency_seconds_bucket'));
});

test('the check is not vacuous: a misspelt or doubled-prefix name is caught', async () => {
  const exported = await exportedNames();
  assert.ok(!exported.has('quarantine_process_process_cpu_seconds_total'));
  assert.ok(!exported.has('quarantine_capture_latency_seconds') && exported.has('quarantine_capture_latency_seconds_bucket'), 'a histogram is served as its series');
  assert.ok(!exported.has('quarantine_captures_failed_total'));
  assert.ok(exported.has('quarantine_process_cpu_seconds_total'));
});
