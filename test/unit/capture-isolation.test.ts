// Isolation on the in-memory block store, SQLite ledger and a fake clock: the
// capture digest is taken before anything is copied, the quarantine is then
// copied out of the cloud's pool and its anchor there released, each step
// claimed by one worker and resumed after a crash.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { withTempLedger } from '../support/cli-ledger.ts';
import { applyBatch } from '../../operator/ledger/apply.ts';
import { verifyAudit } from '../../operator/ledger/audit.ts';
import { CaptureEngine } from '../../operator/capture/engine.ts';
import { CloudCapture } from '../../operator/capture/cloud-capture.ts';
import { recordCaptureIntents } from '../../operator/capture/intents.ts';
import { isolationWork } from '../../operator/capture/lifecycle.ts';
import { isolationLabel } from '../../operator/capture/isolation-label.ts';
import { verifyQuarantine } from '../../operator/capture/restore.ts';
import type { QuarantineRow } from '../../operator/capture/quarantine-store.ts';
import type { Policy } from '../../operator/domain/policy.ts';
import type { DecodedNotification } from '../../operator/domain/events.ts';
import { FakeClock } from '../../operator/kube/runtime/clock.ts';
import { silentLogger } from '../../operator/log.ts';
import { FakeBlockStore } from '../support/fake-block-store.ts';
import { notification, instanceEvent } from '../support/events.ts';

const VM = '6f1b7a52-3c1e-4d7b-9a57-0d9a5c1f2e11';
const DAY = 86_400_000;
const content = Buffer.from('evidence\n'.repeat(4096));
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const source = { pool: 'vms', image: `${VM}_disk` };

function policy(over: Partial<Policy['capture']> = {}): Policy {
  return {
    name: 'legal', selector: {}, capture: { mode: 'onDelete', disks: { root: true, ephemeral: true, volumes: true }, flatten: false, releaseResources: false, ...over },
    retentionMs: 30 * DAY, capacity: { onFull: 'evictOldest' }, sweep: { schedule: '0 3 * * *', timeZone: 'UTC', dryRun: false },
  };
}

interface World { ledger: LedgerDb; blocks: FakeBlockStore; clock: FakeClock; policies: Policy[] }

async function world(policies = [policy()], data = content): Promise<World> {
  const ledger = openLedgerDb('sqlite::memory:');
  await migrateToLatest(ledger);
  const blocks = new FakeBlockStore();
  await blocks.importImage({ stream: Readable.from([data]) }, source);
  return { ledger, blocks, clock: new FakeClock('2026-05-01T16:30:00Z'), policies };
}

function replica(w: World, o: { owner?: string; beforeIsolationStep?: (id: string, step: string) => Promise<void>; bandwidthMiBps?: number } = {}) {
  const isolated: number[] = [];
  const engine = new CaptureEngine({ db: w.ledger.db, blocks: w.blocks, quarantine: { pool: 'quarantine' }, logger: silentLogger, clock: () => w.clock.now(), owner: o.owner ?? 'pod-a' });
  const capture = new CloudCapture({
    config: { cloud: 'cern', cloudType: 'openstack', watchedPools: ['vms'], trash: { arm: false, expireSeconds: 0, scanIntervalSeconds: 600 } },
    db: w.ledger.db, blocks: w.blocks, engine, policies: () => w.policies, logger: silentLogger, clock: w.clock, relistMs: 30_000,
    onIsolated: (s) => isolated.push(s), beforeIsolationStep: o.beforeIsolationStep, isolationBandwidthMiBps: o.bandwidthMiBps,
  });
  const deliver = async (n: DecodedNotification) => {
    await applyBatch(w.ledger.db, [{ notification: n, body: '{}' }], (trx, m) => recordCaptureIntents(trx, m, { cloud: 'cern', policies: () => w.policies }));
    capture.onNotification(n);
  };
  return { engine, capture, deliver, isolated };
}

const deleteStart = (when = new Date('2026-05-01T16:30:00Z')) => notification([instanceEvent('delete.start', { id: VM })], when);

async function only(w: World): Promise<QuarantineRow> {
  const rows = await w.ledger.db.selectFrom('quarantines').selectAll().execute();
  assert.equal(rows.length, 1, 'one quarantine');
  return rows[0] as QuarantineRow;
}

const locationOf = (q: QuarantineRow) => ({ pool: q.location_pool, image: q.location_image });

