// Retention, capacity, legal holds, investigator reads, and the audit chain,
// on the in-memory block store with an embedded ledger. Time is injected.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { CaptureEngine } from '../../operator/capture/engine.ts';
import { sweep } from '../../operator/capture/sweep.ts';
import { upsertHold, releaseHolds, holdsCovering } from '../../operator/capture/holds.ts';
import { exportQuarantine, restoreQuarantine, verifyQuarantine } from '../../operator/capture/restore.ts';
import { verifyAudit } from '../../operator/ledger/audit.ts';
import { applyBatch } from '../../operator/ledger/apply.ts';
import type { Policy } from '../../operator/domain/policy.ts';
import { silentLogger } from '../../operator/log.ts';
import { FakeBlockStore } from '../support/fake-block-store.ts';
import { fipEvent, notification } from '../support/events.ts';

const DAY = 86_400_000;
const T0 = Date.parse('2026-05-01T16:00:00Z');

function policy(over: Partial<Policy> = {}): Policy {
  return {
    name: 'default', selector: {}, capture: { mode: 'trash', disks: { root: true, ephemeral: true, volumes: false }, flatten: false, releaseResources: false },
    retentionMs: 7 * DAY, capacity: { onFull: 'evictOldest' }, sweep: { schedule: '0 * * * *', timeZone: 'UTC', dryRun: false }, ...over,
  };
}

interface World {
  ledger: LedgerDb;
  blocks: FakeBlockStore;
  engine: CaptureEngine;
  setNow(ms: number): void;
  capture(vm: string, data: string, opts?: { project?: string; user?: string; retentionMs?: number }): Promise<string>;
  sweepNow(dryRun?: boolean, policies?: Policy[]): ReturnType<typeof sweep>;
}

async function world(): Promise<World> {
  const ledger = openLedgerDb('sqlite::memory:');
  await migrateToLatest(ledger);
  const blocks = new FakeBlockStore();
  let now = T0;
  const clock = () => new Date(now);
  const engine = new CaptureEngine({ db: ledger.db, blocks, quarantine: { pool: 'quarantine' }, logger: silentLogger, clock });
  let n = 0;
  return {
    ledger, blocks, engine,
    setNow: (ms) => { now = ms; },
    async capture(vm, data, opts = {}) {
      n += 1;
      const image = { pool: 'vms', image: `${vm}_disk` };
      await blocks.importImage({ stream: Readable.from([Buffer.from(data)]) }, image);
      const row = await engine.capture({
        cloud: 'cern', instanceId: vm, disk: 'disk', mode: 'onDelete', policy: { name: 'default', retentionMs: opts.retentionMs ?? 7 * DAY, flatten: false },
        source: { kind: 'live', image },
        provenance: { cloud: 'cern', instance: { id: vm, name: `vm${n}`, project: opts.project ?? 'hep', user: opts.user ?? 'alice', host: null, image: null, flavor: null, createdAt: null }, addresses: [], deletedAt: null, deletedBy: null, messageId: null },
      });
      return row.id;
    },
    sweepNow: (dryRun = false, policies = [policy()]) => sweep({ db: ledger.db, blocksFor: () => blocks, logger: silentLogger }, { now: new Date(now), dryRun, policies }),
  };
}

