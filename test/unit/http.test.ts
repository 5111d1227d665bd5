// The HTTP face: probes, Prometheus metrics, and the token-protected query API.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { applyBatch } from '../../operator/ledger/apply.ts';
import { createMetrics } from '../../operator/http/metrics.ts';
import { startHttp } from '../../operator/http/server.ts';
import { silentLogger } from '../../operator/log.ts';
import { at, fipEvent, notification } from '../support/events.ts';

describe('http', () => {
  let ledger: LedgerDb;
  let http: Awaited<ReturnType<typeof startHttp>>;
  let ready = false;
  const token = 's3cret-token';
  before(async () => {
    ledger = openLedgerDb('sqlite::memory:');
    await migrateToLatest(ledger);
    await applyBatch(ledger.db, [{ notification: { ...notification([fipEvent('create.end', { id: 'f1', portId: 'port-a', instanceId: 'vm-a' })], at(0)), cloud: 'cern' }, body: '{}' }]);
    const metrics = createMetrics(ledger.db, {
      isLeader: () => true,
      queueDepth: async () => [{ cloud: 'cern', queue: 'quarantine-operator.cern', messages: 7, deadLetterQueue: 'quarantine-operator.cern.dead-letter', deadLetters: 3 }],
    });
    metrics.knownCloud('cern', ['nova', 'neutron', 'unknown']);
    metrics.notifications.inc({ cloud: 'cern', source: 'neutron', outcome: 'applied' });
    http = await startHttp({ host: '127.0.0.1', port: 0, db: ledger.db, metrics, apiToken: token, ready: async () => ({ ready, reasons: ready ? [] : ['cloud cern: not connected to its broker'] }), logger: silentLogger });
  });
  after(async () => {
    await http.close();
    await ledger.close();
  });
  const get = (path: string, auth?: string) => fetch(`${http.url}${path}`, auth === undefined ? {} : { headers: { authorization: `Bearer ${auth}` } });

  test('healthz answers; readyz says why it is not ready, then ok', async () => {
    assert.equal((await get('/healthz')).status, 200);
    const r = await get('/readyz');
    assert.equal(r.status, 503);
    assert.match(await r.text(), /not connected to its broker/);
    ready = true;
    assert.equal((await get('/readyz')).status, 200);
  });

  test('metrics use Prometheus naming and include ledger and queue gauges', async () => {
    const text = await (await get('/metrics')).text();
    assert.match(text, /quarantine_notifications_total\{cloud="cern",source="neutron",outcome="applied"\} 1/);
    assert.match(text, /quarantine_queue_messages\{cloud="cern",queue="quarantine-operator\.cern"\} 7/);
    assert.match(text, /# TYPE quarantine_capture_latency_seconds histogram/);
    assert.match(text, /# HELP quarantine_quarantines /);
    assert.match(text, /quarantine_dead_letter_messages\{cloud="cern",queue="quarantine-operator\.cern\.dead-letter"\} 3/);
    assert.match(text, /^quarantine_leader 1$/m);
    assert.match(text, /^quarantine_build_info\{version="\d+\.\d+\.\d+",nodejs="[^"]+"\} 1$/m);
    assert.match(text, /^quarantine_process_cpu_seconds_total /m);
    assert.doesNotMatch(text, /quarantine_process_process_|quarantine_process_nodejs_/);
    // Known label values start at zero: the first failure is an increase, not a new series.
    assert.match(text, /quarantine_captures_total\{cloud="cern",mode="onDelete",result="failed"\} 0/);
    assert.match(text, /quarantine_capture_races_total\{cloud="cern",mode="onDelete",result="won"\} 0/);
    assert.match(text, /quarantine_notifications_total\{cloud="cern",source="nova",outcome="rejected"\} 0/);
    assert.match(text, /quarantine_capture_latency_seconds_count\{cloud="cern",mode="trash"\} 0/);
    assert.match(text, /quarantine_sweep_deletions_total\{reason="expired"\} 0/);
    assert.match(text, /^quarantine_sweep_failures_total 0$/m);
  });

  test('the API needs the bearer token', async () => {
    assert.equal((await get('/api/v1/trace/ip?address=188.185.194.218&at=2026-05-01T16:10:00Z')).status, 401);
    assert.equal((await get('/api/v1/trace/ip?address=188.185.194.218&at=2026-05-01T16:10:00Z', 'wrong')).status, 401);
  });

  test('trace ip answers with the holder; bad input is a 400; nobody is a 404', async () => {
    const r = await get('/api/v1/trace/ip?address=188.185.194.218&at=2026-05-01T18:10:00%2B02:00', token);
    assert.equal(r.status, 200);
    const body = (await r.json()) as { holders: Array<{ instance: { id: string } | null }> };
    assert.equal(body.holders[0]?.instance?.id, 'vm-a');
    assert.equal((await get('/api/v1/trace/ip?address=188.185.194.218&at=yesterday', token)).status, 400);
    assert.equal((await get('/api/v1/trace/ip?address=188.185.194.218&at=2026-02-30T10:00:00Z', token)).status, 400);
    for (const bad of ['999.1.1.1', '1.2.3']) assert.equal((await get(`/api/v1/trace/ip?address=${bad}&at=2026-05-01T16:10:00Z`, token)).status, 400);
    assert.equal((await get('/api/v1/trace/ip?address=188.185.194.218&at=2020-01-01T00:00:00Z', token)).status, 404);
    assert.equal((await get('/api/v1/quarantines', token)).status, 200);
    assert.equal((await get('/api/v1/quarantines/qnope', token)).status, 404);
  });
});

test('with a certificate the same routes are served over HTTPS', async () => {
  const { execFileSync } = await import('node:child_process');
  const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const https = await import('node:https');
  const dir = mkdtempSync(join(tmpdir(), 'qop-tls-'));
  const ledger = openLedgerDb('sqlite::memory:');
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.crt')], { stdio: 'ignore' });
    const cert = readFileSync(join(dir, 'tls.crt'));
    await migrateToLatest(ledger);
    const metrics = createMetrics(ledger.db, { isLeader: () => false, queueDepth: async () => [] });
    const server = await startHttp({ host: '127.0.0.1', port: 0, db: ledger.db, metrics, apiToken: undefined, ready: async () => ({ ready: true, reasons: [] }), logger: silentLogger, tls: { cert, key: readFileSync(join(dir, 'tls.key')) } });
    try {
      assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      const body = await new Promise<string>((resolve, reject) => {
        https.get(`${server.url}/metrics`, { ca: cert }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(text));
        }).on('error', reject);
      });
      assert.match(body, /^quarantine_leader 0$/m);
      // Plain HTTP to the TLS port is refused rather than answered in clear text.
      await assert.rejects(fetch(server.url.replace('https:', 'http:') + '/healthz'));
    } finally {
      await server.close();
    }
  } finally {
    await ledger.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