async function auditSteps(w: World, id: string): Promise<string[]> {
  const rows = await w.ledger.db.selectFrom('audit').select(['details']).where('subject', '=', id).orderBy('seq').execute();
  return rows.map((r) => (JSON.parse(r.details) as { step?: string }).step).filter((s): s is string => s !== undefined);
}

/** Waits (in real time, a few ms at a time) until the condition holds. */
async function until(cond: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error('timed out waiting for a condition');
}

/** A gate a step waits at until the test opens it. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => { open = r; });
  let reached!: () => void;
  const arrived = new Promise<void>((r) => { reached = r; });
  return { open, arrived, wait: async () => { reached(); await opened; } };
}

describe('isolation', () => {
  test('a capture is digested from its capture snapshot, then isolated: flattened, its snapshot on the live disk released, and the cloud\'s delete goes through', async () => {
    const w = await world();
    const r = replica(w);
    r.capture.start();
    await r.deliver(deleteStart());
    await r.capture.idle();
    const q = await only(w);
    assert.equal(q.state, 'quarantined');
    assert.equal(q.isolation, 'isolated');
    assert.equal(isolationLabel(q), 'isolated');
    assert.equal(q.digest, sha(content), 'the digest is that of the disk at capture');
    assert.ok(q.digest_at !== null && q.isolated_at !== null && q.captured_at !== null && q.captured_at <= q.digest_at && q.digest_at <= q.isolated_at);
    assert.equal(q.flattened, 1);
    assert.equal((await w.blocks.info(locationOf(q))).parent, undefined, 'no parent left in the cloud\'s pool');
    assert.deepEqual(await w.blocks.listSnapshots(source, { includeTrash: true }), [], 'the capture snapshot is gone from the live disk');
    await w.blocks.removeImage(source);
    assert.deepEqual(await auditSteps(w, q.id), ['digest', 'isolated']);
    assert.equal(r.isolated.length, 1);
    const v = await verifyAudit(w.ledger.db);
    assert.ok(v.ok, JSON.stringify(v.problems));
    assert.equal((await verifyQuarantine({ db: w.ledger.db, blocks: w.blocks, actor: 'cert' }, q.id)).matches, true);
    await r.capture.close();
    await w.ledger.close();
  });

  test('a policy that opts out keeps the copy-on-write clone: digested, "not isolated", the disk still pinned', async () => {
    const w = await world([policy({ isolate: false })]);
    const r = replica(w);
    r.capture.start();
    await r.deliver(deleteStart());
    await r.capture.idle();
    const q = await only(w);
    assert.equal(q.isolation, 'not-isolated');
    assert.equal(isolationLabel(q), 'not isolated');
    assert.equal(q.digest, sha(content));
    assert.equal(q.isolated_at, null);
    assert.notEqual((await w.blocks.info(locationOf(q))).parent, undefined);
    await assert.rejects(w.blocks.removeImage(source), 'the clone still pins the disk');
    assert.deepEqual(await auditSteps(w, q.id), ['digest']);
    await r.capture.close();
    await w.ledger.close();
  });

  test('trash mode: the adopted trash entry in the cloud\'s pool is removed once the quarantine is isolated', async () => {
    const w = await world([policy({ mode: 'trash' })]);
    const r = replica(w);
    r.capture.start();
    await r.capture.idle();
    const id = await w.blocks.moveToTrash(source);
    await r.deliver(deleteStart());
    await w.clock.advance(100);
    await r.capture.idle();
    const q = await only(w);
    assert.equal(q.source_image_id, id);
    assert.equal(q.isolation, 'isolated');
    assert.equal(q.anchor_trash_id, null);
    assert.deepEqual(await w.blocks.listTrash({ pool: 'vms' }), [], 'no anchor left in the cloud\'s trash');
    assert.equal(q.digest, sha(content));
    assert.deepEqual(w.blocks.peekData(locationOf(q)).subarray(0, content.length), content);
    const v = await verifyAudit(w.ledger.db);
    assert.ok(v.ok, JSON.stringify(v.problems));
    await r.capture.close();
    await w.ledger.close();
  });

  test('a change to the cloud-side data after the digest and before the copy is caught by verify against the capture digest; after isolation the cloud-side data no longer matters', async () => {
    const w = await world();
    const g = gate();
    // The copy starts beside the digest; here it is held until the digest is recorded.
    const r = replica(w, { beforeIsolationStep: async (_id, step) => { if (step === 'copy') await g.wait(); } });
    r.capture.start();
    await r.deliver(deleteStart());
    await g.arrived;
    assert.equal((await only(w)).isolation, 'digesting', 'the copy starts while the digest is read');
    await until(async () => (await only(w)).isolation === 'isolating');
    const q = await only(w);
    assert.equal(q.digest, sha(content), 'digested before the copy reached the data');
    // The cloud's compute user writes into the live disk's data objects.
    w.blocks.rawWrite(source, 0, Buffer.from('tampered'));
    const before = await verifyQuarantine({ db: w.ledger.db, blocks: w.blocks, actor: 'cert' }, q.id);
    assert.equal(before.matches, false, 'verify reports the change against the capture digest');
    assert.equal(before.recorded, sha(content));
    g.open();
    await r.capture.idle();
    assert.equal((await only(w)).isolation, 'isolated');
    assert.equal((await verifyQuarantine({ db: w.ledger.db, blocks: w.blocks, actor: 'cert' }, q.id)).matches, false, 'the change copied in stays detected');
    await r.capture.close();
    await w.ledger.close();

    const w2 = await world();
    const r2 = replica(w2);
    r2.capture.start();
    await r2.deliver(deleteStart());
    await r2.capture.idle();
    const q2 = await only(w2);
    assert.equal(q2.isolation, 'isolated');
    w2.blocks.rawWrite(source, 0, Buffer.from('tampered'));
    assert.equal((await verifyQuarantine({ db: w2.ledger.db, blocks: w2.blocks, actor: 'cert' }, q2.id)).matches, true, 'an isolated quarantine does not see the write');
    await r2.capture.close();
    await w2.ledger.close();
  });

  test('a copy that ends before the digest does not release the anchor: the adopted trash entry stays until the digest is recorded', async () => {
    const w = await world([policy({ mode: 'trash' })]);
    const g = gate();
    // The digest's read is held; the copy beside it runs to its end meanwhile.
    const readAllocated = w.blocks.readAllocated.bind(w.blocks);
    w.blocks.readAllocated = async (...args) => {
      await g.wait();
      return readAllocated(...args);
    };
    const r = replica(w);
    r.capture.start();
    await r.capture.idle();
    await w.blocks.moveToTrash(source);
    await r.deliver(deleteStart());
    await w.clock.advance(100);
    await g.arrived;
    await until(() => w.blocks.calls.some((c) => c.op === 'flatten'));
    const q = await only(w);
    assert.equal(q.isolation, 'digesting');
    assert.equal((await w.blocks.info(locationOf(q))).parent, undefined, 'the copy is done');
    assert.equal((await w.blocks.listTrash({ pool: 'vms' })).length, 1, 'the anchor is still there');
    g.open();
    await r.capture.idle();
    const done = await only(w);
    assert.equal(done.isolation, 'isolated');
    assert.equal(done.digest, sha(content));
    assert.deepEqual(await w.blocks.listTrash({ pool: 'vms' }), []);
    const ops = w.blocks.calls.map((c) => c.op);
    assert.ok(ops.indexOf('removeFromTrash') > ops.lastIndexOf('readAllocated'), 'released after the digest was read');
    assert.deepEqual(await auditSteps(w, q.id), ['digest', 'isolated']);
    await r.capture.close();
    await w.ledger.close();
  });

  test('with a bandwidth, the clone\'s allocated data is copied at that pace, then the flatten only detaches it', async () => {
    const MiB = 1024 * 1024;
    // 12 MiB: 4 MiB go at once (one object's burst), the other 8 at 2 MiB/s take 4 s of the clock.
    const data = randomBytes(12 * MiB);
    const w = await world([policy()], data);
    const r = replica(w, { bandwidthMiBps: 2 });
    r.capture.start();
    await r.deliver(deleteStart());
    const started = w.clock.now().getTime();
    await until(async () => {
      await w.clock.advance(250);
      return (await only(w)).isolation === 'isolated';
    });
    const seconds = (w.clock.now().getTime() - started) / 1000;
    assert.ok(seconds >= 4 && seconds <= 5, `paced: ${seconds} s of the clock for 12 MiB at 2 MiB/s`);
    const q = await only(w);
    assert.equal(q.digest, sha(data));
    const ops = w.blocks.calls.map((c) => c.op);
    assert.ok(ops.includes('writeExtents') && ops.indexOf('writeExtents') < ops.lastIndexOf('flatten'), ops.join(','));
    assert.equal((await w.blocks.info(locationOf(q))).parent, undefined);
    assert.ok(w.blocks.peekData(locationOf(q)).subarray(0, data.length).equals(data));
    const notes = (await w.ledger.db.selectFrom('audit').select(['details']).where('subject', '=', q.id).orderBy('seq').execute()).map((row) => JSON.parse(row.details) as Record<string, unknown>);
    const isolatedNote = notes.find((n) => n['step'] === 'isolated');
    assert.equal(isolatedNote?.['copy'], 'paced copy, then flatten');
    assert.equal(isolatedNote?.['copiedBytes'], 12 * MiB);
    assert.equal(isolatedNote?.['limitMiBps'], 2);
    assert.equal((await verifyQuarantine({ db: w.ledger.db, blocks: w.blocks, actor: 'cert' }, q.id)).matches, true);
    await r.capture.close();
    await w.ledger.close();
  });

  // A crash at either step, on a replica that never comes back: another one,
  // after the lapsed claim, finishes the isolation exactly once with the same digest.
  for (const step of ['digesting', 'isolating'] as const) {
    test(`a crash at ${step} is resumed by another replica once the claim lapses, isolated once with the capture digest`, async () => {
      const w = await world();
      const a = replica(w, { owner: 'pod-a', beforeIsolationStep: async (_id, s) => { if (s === step) throw new Error('killed'); } });
      a.capture.start();
      await a.deliver(deleteStart());
      await a.capture.idle();
      const stuck = await only(w);
      assert.equal(stuck.isolation, step);
      assert.equal(stuck.owner, 'pod-a');
      await a.capture.close();
      const b = replica(w, { owner: 'pod-b' });
      b.capture.start();
      await b.capture.idle();
      assert.equal((await only(w)).isolation, step, 'the crashed replica\'s claim still holds');
      await w.clock.advance(150_000);
      await b.capture.idle();
      const q = await only(w);
      assert.equal(q.isolation, 'isolated');
      assert.equal(q.digest, sha(content));
      assert.equal(q.owner, null);
      // Killed before its copy started, the clone is still one: the resumed copy renews its object map first.
      // Killed at isolating, the copy beside the digest had already ended here.
      assert.deepEqual(await auditSteps(w, q.id), step === 'digesting' ? ['digest', 'object map renewed', 'isolated'] : ['digest', 'isolated']);
      assert.equal(b.isolated.length, 1);
      await b.capture.close();
      await w.ledger.close();
    });
  }

  // A flatten killed mid-way leaves the clone's object map claiming objects it
  // never wrote (bench/notes/capture.md); a second flatten that trusted it would
  // skip them, and they would read as zeros once the parent is detached.
  async function interruptedCopy(w: World): Promise<QuarantineRow> {
    const claimed = [{ offset: 8192, length: 4096 }];
    const a = replica(w, {
      owner: 'pod-a',
      beforeIsolationStep: async (id, s) => {
        if (s !== 'copy') return;
        const q = await a.engine.store.get(id);
        assert.ok(q !== undefined);
        w.blocks.interruptFlatten(locationOf(q), claimed);
        throw new Error('killed mid-flatten');
      },
    });
    a.capture.start();
    await a.capture.idle();
    await w.blocks.moveToTrash(source);
    await a.deliver(deleteStart());
    await w.clock.advance(100);
    await a.capture.idle();
    await a.capture.close();
    const stuck = await only(w);
    assert.equal(stuck.isolation, 'isolating', 'the digest was recorded; the copy beside it died');
    assert.equal(stuck.owner, 'pod-a');
    assert.ok((await w.blocks.info(locationOf(stuck))).parent !== undefined, 'still a clone');
    return stuck;
  }

  test('the fake flattens an interrupted clone as librbd does: the objects the dead flatten claimed read as zeros', async () => {
    const w = await world([policy({ mode: 'trash' })]);
    const stuck = await interruptedCopy(w);
    await w.blocks.flatten(locationOf(stuck));
    const data = w.blocks.peekData(locationOf(stuck));
    assert.deepEqual(data.subarray(8192, 8192 + 4096), Buffer.alloc(4096));
    assert.notEqual(sha(data.subarray(0, content.length)), stuck.digest);
    await w.ledger.close();
  });

  test('a copy interrupted mid-flatten is resumed on a renewed object map and checked against the capture digest before it counts as isolated', async () => {
    const w = await world([policy({ mode: 'trash' })]);
    const stuck = await interruptedCopy(w);
    await w.clock.advance(150_000);
    const b = replica(w, { owner: 'pod-b' });
    b.capture.start();
    await b.capture.idle();
    const q = await only(w);
    assert.equal(q.isolation, 'isolated');
    assert.equal(q.digest, sha(content));
    assert.deepEqual(w.blocks.peekData(locationOf(q)).subarray(0, content.length), content, 'the copy is the capture');
    const ops = w.blocks.calls.map((c) => c.op);
    assert.ok(ops.lastIndexOf('renewObjectMap') < ops.lastIndexOf('flatten') && ops.lastIndexOf('flatten') < ops.lastIndexOf('readAllocated'), 'renewed, flattened, then read back');
    assert.deepEqual(await auditSteps(w, stuck.id), ['digest', 'object map renewed', 'isolated']);
    const notes = (await w.ledger.db.selectFrom('audit').select('details').where('subject', '=', q.id).execute()).map((a) => JSON.parse(a.details) as Record<string, unknown>);
    const isolated = notes.find((n) => n['step'] === 'isolated');
    assert.equal(isolated?.['objectMapRenewed'], true);
    assert.equal(isolated?.['copyMatchesDigest'], true);
    assert.deepEqual(await w.blocks.listTrash({ pool: 'vms' }), [], 'the anchor is released');
    assert.ok((await verifyAudit(w.ledger.db)).ok);
    await b.capture.close();
    await w.ledger.close();
  });

  test('a resumed copy that differs from the capture digest is recorded as such, never as isolated, and its anchor is kept', async () => {
    const w = await world([policy({ mode: 'trash' })]);
    const stuck = await interruptedCopy(w);
    // Whatever the cause, the renewal does not help this time.
    w.blocks.renewObjectMap = async () => {};
    await w.clock.advance(150_000);
    const b = replica(w, { owner: 'pod-b' });
    b.capture.start();
    await b.capture.idle();
    const q = await only(w);
    assert.equal(q.isolation, 'copy-differs');
    assert.equal(isolationLabel(q), 'copy differs');
    assert.equal(q.isolated_at, null);
    assert.match(q.failure ?? '', /differs from the capture digest/);
    assert.equal(q.digest, sha(content), 'the capture digest stands');
    assert.equal(q.owner, null);
    assert.equal(b.isolated.length, 0);
    assert.deepEqual((await w.blocks.listTrash({ pool: 'vms' })).map((e) => e.id), [stuck.anchor_trash_id], 'the anchor with the original data is kept');
    assert.deepEqual(isolationWork(q), { do: 'nothing' }, 'not retried behind a person\'s back');
    assert.deepEqual(await b.engine.store.isolationPending(), []);
    assert.deepEqual(await auditSteps(w, q.id), ['digest', 'object map renewed', 'copy differs']);
    const note = (await w.ledger.db.selectFrom('audit').select('details').where('subject', '=', q.id).execute()).map((a) => JSON.parse(a.details) as Record<string, unknown>).find((n) => n['step'] === 'copy differs');
    assert.equal(note?.['captureDigest'], sha(content));
    assert.equal(note?.['copySha256'], sha(w.blocks.peekData(locationOf(q))), 'the copy\'s own digest is recorded');
    assert.equal(note?.['anchorKept'], true);
    assert.equal((await verifyQuarantine({ db: w.ledger.db, blocks: w.blocks, actor: 'cert' }, q.id)).matches, false);
    assert.ok((await verifyAudit(w.ledger.db)).ok);
    const { createMetrics } = await import('../../operator/http/metrics.ts');
    const metrics = createMetrics(w.ledger.db, { isLeader: () => true, queueDepth: async () => [] });
    metrics.knownCloud('elsewhere', ['nova']);
    const text = await metrics.registry.metrics();
    assert.match(text, /quarantine_isolation_copy_differs\{cloud="cern"\} 1/, 'surfaced for an alert');
    assert.match(text, /quarantine_isolation_copy_differs\{cloud="elsewhere"\} 0/);
    await b.capture.close();
    await w.ledger.close();
  });

  // Generated histories: whether the policy isolates, where (if anywhere) each of
  // up to three replicas dies, and how long the next one waits. Whatever the
  // history, the quarantine ends digested with the capture's content, isolated
  // exactly when its policy says so, each step audited once, the trail intact.
  test('generated crash histories all end in one digest and one isolation', async () => {
    let seed = 7;
    const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
    for (let h = 0; h < 24; h++) {
      const isolate = rnd(3) !== 0;
      const w = await world([policy({ isolate })]);
      const deaths = Array.from({ length: rnd(3) }, () => (isolate ? (['digesting', 'isolating'] as const)[rnd(2)] : 'digesting'));
      const history = `history ${h}: isolate=${isolate}, deaths at ${deaths.join(',') || 'none'}`;
      let delivered = false;
      for (const [i, step] of [...deaths, undefined].entries()) {
        const r = replica(w, { owner: `pod-${i}`, ...(step === undefined ? {} : { beforeIsolationStep: async (_id: string, s: string) => { if (s === step) throw new Error('killed'); } }) });
        r.capture.start();
        if (!delivered) await r.deliver(deleteStart());
        delivered = true;
        await r.capture.idle();
        await r.capture.close();
        // The next replica comes up before or after the dead one's claim lapses.
        await w.clock.advance(rnd(2) === 0 ? 1_000 : 150_000);
      }
      const last = replica(w, { owner: 'pod-last' });
      last.capture.start();
      await w.clock.advance(150_000);
      await last.capture.idle();
      const q = await only(w);
      assert.equal(q.digest, sha(content), history);
      assert.equal(q.isolation, isolate ? 'isolated' : 'not-isolated', history);
      // A death at digesting comes before any copy: the clone is still one when a later replica copies, after renewing its object map.
      assert.deepEqual(await auditSteps(w, q.id), isolate ? ['digest', ...(deaths.includes('digesting') ? ['object map renewed'] : []), 'isolated'] : ['digest'], history);
      assert.ok((await verifyAudit(w.ledger.db)).ok, history);
      await last.capture.close();
      await w.ledger.close();
    }
  });

  test('two replicas on one quarantine: each step runs once', async () => {
    const w = await world();
    const a = replica(w, { owner: 'pod-a' });
    const b = replica(w, { owner: 'pod-b' });
    a.capture.start();
    b.capture.follow();
    await a.deliver(deleteStart());
    await a.capture.idle();
    const q = await only(w);
    // The follower is told of the same row (as after its own capture) and finds nothing left, or the step claimed.
    const flattens = () => w.blocks.calls.filter((c) => c.op === 'flatten').length;
    assert.equal(flattens(), 1);
    await Promise.all([a.capture.relist(), b.capture.relist()]);
    await Promise.all([a.capture.idle(), b.capture.idle()]);
    assert.equal(flattens(), 1);
    assert.deepEqual(await auditSteps(w, q.id), ['digest', 'isolated']);
    await a.capture.close();
    await b.capture.close();
    await w.ledger.close();
  });
});

describe('the audit trail vouches for isolation', () => {
  test('a quarantine made to look isolated (or not) behind the trail\'s back fails audit verify', async () => {
    for (const [from, to] of [['not-isolated', 'isolated'], ['isolated', 'isolating']] as const) {
      const w = await world([policy({ isolate: from === 'isolated' })]);
      const r = replica(w);
      r.capture.start();
      await r.deliver(deleteStart());
      await r.capture.idle();
      const q = await only(w);
      assert.equal(q.isolation, from);
      assert.ok((await verifyAudit(w.ledger.db)).ok);
      await w.ledger.db.updateTable('quarantines').set({ isolation: to }).where('id', '=', q.id).execute();
      const v = await verifyAudit(w.ledger.db);
      assert.equal(v.ok, false);
      assert.ok(v.problems.some((p) => p.problem === 'table' && p.detail.includes(q.id)), JSON.stringify(v.problems));
      await r.capture.close();
      await w.ledger.close();
    }
  });
});

describe('isolationWork decides from the row alone', () => {
  test('every (state, isolation, isolate) combination', () => {
    const states = ['planned', 'snapshotting', 'cloning', 'quarantined', 'flattening', 'expired', 'purged', 'failed'];
    const steps = [null, 'digesting', 'isolating', 'isolated', 'not-isolated'];
    for (const state of states) for (const isolation of steps) for (const isolate of [0, 1]) {
      const w = isolationWork({ state, isolation, isolate });
      if (state !== 'quarantined' || isolation === null || isolation === 'isolated' || isolation === 'not-isolated') assert.deepEqual(w, { do: 'nothing' }, `${state}/${isolation}`);
      else if (isolation === 'digesting') assert.deepEqual(w, { do: 'digest', then: isolate === 1 ? 'isolating' : 'not-isolated' });
      else assert.deepEqual(w, { do: 'isolate' });
    }
  });
});

describe('isolation in the HTTP API and the metrics', () => {
  test('a quarantine carries its isolation state; the time to isolation is a histogram', async () => {
    const { createMetrics } = await import('../../operator/http/metrics.ts');
    const { startHttp } = await import('../../operator/http/server.ts');
    const w = await world();
    const r = replica(w);
    r.capture.start();
    await r.deliver(deleteStart());
    await r.capture.idle();
    const q = await only(w);
    const metrics = createMetrics(w.ledger.db, { isLeader: () => true, queueDepth: async () => [] });
    metrics.knownCloud('cern', ['nova']);
    for (const s of r.isolated) metrics.isolationSeconds.observe({ cloud: 'cern' }, s);
    const http = await startHttp({ host: '127.0.0.1', port: 0, db: w.ledger.db, metrics, apiToken: 't', ready: async () => ({ ready: true, reasons: [] }), logger: silentLogger });
    try {
      const one = (await (await fetch(`${http.url}/api/v1/quarantines/${q.id}`, { headers: { authorization: 'Bearer t' } })).json()) as Record<string, unknown>;
      // The API answers in the CLI's shape (images show -o json).
      assert.equal(one['isolation'], 'isolated');
      assert.equal(one['isolatedAt'], q.isolated_at === null ? null : new Date(q.isolated_at).toISOString());
      assert.equal(one['sha256'], sha(content));
      const list = (await (await fetch(`${http.url}/api/v1/quarantines`, { headers: { authorization: 'Bearer t' } })).json()) as { entries: Array<Record<string, unknown>> };
      assert.deepEqual(list.entries.map((x) => x['isolation']), ['isolated']);
      const text = await (await fetch(`${http.url}/metrics`)).text();
      assert.match(text, /quarantine_isolation_seconds_count\{cloud="cern"\} 1/);
    } finally {
      await http.close();
      await r.capture.close();
      await w.ledger.close();
    }
  });
});

describe('isolation in images ls / show', () => {
  test('each quarantine says where its isolation stands, with the digest and isolation times', async () => {
    const { Isolation } = await import('../../operator/capture/isolation.ts');
    await withTempLedger('qop-iso-cli-', async (t) => {
      const ledger = await t.open();
      const blocks = new FakeBlockStore();
      const clock = new FakeClock('2026-05-01T16:30:00Z');
      const engine = new CaptureEngine({ db: ledger.db, blocks, quarantine: { pool: 'quarantine' }, logger: silentLogger, clock: () => clock.now() });
      const iso = new Isolation({ store: engine.store, blocks, clock, logger: silentLogger, owner: engine.owner });
      const ids: string[] = [];
      for (const [i, isolate] of [[1, true], [2, false], [3, true]] as const) {
        const image = { pool: 'vms', image: `0000000${i}-0000-4000-8000-000000000000_disk` };
        await blocks.importImage({ stream: Readable.from([content]) }, image);
        const row = await engine.capture({
          cloud: 'cern', instanceId: `vm${i}`, disk: 'disk', mode: 'softDelete', policy: { name: 'p', retentionMs: DAY, flatten: false, isolate }, source: { kind: 'live', image },
          provenance: { cloud: 'cern', instance: { id: `vm${i}`, name: null, project: null, user: null, host: null, image: null, flavor: null, createdAt: null }, addresses: [], deletedAt: null, deletedBy: null, messageId: null },
        });
        ids.push(row.id);
        // The third is left where a capture leaves it: its digest owed.
        if (i !== 3) await iso.reconcile(row.id);
      }
      await ledger.close();
      const ls = await t.cli(['images', 'ls', '-o', 'json']);
      assert.equal(ls.code, 0);
      const rows = JSON.parse(ls.out) as Array<{ id: string; isolation: string; isolatedAt: string | null; sha256: string | null; digestAt: string | null }>;
      assert.deepEqual(rows.map((r) => [r.id, r.isolation]), [[ids[0], 'isolated'], [ids[1], 'not isolated'], [ids[2], 'digesting']]);
      assert.deepEqual(rows.map((r) => r.sha256), [sha(content), sha(content), null]);
      assert.equal(rows[0]?.isolatedAt, '2026-05-01T16:30:00.000Z');
      assert.equal(rows[1]?.isolatedAt, null);
      assert.equal(rows[1]?.digestAt, '2026-05-01T16:30:00.000Z');
      const table = await t.cli(['images', 'ls']);
      assert.match(table.out, /STATE\s+ISOLATION/);
      assert.match(table.out, /not isolated/);
    });
  });
});

describe('quarantines captured before isolation existed', () => {
  test('images isolate plans their isolation (one ID or --all-legacy, --dry-run changes nothing), audited with the actor; the operator then digests and isolates them', async () => {
    const { Isolation } = await import('../../operator/capture/isolation.ts');
    const { EXIT } = await import('../../operator/cli/errors.ts');
    await withTempLedger('qop-iso-legacy-', async ({ cli, open }) => {
      const ledger = await open();
      const blocks = new FakeBlockStore();
      const clock = new FakeClock('2026-05-01T16:30:00Z');
      const engine = new CaptureEngine({ db: ledger.db, blocks, quarantine: { pool: 'quarantine' }, logger: silentLogger, clock: () => clock.now() });
      const ids: string[] = [];
      for (const i of [1, 2, 3]) {
        const image = { pool: 'vms', image: `0000000${i}-0000-4000-8000-000000000000_disk` };
        await blocks.importImage({ stream: Readable.from([content]) }, image);
        const row = await engine.capture({
          cloud: i === 3 ? 'desy' : 'cern', instanceId: `vm${i}`, disk: 'disk', mode: 'softDelete', policy: { name: 'p', retentionMs: DAY, flatten: false }, source: { kind: 'live', image },
          provenance: { cloud: 'cern', instance: { id: `vm${i}`, name: null, project: null, user: null, host: null, image: null, flavor: null, createdAt: null }, addresses: [], deletedAt: null, deletedBy: null, messageId: null },
        });
        ids.push(row.id);
      }
      // As migration 0009 left the rows of earlier captures: no isolation, the first with a digest from a first read.
      await ledger.db.updateTable('quarantines').set({ isolation: null, isolate: 0 }).execute();
      await ledger.db.updateTable('quarantines').set({ digest: sha(content), digest_at: clock.now().getTime() }).where('id', '=', ids[0] ?? '').execute();
      await ledger.close();

      assert.equal((await cli(['images', 'isolate'])).code, EXIT.usage);
      assert.equal((await cli(['images', 'isolate', ids[0] ?? '', '--all-legacy'])).code, EXIT.usage);
      assert.equal((await cli(['images', 'isolate', 'qnope'])).code, EXIT.notFound);
      const dry = await cli(['images', 'isolate', '--all-legacy', '--dry-run', '-o', 'json']);
      assert.equal(dry.code, EXIT.ok, dry.err);
      assert.deepEqual((JSON.parse(dry.out) as Array<{ id: string; was: string }>).map((r) => [r.id, r.was]), ids.map((id) => [id, 'not isolated']));
      const one = await cli(['images', 'isolate', ids[2] ?? '', '--actor', 'ops-bob']);
      assert.equal(one.code, EXIT.ok, one.err);
      assert.match(one.out, /planned the isolation of 1 quarantine/);
      const rest = await cli(['images', 'isolate', '--all-legacy', '--cloud', 'cern', '--actor', 'ops-alice']);
      assert.equal(rest.code, EXIT.ok, rest.err);
      assert.match(rest.out, new RegExp(`planned the isolation of 2 quarantine\\(s\\): ${ids[0]}, ${ids[1]}`));
      // Planned once: a second request is refused with one clear line.
      const again = await cli(['images', 'isolate', ids[0] ?? '']);
      assert.equal(again.code, EXIT.usage);
      assert.match(again.err, /isolation digesting/);

      const l2 = await open();
      try {
        const trail = await l2.db.selectFrom('audit').select(['actor', 'subject', 'details']).where('action', '=', 'quarantine.changed').execute();
        const planned = trail.filter((t) => String(t.details).includes('isolation planned'));
        assert.deepEqual(planned.map((t) => [t.subject, t.actor]).sort(), [[ids[0], 'ops-alice'], [ids[1], 'ops-alice'], [ids[2], 'ops-bob']].sort());
        const engine2 = new CaptureEngine({ db: l2.db, blocks, quarantine: { pool: 'quarantine' }, logger: silentLogger, clock: () => clock.now() });
        const iso = new Isolation({ store: engine2.store, blocks, clock, logger: silentLogger, owner: engine2.owner });
        assert.deepEqual((await iso.pending()).map((r) => r.id).sort(), [...ids].sort());
        for (const id of ids) assert.equal(await iso.reconcile(id), 'isolated');
        for (const id of ids) {
          const q = await engine2.store.get(id);
          assert.equal(q?.digest, sha(content));
          assert.equal(q?.flattened, 1);
          assert.equal((await blocks.info({ pool: 'quarantine', image: q?.location_image ?? '' })).parent, undefined);
        }
      } finally {
        await l2.close();
      }
      const after = await cli(['images', 'isolate', '--all-legacy']);
      assert.match(after.out, /planned the isolation of 0 quarantine/);
    });
  });
});