const vmId = (i: number) => `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('sweep and holds', () => {
  test('an expired quarantine is deleted for real, with an audit record before the deletion', async () => {
    const w = await world();
    const id = await w.capture(vmId(1), 'a');
    w.setNow(T0 + 7 * DAY - 1);
    assert.deepEqual((await w.sweepNow()).deleted, []);
    w.setNow(T0 + 7 * DAY);
    const r = await w.sweepNow();
    assert.deepEqual(r.deleted.map((d) => [d.id, d.reason]), [[id, 'expired']]);
    assert.deepEqual(await w.blocks.listImages({ pool: 'quarantine' }), []);
    assert.deepEqual(await w.blocks.listTrash({ pool: 'quarantine' }), []);
    assert.equal((await w.engine.store.get(id))?.state, 'purged');
    const actions = (await w.ledger.db.selectFrom('audit').select(['action', 'subject']).orderBy('seq').execute()).map((a) => a.action).filter((a) => !a.startsWith('quarantine.'));
    assert.deepEqual(actions, ['capture', 'sweep.delete']);
    const states = await w.ledger.db.selectFrom('audit').select(['actor', 'details']).where('action', '=', 'quarantine.changed').orderBy('seq', 'desc').limit(2).execute();
    assert.deepEqual(states.map((a) => [a.actor, (JSON.parse(a.details) as { row: { state: string } }).row.state]), [['quarantine-operator/sweep', 'purged'], ['quarantine-operator/sweep', 'expired']]);
    await w.ledger.close();
  });

  test('a removal the quarantine pool would defer to its trash is finished, not deferred', async () => {
    const w = await world();
    await w.blocks.setPoolConfig('quarantine', 'rbd_move_to_trash_on_remove', 'true');
    await w.capture(vmId(1), 'a', { retentionMs: DAY });
    w.setNow(T0 + DAY);
    await w.sweepNow();
    assert.deepEqual(await w.blocks.listTrash({ pool: 'quarantine' }), []);
    await w.ledger.close();
  });

  test('dry run reports and deletes nothing', async () => {
    const w = await world();
    const id = await w.capture(vmId(1), 'a');
    w.setNow(T0 + 8 * DAY);
    const r = await w.sweepNow(true);
    assert.deepEqual(r.wouldDelete.map((d) => d.id), [id]);
    assert.deepEqual(r.deleted, []);
    assert.equal((await w.engine.store.get(id))?.state, 'quarantined');
    await w.ledger.close();
  });

  test('a held quarantine never expires while the hold stands; releasing it hands it to the sweep', async () => {
    const w = await world();
    const a = await w.capture(vmId(1), 'a');
    const b = await w.capture(vmId(2), 'b', { project: 'astro' });
    await upsertHold(w.ledger.db, { name: 'case-42', caseId: 'CERT-2026-042', selector: { instances: [vmId(1)] }, actor: 'investigator', reason: 'flooding incident' }, new Date(T0));
    w.setNow(T0 + 30 * DAY);
    const r = await w.sweepNow();
    assert.deepEqual(r.deleted.map((d) => d.id), [b]);
    assert.deepEqual(r.held, [{ id: a, holds: ['case-42'], expired: true }]);
    await releaseHolds(w.ledger.db, { caseId: 'CERT-2026-042' }, 'investigator', new Date(T0 + 30 * DAY));
    assert.deepEqual((await w.sweepNow()).deleted.map((d) => d.id), [a]);
    assert.equal((await verifyAudit(w.ledger.db)).ok, true);
    await w.ledger.close();
  });

  test('holds by project, by user, and by address within a time window', async () => {
    const w = await world();
    const byProject = await w.capture(vmId(1), 'a', { project: 'hep' });
    const byUser = await w.capture(vmId(2), 'b', { project: 'x', user: 'mallory' });
    const byAddress = await w.capture(vmId(3), 'c', { project: 'y', user: 'bob' });
    const free = await w.capture(vmId(4), 'd', { project: 'z', user: 'carol' });
    await applyBatch(w.ledger.db, [{ notification: { ...notification([fipEvent('update.end', { id: 'f1', portId: 'p3', instanceId: vmId(3) })], new Date(T0 - 3600_000)), cloud: 'cern' }, body: '{}' }]);
    await upsertHold(w.ledger.db, { name: 'p', selector: { projects: ['hep'] }, actor: 'sec' }, new Date(T0));
    await upsertHold(w.ledger.db, { name: 'u', selector: { users: ['mallory'] }, actor: 'sec' }, new Date(T0));
    await upsertHold(w.ledger.db, { name: 'ip', selector: { addresses: [{ address: '188.185.194.218', from: new Date(T0 - 600_000).toISOString(), to: new Date(T0).toISOString() }] }, actor: 'sec' }, new Date(T0));
    await upsertHold(w.ledger.db, { name: 'ip-elsewhen', selector: { addresses: [{ address: '188.185.194.218', to: new Date(T0 - 7200_000).toISOString() }] }, actor: 'sec' }, new Date(T0));
    const rows = await w.engine.store.list();
    const covered = await holdsCovering(w.ledger.db, rows, new Date(T0));
    assert.deepEqual(covered.get(byProject), ['p']);
    assert.deepEqual(covered.get(byUser), ['u']);
    assert.deepEqual(covered.get(byAddress), ['ip']);
    assert.equal(covered.get(free), undefined);
    await w.ledger.close();
  });

  test('a hold with an end date stops protecting after it', async () => {
    const w = await world();
    const a = await w.capture(vmId(1), 'a');
    await upsertHold(w.ledger.db, { name: 'brief', selector: { quarantines: [a] }, until: new Date(T0 + 10 * DAY), actor: 'sec' }, new Date(T0));
    w.setNow(T0 + 9 * DAY);
    assert.deepEqual((await w.sweepNow()).deleted, []);
    w.setNow(T0 + 10 * DAY);
    assert.deepEqual((await w.sweepNow()).deleted.map((d) => d.id), [a]);
    await w.ledger.close();
  });

  test('a hold that selects nothing is refused', async () => {
    const w = await world();
    await assert.rejects(upsertHold(w.ledger.db, { name: 'empty', selector: {}, actor: 'sec' }, new Date(T0)), /selects nothing/);
    await w.ledger.close();
  });

  test('capacity evicts the oldest unheld first and never a held one', async () => {
    const w = await world();
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) {
      w.setNow(T0 + i * 1000);
      ids.push(await w.capture(vmId(i), `disk-${i}`));
    }
    await upsertHold(w.ledger.db, { name: 'keep-oldest', selector: { quarantines: [ids[0] ?? ''] }, actor: 'sec' }, new Date(T0));
    const r = await w.sweepNow(false, [policy({ capacity: { maxCount: 3, onFull: 'evictOldest' } })]);
    assert.deepEqual(r.deleted.map((d) => [d.id, d.reason]), [[ids[1], 'capacity'], [ids[2], 'capacity']]);
    const left = (await w.engine.store.list({ states: ['quarantined'] })).map((q) => q.id);
    assert.deepEqual(left, [ids[0], ids[3], ids[4]]);
    await w.ledger.close();
  });
});

describe('investigator reads', () => {
  test('export streams the disk with its SHA-256, records it, and verify recomputes it', async () => {
    const w = await world();
    const data = 'evidence '.repeat(1000);
    const id = await w.capture(vmId(1), data);
    const chunks: Buffer[] = [];
    const sink = new Writable({ write(c: Buffer, _e, done) { chunks.push(c); done(); } });
    const r = await exportQuarantine({ db: w.ledger.db, blocks: w.blocks, actor: 'alice@cert' }, id, sink, '/evidence/x.raw', { caseId: 'C-1' });
    assert.equal(r.sha256, sha(data));
    assert.equal(Buffer.concat(chunks).toString(), data);
    assert.equal((await w.engine.store.get(id))?.digest, sha(data));
    const v = await verifyQuarantine({ db: w.ledger.db, blocks: w.blocks, actor: 'bob@cert' }, id);
    assert.equal(v.matches, true);
    const audit = await w.ledger.db.selectFrom('audit').select(['action', 'actor']).orderBy('seq').execute();
    assert.deepEqual(audit.slice(5), [{ action: 'quarantine.changed', actor: 'alice@cert' }, { action: 'export', actor: 'alice@cert' }, { action: 'verify', actor: 'bob@cert' }]);
    await w.ledger.close();
  });

  test('restore makes a new image with the same content and never overwrites', async () => {
    const w = await world();
    const id = await w.capture(vmId(1), 'restore me');
    const r = await restoreQuarantine({ db: w.ledger.db, blocks: w.blocks, actor: 'alice' }, id, { pool: 'images', image: 'case-42-disk' });
    assert.equal(r.sha256, sha('restore me'));
    assert.equal(w.blocks.peekData({ pool: 'images', image: 'case-42-disk' }).toString(), 'restore me');
    await assert.rejects(restoreQuarantine({ db: w.ledger.db, blocks: w.blocks, actor: 'alice' }, id, { pool: 'images', image: 'case-42-disk' }), /exists already/);
    await w.ledger.close();
  });
});

describe('audit trail', () => {
  test('a modified or deleted row is detected and named', async () => {
    const w = await world();
    for (let i = 1; i <= 4; i++) await w.capture(vmId(i), `d${i}`);
    const intact = await verifyAudit(w.ledger.db);
    assert.deepEqual([intact.ok, intact.rows, intact.lastSeq, intact.quarantinesChecked, intact.problems], [true, 20, 20, 4, []]);
    await w.ledger.db.updateTable('audit').set({ details: '{"forged":true}' }).where('seq', '=', 2).execute();
    let v = await verifyAudit(w.ledger.db);
    assert.deepEqual(v.problems.map((p) => [p.seq, p.problem]), [[2, 'modified']]);
    await w.ledger.db.deleteFrom('audit').where('seq', '=', 3).execute();
    v = await verifyAudit(w.ledger.db);
    assert.deepEqual(v.problems.map((p) => [p.seq, p.problem]), [[2, 'modified'], [4, 'missing-before'], [4, 'broken-link']]);
    await w.ledger.close();
  });
});
