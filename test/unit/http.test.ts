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
    const metrics = createMetrics(ledger.db, async () => [{ cloud: 'cern', queue: 'quarantine-operator.cern', messages: 7 }]);
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
    assert.equal((await get('/api/v1/trace/ip?address=188.185.194.218&at=2020-01-01T00:00:00Z', token)).status, 404);
    assert.equal((await get('/api/v1/quarantines', token)).status, 200);
    assert.equal((await get('/api/v1/quarantines/qnope', token)).status, 404);
  });
});
