// The capture reconcilers on the in-memory block store, SQLite ledger and a
// fake clock: intents recorded with the notification, acted on from the
// ledger alone, across leadership changes and crashes.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import { applyBatch } from '../../operator/ledger/apply.ts';
import { CaptureEngine } from '../../operator/capture/engine.ts';
import { CloudCapture } from '../../operator/capture/cloud-capture.ts';
import { recordCaptureIntents } from '../../operator/capture/intents.ts';
import type { CaptureState } from '../../operator/capture/quarantine-store.ts';
import type { Policy } from '../../operator/domain/policy.ts';
import type { DecodedNotification } from '../../operator/domain/events.ts';
import type { CloudApi } from '../../operator/clouds/openstack.ts';
import { FakeClock } from '../../operator/kube/runtime/clock.ts';
import { silentLogger } from '../../operator/log.ts';
import { FakeBlockStore } from '../support/fake-block-store.ts';
import { notification, instanceEvent } from '../support/events.ts';

const VM = '6f1b7a52-3c1e-4d7b-9a57-0d9a5c1f2e11';
const VM2 = '0a3c9e44-5d2b-4c1a-8f6e-2b7d9c0e1f22';
const DAY = 86_400_000;
const YEAR = 365 * DAY;
const content = Buffer.from('evidence\n'.repeat(512));

function policy(over: Partial<Policy['capture']> = {}, rest: Partial<Policy> = {}): Policy {
  return {
    name: 'legal', selector: {}, capture: { mode: 'onDelete', disks: { root: true, ephemeral: true, volumes: true }, flatten: false, releaseResources: false, ...over },
    retentionMs: YEAR, capacity: { onFull: 'evictOldest' }, sweep: { schedule: '0 3 * * *', timeZone: 'UTC', dryRun: false }, ...rest,
  };
}

interface Opts {
  policies?: Policy[];
  beforeStep?: (id: string, step: CaptureState) => Promise<void>;
  beforeWarning?: (id: string) => Promise<void>;
  api?: CloudApi;
  /** Who the replica is (distinct per pod). */
  owner?: string;
}

async function setup(o: Opts = {}) {
  const ledger = openLedgerDb('sqlite::memory:');
  await migrateToLatest(ledger);
  const blocks = new FakeBlockStore();
  for (const vm of [VM, VM2]) await blocks.importImage({ stream: Readable.from([content]) }, { pool: 'vms', image: `${vm}_disk` });
  const clock = new FakeClock('2026-05-01T16:30:00Z');
  const policies = o.policies ?? [policy()];
  const world = { ledger, blocks, clock, policies };
  return { ...world, ...replica(world, o) };
}

/** One operator process on the shared ledger and cluster: its own engine and reconcilers. */
function replica(w: { ledger: Awaited<ReturnType<typeof openLedgerDb>>; blocks: FakeBlockStore; clock: FakeClock; policies: Policy[] }, o: Opts = {}) {
  const conflicts: string[] = [];
  const engine = new CaptureEngine({
    db: w.ledger.db, blocks: w.blocks, quarantine: { pool: 'quarantine' }, logger: silentLogger, clock: () => w.clock.now(),
    onConflict: (_id, step) => conflicts.push(step), ...(o.beforeStep === undefined ? {} : { beforeStep: o.beforeStep }),
    ...(o.owner === undefined ? {} : { owner: o.owner }),
  });
  const capture = new CloudCapture({
    config: { cloud: 'cern', cloudType: 'openstack', watchedPools: ['vms'], trash: { arm: false, expireSeconds: 0, scanIntervalSeconds: 600 } },
    db: w.ledger.db, blocks: w.blocks, engine, policies: () => w.policies, logger: silentLogger, clock: w.clock,
    orphanGraceMs: 90_000, relistMs: 30_000, api: o.api, beforeWarning: o.beforeWarning,
  });
  /** Applies a notification as intake does (intents in its transaction), then tells the reconcilers unless `quiet`. */
  const deliver = async (n: DecodedNotification, quiet = false) => {
    await applyBatch(w.ledger.db, [{ notification: n, body: '{}' }], (trx, m) => recordCaptureIntents(trx, m, { cloud: 'cern', policies: () => w.policies }));
    if (!quiet) capture.onNotification(n);
  };
  return { engine, capture, deliver, conflicts };
}

