// Two replicas on one PostgreSQL ledger (each with its own connection pool)
// reconcile the same capture intents at once, as during a lease blip: every
// capture step runs once, and the replica that lost a step's claim stops there.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { applyBatch } from '../../operator/ledger/apply.ts';
import { CaptureEngine } from '../../operator/capture/engine.ts';
import { CloudCapture } from '../../operator/capture/cloud-capture.ts';
import { recordCaptureIntents } from '../../operator/capture/intents.ts';
import type { Policy } from '../../operator/domain/policy.ts';
import { FakeClock } from '../../operator/kube/runtime/clock.ts';
import { silentLogger } from '../../operator/log.ts';
import { FakeBlockStore } from '../support/fake-block-store.ts';
import { notification, instanceEvent } from '../support/events.ts';
import { createTestDatabase, type TestDatabase } from '../support/pg.ts';

const YEAR = 365 * 86_400_000;
const policy: Policy = {
  name: 'legal', selector: {}, capture: { mode: 'onDelete', disks: { root: true, ephemeral: true, volumes: true }, flatten: false, releaseResources: false },
  retentionMs: YEAR, capacity: { onFull: 'evictOldest' }, sweep: { schedule: '0 3 * * *', timeZone: 'UTC', dryRun: false },
};

const cleanup: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

test('two replicas racing the same intents on one PostgreSQL ledger run each capture step once', { timeout: 120_000 }, async () => {
  const tdb: TestDatabase = await createTestDatabase();
  cleanup.push(() => tdb.drop());
  const ledgers: LedgerDb[] = [openLedgerDb(tdb.url), openLedgerDb(tdb.url)];
  for (const l of ledgers) cleanup.push(() => l.close());
  const [la, lb] = ledgers as [LedgerDb, LedgerDb];
  await migrateToLatest(la);
  const blocks = new FakeBlockStore();
  const clock = new FakeClock('2026-05-01T16:30:00Z');
  const vms = Array.from({ length: 12 }, () => randomUUID());
  for (const vm of vms) await blocks.importImage({ stream: Readable.from([Buffer.alloc(4096, 7)]) }, { pool: 'vms', image: `${vm}_disk` });

  const steps = new Map<string, string[]>();
  const conflicts: string[] = [];
  const replicas = (['replica-a', 'replica-b'] as const).map((owner, i) => {
    const db = (i === 0 ? la : lb).db;
    const engine = new CaptureEngine({
      db, blocks, quarantine: { pool: 'quarantine' }, logger: silentLogger, clock: () => clock.now(), owner,
      beforeStep: async (id, step) => {
        steps.set(id, [...(steps.get(id) ?? []), step]);
        // Let the other replica's worker run in between.
        await new Promise<void>((resolve) => setImmediate(resolve));
      },
      onConflict: (_id, step) => conflicts.push(`${owner}:${step}`),
    });
    return new CloudCapture({
      config: { cloud: 'cern', cloudType: 'openstack', watchedPools: ['vms'], trash: { arm: false, expireSeconds: 0, scanIntervalSeconds: 600 } },
      db, blocks, engine, policies: () => [policy], logger: silentLogger, clock, relistMs: 30_000,
    });
  });
  for (const r of replicas) r.start();
  for (const vm of vms) {
    const n = notification([instanceEvent('delete.start', { id: vm })], clock.now());
    await applyBatch(la.db, [{ notification: n, body: '{}' }], (trx, m) => recordCaptureIntents(trx, m, { cloud: 'cern', policies: () => [policy] }));
    for (const r of replicas) r.onNotification(n);
  }
  await Promise.all(replicas.map((r) => r.idle()));
  await clock.advance(30_000);
  await Promise.all(replicas.map((r) => r.idle()));
  for (const r of replicas) await r.stop();

  const rows = await la.db.selectFrom('quarantines').selectAll().execute();
  assert.equal(rows.length, vms.length);
  for (const row of rows) {
    assert.equal(row.state, 'quarantined');
    assert.equal(row.expires_at, (row.captured_at ?? 0) + YEAR);
    assert.deepEqual(steps.get(row.id), ['snapshotting', 'cloning'], `each step of ${row.id} ran once`);
  }
  const open = await la.db.selectFrom('capture_intents').select('id').where('state', '=', 'open').execute();
  assert.deepEqual(open, []);
});
