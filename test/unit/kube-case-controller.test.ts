// The QuarantineCase controller: a case opened once from the resource's log
// lines (attribution, hold, audit), its outcome in the status, a second
// reconcile changing nothing, and a bad case refused with a reason.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../operator/log.ts';
import { FakeClock, settle } from '../../operator/kube/runtime/clock.ts';
import { ControllerRunner } from '../../operator/kube/runtime/controller.ts';
import { EventRecorder } from '../../operator/kube/runtime/events.ts';
import { MemoryEventSink, MemoryObjectClient } from '../../operator/kube/runtime/fakes.ts';
import { findCondition } from '../../operator/kube/runtime/status.ts';
import { caseController } from '../../operator/kube/controllers/case.ts';
import { LOG_FORMAT_NAMES } from '../../operator/resources/case.ts';
import { LOG_FORMATS } from '../../operator/logs/read.ts';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { ingestFiles } from '../../operator/cli/ingest.ts';
import { listHolds } from '../../operator/capture/holds.ts';
import { REPORT_FILES, vmA, vmB, vmC, writeAbuseReport } from '../support/abuse-report.ts';

describe('QuarantineCase controller', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qop-kcase-'));
  let ledger: LedgerDb;
  before(async () => {
    ledger = openLedgerDb('sqlite::memory:');
    await migrateToLatest(ledger);
    await ingestFiles(ledger.db, 'cern', [writeAbuseReport(dir).notifications]);
  });
  after(async () => {
    await ledger.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function start() {
    const clock = new FakeClock('2026-05-02T09:00:00Z');
    const api = new MemoryObjectClient(() => clock.now());
    const sink = new MemoryEventSink();
    const runner = new ControllerRunner(caseController(ledger.db), {
      client: api, events: new EventRecorder({ sink, clock, log: silentLogger, instance: 'pod-a' }), clock, log: silentLogger, backoff: { baseMs: 1_000, maxMs: 60_000 }, resyncMs: 0,
    });
    return { api, sink, runner };
  }
  const kase = (name: string, spec: object) => ({ apiVersion: 'quarantine.forensics.dev/v1alpha1', kind: 'QuarantineCase', metadata: { name, namespace: 'cert' }, spec });

  test('the resource\'s formats are the formats the CLI reads', () => {
    assert.deepEqual([...LOG_FORMAT_NAMES].sort(), Object.keys(LOG_FORMATS).sort());
  });

  test('opens the case once: hold on the instances, counts and owners in the status', async () => {
    const { api, sink, runner } = start();
    const logs = Object.entries(REPORT_FILES).map(([name, lines]) => ({ name, text: lines.join('\n') + '\n', ...(name === 'batch.log' ? { date: '2026-05-01' } : {}) }));
    api.create(kase('cert-42', { reason: 'flood of 192.0.2.80', logs }));
    await runner.start();
    await runner.idle();
    await settle();
    await runner.idle();
    const stored = api.peek('cert/cert-42');
    const status = stored?.['status'] as { caseName: string; hold: string; lines: number; attributed: number; unreadable: number; owners: Array<{ user: string; lines: number; instances: string[] }> };
    assert.deepEqual({ caseName: status.caseName, hold: status.hold, lines: status.lines, attributed: status.attributed, unreadable: status.unreadable },
      { caseName: 'cert/cert-42', hold: 'case-cert/cert-42', lines: 9, attributed: 6, unreadable: 2 });
    assert.deepEqual(status.owners.map((o) => [o.user, o.lines, o.instances]), [['alice', 4, [vmA.id, vmC.id]], ['bob', 2, [vmB.id]]]);
    assert.equal(findCondition(stored!, 'Opened')?.reason, 'SomeLinesUnreadable');
    const holds = await listHolds(ledger.db);
    assert.deepEqual(holds.map((h) => [h.name, h.caseId, h.createdBy]), [['case-cert/cert-42', 'cert/cert-42', 'kubernetes:cert/cert-42']]);
    assert.deepEqual(sink.list().map((e) => e.reason), ['Opened']);
    // A spec change after opening changes nothing in the ledger.
    api.updateSpec('cert/cert-42', { logs: [{ name: 'x', text: '10.0.0.9,2026-05-01T16:30:00Z\n' }] });
    await settle();
    await runner.idle();
    const audit = await ledger.db.selectFrom('audit').select('action').where('subject', '=', 'case/cert/cert-42').execute();
    assert.deepEqual(audit.map((a) => a.action), ['case.open']);
    assert.equal((api.peek('cert/cert-42')?.['status'] as { lines: number }).lines, 9);
    await runner.stop();
  });

  test('a case whose zone is unknown is refused with the reason in its status', async () => {
    const { api, runner } = start();
    api.create(kase('bad-tz', { logs: [{ name: 'n', text: '10.0.0.5,2026-05-01 16:00:00\n', tz: 'Mars/Olympus' }] }));
    await runner.start();
    await runner.idle();
    await settle();
    await runner.idle();
    const stored = api.peek('cert/bad-tz');
    const reconciled = stored?.['status'] as { conditions: Array<{ type: string; status: string; message: string }> };
    assert.ok(reconciled.conditions.some((c) => c.status === 'False' && /tz "Mars\/Olympus" is not a zone/.test(c.message)), JSON.stringify(reconciled));
    assert.equal((await ledger.db.selectFrom('cases').select('name').where('name', '=', 'cert/bad-tz').execute()).length, 0);
    await runner.stop();
  });
});
