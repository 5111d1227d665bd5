// The investigator's routes of the query API: log lines posted and attributed
// in one request, holders over a window, holds, the audit trail in pages, and
// a case's report — so an investigator needs no database URL on a laptop.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { createMetrics } from '../../operator/http/metrics.ts';
import { startHttp } from '../../operator/http/server.ts';
import { silentLogger } from '../../operator/log.ts';
import { ingestFiles } from '../../operator/cli/ingest.ts';
import { attributeReading, readLogFiles } from '../../operator/cli/trace-log.ts';
import { openCase } from '../../operator/capture/cases.ts';
import { FIP1, vmA, vmB, vmC, writeAbuseReport } from '../support/abuse-report.ts';

describe('http: investigation routes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qop-http-inv-'));
  const report = writeAbuseReport(dir);
  const token = 'inv-token';
  let ledger: LedgerDb;
  let http: Awaited<ReturnType<typeof startHttp>>;
  before(async () => {
    ledger = openLedgerDb('sqlite::memory:');
    await migrateToLatest(ledger);
    await ingestFiles(ledger.db, 'cern', [report.notifications]);
    const a = await attributeReading(ledger, await readLogFiles(report.files, { date: '2026-05-01' }));
    await openCase(ledger.db, { name: 'CERT-7', reason: 'flood', lines: a.lines, unreadable: a.unread, actor: 'inv' }, new Date('2026-05-02T09:00:00Z'));
    http = await startHttp({ host: '127.0.0.1', port: 0, db: ledger.db, metrics: createMetrics(ledger.db, { isLeader: () => false, queueDepth: async () => [] }), apiToken: token, ready: async () => ({ ready: true, reasons: [] }), logger: silentLogger });
  });
  after(async () => {
    await http.close();
    await ledger.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const auth = { authorization: `Bearer ${token}` };
  const get = async (path: string) => {
    const r = await fetch(`${http.url}${path}`, { headers: auth });
    return { status: r.status, body: await r.json() as Record<string, unknown> };
  };

  test('POST /api/v1/attribution: the lines attributed, owners summarised, as the CLI does', async () => {
    const batch = report.files.find((f) => basename(f) === 'batch.log') ?? '';
    const r = await fetch(`${http.url}/api/v1/attribution?date=2026-05-01`, { method: 'POST', headers: auth, body: readFileSync(batch, 'utf8') + 'garbage\n' });
    assert.equal(r.status, 200);
    const j = await r.json() as { format: string; counts: unknown; lines: Array<{ holders: Array<{ instance: { id: string } }> }>; owners: Array<{ user: string; lines: number }>; unreadable: Array<{ lineNo: number }> };
    assert.equal(j.format, 'batch');
    assert.deepEqual(j.lines.map((l) => l.holders[0]?.instance.id), [vmA.id, vmC.id, vmB.id]);
    assert.deepEqual(j.owners.map((o) => [o.user, o.lines]), [['alice', 2], ['bob', 1]]);
    assert.deepEqual(j.unreadable.map((u) => u.lineNo), [4]);
    assert.deepEqual(j.counts, { lines: 4, attributed: 3, unattributed: 0, unreadable: 1 });
  });

  test('attribution: token required, bad options 400, GET refused', async () => {
    assert.equal((await fetch(`${http.url}/api/v1/attribution`, { method: 'POST', body: 'x' })).status, 401);
    assert.equal((await fetch(`${http.url}/api/v1/attribution?tz=Mars/Olympus`, { method: 'POST', headers: auth, body: 'x' })).status, 400);
    assert.equal((await fetch(`${http.url}/api/v1/attribution`, { headers: auth })).status, 405);
    assert.equal((await fetch(`${http.url}/api/v1/holds`, { method: 'POST', headers: auth, body: 'x' })).status, 405);
  });

  test('GET /api/v1/trace/window: every holder during the window', async () => {
    const r = await get(`/api/v1/trace/window?address=${FIP1}&from=2026-05-01T16:00:00Z&to=2026-05-01T17:00:00Z`);
    assert.equal(r.status, 200);
    assert.deepEqual((r.body['holders'] as Array<{ instance: { id: string } }>).map((h) => h.instance.id), [vmA.id, vmB.id]);
    assert.equal((await get(`/api/v1/trace/window?address=${FIP1}&from=2026-05-01T17:00:00Z&to=2026-05-01T16:00:00Z`)).status, 400);
  });

  test('GET /api/v1/holds and /api/v1/audit in pages', async () => {
    const holds = await get('/api/v1/holds');
    assert.deepEqual((holds.body as unknown as Array<{ name: string; caseId: string }>).map((h) => [h.name, h.caseId]), [['case-CERT-7', 'CERT-7']]);
    const p1 = await get('/api/v1/audit?limit=1');
    const e1 = p1.body['entries'] as Array<{ seq: number; action: string }>;
    assert.deepEqual(e1.map((e) => e.action), ['hold.add']);
    assert.equal(p1.body['next'], 1);
    const p2 = await get(`/api/v1/audit?limit=1&after=${String(p1.body['next'])}`);
    assert.deepEqual((p2.body['entries'] as Array<{ action: string }>).map((e) => e.action), ['case.open']);
    assert.equal(p2.body['next'], null);
    assert.equal((await get('/api/v1/audit?limit=0')).status, 400);
  });

  test('GET /api/v1/cases and a case\'s report', async () => {
    const list = await get('/api/v1/cases');
    assert.deepEqual((list.body as unknown as Array<{ name: string; createdAt: string }>).map((c) => [c.name, c.createdAt]), [['CERT-7', '2026-05-02T09:00:00.000Z']]);
    const r = await get('/api/v1/cases/CERT-7/report');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body['counts'], { lines: 9, attributed: 6, unattributed: 1, unreadable: 2, instances: 3, quarantines: 0 });
    assert.equal((await get('/api/v1/cases/NOPE/report')).status, 404);
  });
});
