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
import { MAX_POSTED_LINES } from '../../operator/http/investigation-routes.ts';
import { silentLogger } from '../../operator/log.ts';
import { ingestFiles } from '../../operator/cli/ingest.ts';
import { attributeReading, readLogFiles } from '../../operator/cli/trace-log.ts';
import { openCase } from '../../operator/capture/cases.ts';
import { TransferStore } from '../../operator/capture/transfers.ts';
import { FIP1, vmA, vmB, vmC, writeAbuseReport } from '../support/abuse-report.ts';
import { QuarantineStore } from '../../operator/capture/quarantine-store.ts';
import { runCli } from '../../operator/cli/program.ts';
import { mispProblems } from '../support/misp.ts';

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

  test('attribution: more lines than a request takes are refused with 413, before any is attributed', async () => {
    const lines = Array.from({ length: MAX_POSTED_LINES + 1 }, (_, i) => `10.0.0.${i % 250},2026-05-01T16:00:00Z`).join('\n');
    const r = await fetch(`${http.url}/api/v1/attribution`, { method: 'POST', headers: auth, body: lines });
    assert.equal(r.status, 413);
    assert.match(((await r.json()) as { error: string }).error, /^10001 log lines, more than 10000 a request: post them in parts$/);
    const ok = await fetch(`${http.url}/api/v1/attribution`, { method: 'POST', headers: auth, body: lines.slice(0, lines.lastIndexOf('\n')) });
    assert.equal(ok.status, 200);
    assert.equal(((await ok.json()) as { counts: { lines: number } }).counts.lines, MAX_POSTED_LINES);
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
    const m = await get('/api/v1/cases/CERT-7/misp');
    assert.equal(m.status, 200);
    assert.deepEqual(mispProblems(m.body), []);
    assert.equal((await get('/api/v1/cases/NOPE/misp')).status, 404);
  });

  test('GET /api/v1/quarantines answers as `images ls -o json`, in pages; one quarantine as `images show -o json`', async () => {
    const store = new QuarantineStore(ledger.db);
    for (const [n, instance] of [vmA.id, vmB.id, vmC.id].entries()) {
      const { row } = await store.plan({
        id: `q${n}`, cloud: 'cern', instance_id: instance, disk: 'disk', mode: 'onDelete', policy: 'default', source_pool: 'vms', source_namespace: null, source_image: `${instance}_disk`,
        source_image_id: `img-${n}`, anchor_image: null, snapshot: 'quarantine', location_pool: 'quarantine', location_namespace: 'ns', location_image: `${instance}_disk`,
        planned_at: Date.parse('2026-05-01T17:00:00Z') + n, provenance: '{"by":"test"}',
      }, new Date());
      await store.update(row.id, new Date(), { state: n === 2 ? 'purged' : 'quarantined', digest: 'c'.repeat(64), bytes: 1 << 20, captured_at: Date.parse('2026-05-01T17:01:00Z'), expires_at: Date.parse('2026-06-01T00:00:00Z') });
    }
    // The CLI on the same ledger file would need a path; its JSON shape is what matters, so compare field names and values.
    const dbFile = join(dir, 'cli.db');
    let cliOut = '';
    const io = { out: (x: string) => { cliOut += x; }, err: () => {}, env: { LOG_LEVEL: 'silent' } };
    await runCli(['--db', `sqlite:${dbFile}`, 'ingest', '--cloud', 'cern', report.notifications], io);
    const cliLedger = openLedgerDb(`sqlite:${dbFile}`);
    try {
      const cliStore = new QuarantineStore(cliLedger.db);
      for (const q of await store.list({})) {
        await cliStore.plan({
          id: q.id, cloud: q.cloud, instance_id: q.instance_id, disk: q.disk, mode: q.mode, policy: q.policy, source_pool: q.source_pool, source_namespace: q.source_namespace,
          source_image: q.source_image, source_image_id: q.source_image_id, anchor_image: null, snapshot: 'quarantine', location_pool: q.location_pool,
          location_namespace: q.location_namespace, location_image: q.location_image, planned_at: q.planned_at, provenance: q.provenance,
        }, new Date());
        await cliStore.update(q.id, new Date(), { state: q.state, digest: q.digest, bytes: q.bytes, captured_at: q.captured_at, expires_at: q.expires_at });
      }
    } finally {
      await cliLedger.close();
    }
    cliOut = '';
    await runCli(['--db', `sqlite:${dbFile}`, 'images', 'ls', '-o', 'json'], io);
    // The CLI's ledger has no case, so nothing holds its quarantines; here the case CERT-7 holds them all.
    const fromCli = (JSON.parse(cliOut) as Array<Record<string, unknown>>).map((q) => ({ ...q, heldBy: ['case-CERT-7'] }));

    const all = await get('/api/v1/quarantines');
    assert.equal(all.status, 200);
    const entries = all.body['entries'] as Array<{ id: string }>;
    assert.deepEqual(entries.map((q) => q.id), ['q0', 'q1']);
    assert.deepEqual(entries, fromCli);
    const first = await get('/api/v1/quarantines?all=true&limit=2');
    assert.deepEqual([(first.body['entries'] as Array<{ id: string }>).map((q) => q.id), first.body['next']], [['q0', 'q1'], 'q1']);
    const second = await get('/api/v1/quarantines?all=true&limit=2&after=q1');
    assert.deepEqual([(second.body['entries'] as Array<{ id: string; state: string }>).map((q) => [q.id, q.state]), second.body['next']], [[['q2', 'purged']], null]);
    const one = await get('/api/v1/quarantines/q0');
    assert.equal(one.status, 200);
    assert.equal(one.body['location'], `quarantine/ns/${vmA.id}_disk`);
    assert.deepEqual(one.body, fromCli[0]);
    for (const bad of ['state=lost', 'limit=0', 'after=nope']) assert.equal((await get(`/api/v1/quarantines?${bad}`)).status, 400, bad);
  });

  test('GET /api/v1/transfers lists restores and exports (by state, by quarantine) and shows one', async () => {
    const store = new TransferStore(ledger.db);
    const t = await store.request({ id: 'kube:u-9', quarantineId: 'q-1', cloud: 'cern', spec: { kind: 'export', path: '/evidence/q-1.raw' }, actor: 'alice', requestedBy: 'kubernetes:security/r9' }, new Date('2026-05-02T10:00:00Z'));
    await store.request({ quarantineId: 'q-2', cloud: 'cern', spec: { kind: 'restore', pool: 'images', image: 'copy' }, actor: 'bob', requestedBy: 'cli' }, new Date('2026-05-02T11:00:00Z'));
    const all = await get('/api/v1/transfers');
    assert.deepEqual((all.body as unknown as Array<{ quarantine: string; kind: string; target: string; state: string }>).map((x) => [x.quarantine, x.kind, x.target, x.state]),
      [['q-2', 'restore', 'images/copy', 'pending'], ['q-1', 'export', '/evidence/q-1.raw', 'pending']]);
    assert.equal((await get('/api/v1/transfers?quarantine=q-1')).body.length, 1);
    assert.equal((await get('/api/v1/transfers?state=running')).body.length, 0);
    assert.equal((await get('/api/v1/transfers?state=nonsense')).status, 400);
    const one = await get(`/api/v1/transfers/${encodeURIComponent(t.id)}`);
    assert.equal(one.status, 200);
    assert.equal(one.body['requestedBy'], 'kubernetes:security/r9');
    assert.equal((await get('/api/v1/transfers/nope')).status, 404);
  });
});