const warning = (vm = VM, action: 'delete.start' | 'soft_delete.end' | 'delete.end' | 'restore.end' = 'delete.start', when = new Date('2026-05-01T16:30:00Z')) =>
  notification([instanceEvent(action, { id: vm })], when);

async function quarantined(ledger: { db: Awaited<ReturnType<typeof openLedgerDb>>['db'] }, vm = VM) {
  return ledger.db.selectFrom('quarantines').selectAll().where('instance_id', '=', vm).where('state', '=', 'quarantined').execute();
}

describe('capture reconcilers', () => {
  test('leadership lost and regained, then a delete is captured', async () => {
    const { ledger, capture, deliver } = await setup();
    capture.start();
    await capture.stop();
    capture.start();
    await deliver(warning());
    await capture.idle();
    const rows = await quarantined(ledger);
    assert.equal(rows.length, 1);
    assert.equal(capture.stats.racesWon, 1);
    await capture.stop();
    await ledger.close();
  });

  test('a replica that does not lead captures the warnings it applies at once; orphan adoption stays with the leader', async () => {
    // Not isolated, so that the disk stays pinned and there is an orphan to adopt.
    const { ledger, blocks, clock, capture, deliver } = await setup({ policies: [policy({ isolate: false })] });
    capture.follow();
    await deliver(warning());
    await capture.idle();
    assert.equal((await quarantined(ledger)).length, 1, 'no relist needed: the race with the delete does not wait');
    await deliver(warning(VM, 'delete.end', clock.now()));
    await clock.advance(120_000);
    await capture.idle();
    assert.equal((await blocks.listImages({ pool: 'vms' })).includes(`${VM}_disk`), true, 'not adopted by a follower');
    capture.start();
    await capture.idle();
    assert.equal((await blocks.listImages({ pool: 'vms' })).includes(`${VM}_disk`), false, 'adopted once it leads');
    await capture.close();
    await ledger.close();
  });

  test('a warning applied while no replica leads is captured when one starts leading', async () => {
    const { ledger, capture, deliver } = await setup();
    await deliver(warning());
    assert.equal((await quarantined(ledger)).length, 0);
    const [intent] = await ledger.db.selectFrom('capture_intents').selectAll().execute();
    assert.equal(intent?.state, 'open');
    assert.equal(intent?.kind, 'live');
    capture.start();
    await capture.idle();
    assert.equal((await quarantined(ledger)).length, 1);
    assert.equal((await ledger.db.selectFrom('capture_intents').select('state').executeTakeFirst())?.state, 'done');
    await capture.stop();
    await ledger.close();
  });

  test('a warning committed but never notified (a crash before onApplied) is captured by the relist, without a leader change', async () => {
    const { ledger, clock, capture, deliver } = await setup();
    capture.start();
    await capture.idle();
    await deliver(warning(), true);
    await capture.idle();
    assert.equal((await quarantined(ledger)).length, 0, 'nothing told the reconcilers');
    await clock.advance(30_000);
    await capture.idle();
    assert.equal((await quarantined(ledger)).length, 1);
    await capture.stop();
    await ledger.close();
  });

  for (const step of ['warned', 'snapshotting', 'cloning'] as const) {
    test(`a one-year capture killed at ${step} resumes in a new process with a one-year expiry`, async () => {
      // Once killed, this process does nothing more: every later step dies too.
      let crash = true;
      const die = async () => {
        crash = false;
        throw new Error(`killed at ${step}`);
      };
      const w = await setup({
        ...(step === 'warned' ? { beforeWarning: die } : { beforeStep: async (_id: string, s: CaptureState) => { if (s === step) await die(); } }),
      });
      w.capture.start();
      await w.deliver(warning());
      await w.capture.idle();
      await w.capture.stop();
      assert.equal(crash, false, 'the crash happened');
      assert.equal((await quarantined(w.ledger)).length, 0);
      // Long after the warning, another process starts (the policy has meanwhile changed to 7 days).
      await w.clock.advance(3_600_000);
      w.policies.splice(0, w.policies.length, policy({}, { retentionMs: 7 * DAY }));
      const restarted = replica(w);
      restarted.capture.start();
      await restarted.capture.idle();
      const [row] = await quarantined(w.ledger);
      assert.ok(row);
      assert.equal(row.retention_ms, YEAR);
      assert.equal(row.expires_at, (row.captured_at ?? 0) + YEAR, 'the retention decided at the warning, never a fallback');
      await restarted.capture.stop();
      await w.ledger.close();
    });
  }

  test('two replicas reconciling one intent run each capture step once; the loser stops with a conflict', async () => {
    const steps: string[] = [];
    const record = async (_id: string, s: CaptureState) => { steps.push(s); };
    const w = await setup({ beforeStep: record, owner: 'replica-a' });
    const b = replica(w, { beforeStep: record, owner: 'replica-b' });
    // A lease blip: both think they lead, and both see the same intent.
    w.capture.start();
    b.capture.start();
    await w.deliver(warning());
    b.capture.onNotification(warning());
    await Promise.all([w.capture.idle(), b.capture.idle()]);
    await w.clock.advance(30_000);
    await Promise.all([w.capture.idle(), b.capture.idle()]);
    assert.deepEqual(steps.sort(), ['cloning', 'snapshotting']);
    assert.equal((await quarantined(w.ledger)).length, 1);
    await w.capture.stop();
    await b.capture.stop();
    await w.ledger.close();
  });

  test('two engines driving one capture at once: each step runs once, the other engine records a conflict', async () => {
    const steps: string[] = [];
    const record = async (_id: string, s: CaptureState) => { steps.push(s); };
    const w = await setup({ beforeStep: record, owner: 'replica-a' });
    const b = replica(w, { beforeStep: record, owner: 'replica-b' });
    const req = {
      cloud: 'cern', instanceId: VM, disk: 'disk', mode: 'onDelete' as const, policy: { name: 'legal', retentionMs: YEAR, flatten: false },
      source: { kind: 'live' as const, image: { pool: 'vms', image: `${VM}_disk` } },
      provenance: { cloud: 'cern', instance: { id: VM, name: null, project: null, user: null, host: null, image: null, flavor: null, createdAt: null }, addresses: [], deletedAt: null, deletedBy: null, messageId: null },
    };
    await Promise.all([w.engine.capture(req), b.engine.capture(req)]);
    assert.deepEqual(steps.sort(), ['cloning', 'snapshotting']);
    assert.equal(w.conflicts.length + b.conflicts.length, 1);
    const [row] = await quarantined(w.ledger);
    assert.equal(row?.owner, null, 'a finished capture holds no claim');
    await w.ledger.close();
  });

  test('orphan adoption waits for the grace after the instance is gone, then moves the pinned disk out of the cloud\'s listing', async () => {
    // Not isolated: the clone keeps depending on the disk, which the cloud then cannot delete.
    const { ledger, blocks, clock, capture, deliver } = await setup({ policies: [policy({ isolate: false })] });
    capture.start();
    await deliver(warning());
    await capture.idle();
    // The cloud's delete fails: the disk has a snapshot our clone depends on.
    await assert.rejects(blocks.removeImage({ pool: 'vms', image: `${VM}_disk` }));
    await deliver(warning(VM, 'delete.end', clock.now()));
    await capture.idle();
    await clock.advance(60_000);
    await capture.idle();
    assert.deepEqual(await blocks.listImages({ pool: 'vms' }), [`${VM2}_disk`, `${VM}_disk`].sort(), 'still within the grace');
    await clock.advance(31_000);
    await capture.idle();
    assert.deepEqual(await blocks.listImages({ pool: 'vms' }), [`${VM2}_disk`]);
    const [row] = await quarantined(ledger);
    assert.ok(row?.anchor_trash_id);
    assert.equal(capture.stats.adoptedOrphans, 1);
    await capture.stop();
    await ledger.close();
  });

  test('trash mode: a trashed disk becomes a trash intent with the policy decision, and is adopted', async () => {
    const { ledger, blocks, clock, capture, deliver } = await setup({ policies: [policy({ mode: 'trash' }, { retentionMs: 90 * DAY })] });
    capture.start();
    await capture.idle();
    await blocks.moveToTrash({ pool: 'vms', image: `${VM}_disk` });
    await blocks.moveToTrash({ pool: 'vms', image: `${VM2}_disk` });
    await blocks.importImage({ stream: Readable.from([content]) }, { pool: 'vms', image: 'not-a-vm-disk' });
    await blocks.moveToTrash({ pool: 'vms', image: 'not-a-vm-disk' });
    await deliver(warning());
    await clock.advance(50);
    await capture.idle();
    const rows = await ledger.db.selectFrom('quarantines').selectAll().where('state', '=', 'quarantined').execute();
    assert.equal(rows.length, 2);
    for (const r of rows) assert.equal(r.expires_at, (r.captured_at ?? 0) + 90 * DAY);
    const intents = await ledger.db.selectFrom('capture_intents').selectAll().where('kind', '=', 'trash').execute();
    assert.deepEqual(intents.map((i) => i.state), ['done', 'done']);
    assert.deepEqual(await blocks.listImages({ pool: 'vms' }), []);
    await capture.stop();
    await ledger.close();
  });

  test('trash mode: a delete notification scans the trash at once, long before the periodic scan (which stays the safety net)', async () => {
    const { ledger, blocks, capture, deliver } = await setup({ policies: [policy({ mode: 'trash' })] });
    let scans = 0;
    const listTrash = blocks.listTrash.bind(blocks);
    blocks.listTrash = async (...args: Parameters<typeof blocks.listTrash>) => { scans += 1; return listTrash(...args); };
    capture.start();
    await capture.idle();
    assert.equal(scans, 1, 'the scan on becoming leader');
    // Nova removes the disk between shutdown.start and shutdown.end; the clock does not move (scan interval 600 s).
    await blocks.moveToTrash({ pool: 'vms', image: `${VM}_disk` });
    await deliver(warning(VM, 'delete.end'));
    await capture.idle();
    assert.equal((await quarantined(ledger)).length, 1);
    assert.equal(scans, 2);
    await capture.stop();
    await ledger.close();
  });

  test('trash mode: triggered scans are coalesced, one running and one more after it however many deletions arrive', async () => {
    const { ledger, blocks, capture, deliver } = await setup({ policies: [policy({ mode: 'trash' })] });
    let scans = 0;
    let running = 0;
    let overlapped = false;
    const listTrash = blocks.listTrash.bind(blocks);
    blocks.listTrash = async (...args: Parameters<typeof blocks.listTrash>) => {
      scans += 1;
      running += 1;
      if (running > 1) overlapped = true;
      await new Promise((r) => setTimeout(r, 20));
      running -= 1;
      return listTrash(...args);
    };
    capture.start();
    await capture.idle();
    await blocks.moveToTrash({ pool: 'vms', image: `${VM}_disk` });
    await blocks.moveToTrash({ pool: 'vms', image: `${VM2}_disk` });
    const vms = Array.from({ length: 20 }, (_, i) => `0a3c9e44-5d2b-4c1a-8f6e-${String(i).padStart(12, '0')}`);
    for (const vm of [VM, VM2, ...vms]) await deliver(warning(vm, 'delete.end'));
    await capture.idle();
    assert.equal(overlapped, false, 'never two scans of one cloud at once');
    assert.ok(scans <= 3, `${scans} scans: the first on becoming leader, then at most one running and one pending`);
    assert.equal((await quarantined(ledger, VM)).length, 1);
    assert.equal((await quarantined(ledger, VM2)).length, 1);
    await capture.stop();
    await ledger.close();
  });

  test('a delete notification scans the trash only when a trash-mode policy selects the instance', async () => {
    const { ledger, blocks, capture, deliver } = await setup({ policies: [policy({ mode: 'onDelete' }), policy({ mode: 'trash' }, { name: 'other', selector: { clouds: ['elsewhere'] } })] });
    let scans = 0;
    const listTrash = blocks.listTrash.bind(blocks);
    blocks.listTrash = async (...args: Parameters<typeof blocks.listTrash>) => { scans += 1; return listTrash(...args); };
    capture.start();
    await capture.idle();
    const before = scans;
    await deliver(warning(VM2, 'delete.end'));
    await capture.idle();
    assert.equal(scans, before);
    await capture.stop();
    await ledger.close();
  });

  test('softDelete: captured on soft delete, then the server is force-deleted; a restore first cancels the intent', async () => {
    const forced: string[] = [];
    const api = { forceDelete: async (id: string) => { forced.push(id); } } as unknown as CloudApi;
    const { ledger, capture, deliver } = await setup({ policies: [policy({ mode: 'softDelete', releaseResources: true })], api });
    await deliver(warning(VM, 'soft_delete.end'));
    await deliver(warning(VM2, 'soft_delete.end'));
    await deliver(warning(VM2, 'restore.end', new Date('2026-05-01T16:31:00Z')));
    capture.start();
    await capture.idle();
    assert.equal((await quarantined(ledger, VM)).length, 1);
    assert.equal((await quarantined(ledger, VM2)).length, 0, 'restored before it was acted on');
    assert.deepEqual(forced, [VM]);
    const audit = await ledger.db.selectFrom('audit').select('action').where('action', '=', 'server.forceDelete').execute();
    assert.equal(audit.length, 1);
    await capture.stop();
    await ledger.close();
  });

  test('a policy at capacity (onFull: refuse) refuses the next capture, with an audit record', async () => {
    const { ledger, capture, deliver } = await setup({ policies: [policy({}, { capacity: { onFull: 'refuse', maxCount: 1 } })] });
    capture.start();
    await deliver(warning(VM));
    await capture.idle();
    await deliver(warning(VM2));
    await capture.idle();
    assert.equal((await quarantined(ledger, VM)).length, 1);
    assert.equal((await quarantined(ledger, VM2)).length, 0);
    assert.equal(capture.stats.refusedFull, 1);
    const refused = await ledger.db.selectFrom('capture_intents').select('decision').where('instance_id', '=', VM2).executeTakeFirstOrThrow();
    assert.equal(JSON.parse(refused.decision).capacity, 'full', 'the verdict is part of the recorded decision');
    assert.equal((await ledger.db.selectFrom('audit').select('action').where('action', '=', 'capture.refused').execute()).length, 1);
    await capture.stop();
    await ledger.close();
  });

  test('a cloud that warns twice (both formats) gets one intent, one capture and one race', async () => {
    const { ledger, capture, deliver } = await setup();
    capture.start();
    await deliver(warning());
    await deliver(warning());
    await capture.idle();
    assert.equal((await ledger.db.selectFrom('capture_intents').select('id').execute()).length, 1);
    assert.equal((await quarantined(ledger)).length, 1);
    assert.equal(capture.stats.racesWon + capture.stats.racesLost, 1);
    await capture.stop();
    await ledger.close();
  });
});
