// Restores and exports as ledger tasks, on the in-memory block store, SQLite
// and a fake clock: a request is recorded and returns at once, one worker runs
// it, a dead worker's task is failed and audited once, and every end of a
// task is in the audit trail.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { verifyQuarantine } from '../../operator/capture/restore.ts';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { TransferRunner, TransferStore, runTransfer, type TransferSpec } from '../../operator/capture/transfers.ts';
import { restoreController, restoreTaskId } from '../../operator/kube/controllers/restore.ts';
import type { QuarantineRestore } from '../../operator/resources/restore.ts';
import type { ReconcileContext } from '../../operator/kube/runtime/controller.ts';
import type { StatusUpdate } from '../../operator/kube/runtime/status.ts';
import { FakeClock } from '../../operator/kube/runtime/clock.ts';
import { silentLogger } from '../../operator/log.ts';
import { FakeBlockStore } from '../support/fake-block-store.ts';

const content = Buffer.from('evidence\n'.repeat(4096));
const digest = createHash('sha256').update(content).digest('hex');

async function setup(quarantines = 1) {
  const ledger = openLedgerDb('sqlite::memory:');
  await migrateToLatest(ledger);
  const blocks = new FakeBlockStore();
  const clock = new FakeClock('2026-05-01T16:30:00Z');
  const ids: string[] = [];
  for (let i = 0; i < quarantines; i++) {
    const id = `q-${i}`;
    ids.push(id);
    await blocks.importImage({ stream: Readable.from([content]) }, { pool: 'quarantine', image: id });
    await ledger.db.insertInto('quarantines').values({
      id, cloud: 'cern', instance_id: `vm-${i}`, disk: 'disk', mode: 'onDelete', policy: 'legal', state: 'quarantined', failure: null,
      source_pool: 'vms', source_namespace: null, source_image: `vm-${i}_disk`, source_image_id: `img-${i}`, anchor_image: null, anchor_trash_id: null,
      snapshot: 's', location_pool: 'quarantine', location_namespace: null, location_image: id, bytes: content.length, flattened: 1,
      planned_at: 0, captured_at: 0, expires_at: null, purged_at: null, digest: null, digest_at: null, provenance: '{}', updated_at: 0,
      retention_ms: null, intent_id: null, owner: null, claimed_until: null,
    }).execute();
  }
  const dir = mkdtempSync(join(tmpdir(), 'transfers-'));
  return { ledger, blocks, clock, ids, dir };
}

type World = Awaited<ReturnType<typeof setup>>;

function runner(w: World, owner: string): TransferRunner {
  return new TransferRunner({ db: w.ledger.db, blocksFor: (c) => (c === 'cern' ? w.blocks : undefined), clock: w.clock, owner, logger: silentLogger, relistMs: 30_000 });
}

const request = (w: World, quarantineId: string, spec: TransferSpec, id?: string) =>
  new TransferStore(w.ledger.db).request({ ...(id === undefined ? {} : { id }), quarantineId, cloud: 'cern', spec, actor: 'alice', reason: 'analysis', caseId: 'CASE-1', requestedBy: 'test' }, w.clock.now());

async function audits(db: LedgerDb['db'], action?: string) {
  let q = db.selectFrom('audit').selectAll().orderBy('seq');
  if (action !== undefined) q = q.where('action', '=', action);
  return (await q.execute()).map((r) => ({ ...r, details: JSON.parse(r.details) as Record<string, unknown> }));
}

describe('transfer tasks', () => {
  test('an export runs as a task: the file, its digest in the row and an export audit naming the task', async () => {
    const w = await setup();
    const path = join(w.dir, 'out', 'q-0.raw');
    const t = await request(w, 'q-0', { kind: 'export', path });
    assert.equal(t.state, 'pending');
    const r = runner(w, 'pod-a');
    r.submit(t.id);
    await r.idle();
    const done = await new TransferStore(w.ledger.db).get(t.id);
    assert.equal(done?.state, 'succeeded');
    assert.equal(done?.sha256, digest);
    assert.equal(done?.bytes, content.length);
    assert.deepEqual(readFileSync(path), content);
    const [a] = await audits(w.ledger.db, 'export');
    assert.equal(a?.details['transfer'], t.id);
    assert.equal(a?.details['caseId'], 'CASE-1');
    await r.stop();
  });

  test('a restore makes the image; one whose target exists fails as TargetExists and is audited', async () => {
    const w = await setup();
    const ok = await request(w, 'q-0', { kind: 'restore', pool: 'images', image: 'copy' });
    const r = runner(w, 'pod-a');
    r.submit(ok.id);
    await r.idle();
    assert.equal((await new TransferStore(w.ledger.db).get(ok.id))?.state, 'succeeded');
    assert.equal((await w.blocks.info({ pool: 'images', image: 'copy' })).sizeBytes, content.length);
    const again = await request(w, 'q-0', { kind: 'restore', pool: 'images', image: 'copy' });
    r.submit(again.id);
    await r.idle();
    const failed = await new TransferStore(w.ledger.db).get(again.id);
    assert.equal(failed?.state, 'failed');
    assert.equal(failed?.failure, 'TargetExists');
    const [a] = await audits(w.ledger.db, 'restore.failed');
    assert.equal(a?.details['transfer'], again.id);
    await r.stop();
  });

  test('an export never overwrites a file: failed and audited once', async () => {
    const w = await setup();
    const path = join(w.dir, 'exists.raw');
    writeFileSync(path, 'keep me');
    const t = await request(w, 'q-0', { kind: 'export', path });
    const r = runner(w, 'pod-a');
    r.submit(t.id);
    await r.idle();
    assert.equal((await new TransferStore(w.ledger.db).get(t.id))?.failure, 'TargetExists');
    assert.equal(readFileSync(path, 'utf8'), 'keep me');
    assert.equal((await audits(w.ledger.db, 'export.failed')).length, 1);
    await r.stop();
  });

  test('a task recorded claimed (the CLI runs its own) is never taken by an operator\'s relist, and runs for its owner', async () => {
    const w = await setup();
    const store = new TransferStore(w.ledger.db);
    const t = await store.request({ quarantineId: 'q-0', cloud: 'cern', spec: { kind: 'restore', pool: 'images', image: 'mine' }, actor: 'alice', requestedBy: 'cli' }, w.clock.now(), { owner: 'cli:1', leaseMs: 60_000 });
    assert.equal(t.state, 'running');
    const operator = runner(w, 'pod-a');
    operator.lead();
    await operator.idle();
    assert.equal(await runTransfer({ db: w.ledger.db, blocksFor: () => w.blocks, clock: w.clock, owner: 'pod-a' }, t.id), 'elsewhere');
    assert.equal(await runTransfer({ db: w.ledger.db, blocksFor: () => w.blocks, clock: w.clock, owner: 'cli:1' }, t.id), 'succeeded');
    assert.equal((await audits(w.ledger.db, 'restore')).length, 1);
    await operator.stop();
  });

  test('a request recorded twice under one id is one task', async () => {
    const w = await setup();
    const a = await request(w, 'q-0', { kind: 'export', path: join(w.dir, 'a.raw') }, 'kube:uid-1');
    const b = await request(w, 'q-0', { kind: 'export', path: join(w.dir, 'a.raw') }, 'kube:uid-1');
    assert.equal(a.id, b.id);
    assert.equal((await new TransferStore(w.ledger.db).list()).length, 1);
  });

  test('a task whose worker died is failed as Interrupted by the next relist, audited exactly once', async () => {
    const w = await setup();
    const t = await request(w, 'q-0', { kind: 'export', path: join(w.dir, 'x.raw') });
    const store = new TransferStore(w.ledger.db);
    // The dead worker's claim: taken, never renewed.
    assert.ok(await store.claim(t.id, 'pod-dead', w.clock.now(), 60_000));
    const r = runner(w, 'pod-b');
    r.lead();
    await r.idle();
    assert.equal((await store.get(t.id))?.state, 'running', 'a live claim is left alone');
    await w.clock.advance(61_000);
    await w.clock.advance(30_000);
    await r.idle();
    const failed = await store.get(t.id);
    assert.equal(failed?.state, 'failed');
    assert.equal(failed?.failure, 'Interrupted');
    await w.clock.advance(60_000);
    await r.idle();
    const records = await audits(w.ledger.db, 'export.failed');
    assert.equal(records.length, 1);
    assert.equal(records[0]?.details['transfer'], t.id);
    await r.stop();
  });

  test('a running task renews its claim, so a long read is not taken for a dead one', async () => {
    const w = await setup();
    const t = await request(w, 'q-0', { kind: 'restore', pool: 'images', image: 'slow' });
    // A reader that stalls until released, as a large image would.
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const readAllocated = w.blocks.readAllocated.bind(w.blocks);
    w.blocks.readAllocated = async (spec, options) => {
      await gate;
      return readAllocated(spec, options);
    };
    const running = runTransfer({ db: w.ledger.db, blocksFor: () => w.blocks, clock: w.clock, owner: 'pod-a', leaseMs: 60_000 }, t.id);
    const other = runner(w, 'pod-b');
    other.lead();
    for (let i = 0; i < 10; i++) await w.clock.advance(30_000);
    await other.idle();
    assert.equal((await new TransferStore(w.ledger.db).get(t.id))?.state, 'running');
    release();
    assert.equal(await running, 'succeeded');
    await other.stop();
  });

  test('export and verify read only the allocated extents: the file is sparse, the digest that of the whole disk', async () => {
    const w = await setup(0);
    // 16 MiB with 1 MiB of data in two places; the rest was never written.
    const size = 16 * 1024 * 1024;
    const disk = Buffer.alloc(size);
    randomBytes(512 * 1024).copy(disk, 3 * 1024 * 1024);
    randomBytes(512 * 1024).copy(disk, size - 512 * 1024);
    const whole = createHash('sha256').update(disk).digest('hex');
    await w.blocks.importImage({ stream: Readable.from([disk]) }, { pool: 'quarantine', image: 'sparse' });
    await w.ledger.db.insertInto('quarantines').values({
      id: 'q-sparse', cloud: 'cern', instance_id: 'vm-s', disk: 'disk', mode: 'onDelete', policy: 'legal', state: 'quarantined', failure: null,
      source_pool: 'vms', source_namespace: null, source_image: 'vm-s_disk', source_image_id: 'img-s', anchor_image: null, anchor_trash_id: null,
      snapshot: 's', location_pool: 'quarantine', location_namespace: null, location_image: 'sparse', bytes: size, flattened: 1,
      planned_at: 0, captured_at: 0, expires_at: null, purged_at: null, digest: whole, digest_at: 0, provenance: '{}', updated_at: 0,
      retention_ms: null, intent_id: null, owner: null, claimed_until: null,
    }).execute();
    const read: number[] = [];
    const readAllocated = w.blocks.readAllocated.bind(w.blocks);
    w.blocks.readAllocated = async (spec, options) => {
      const r = await readAllocated(spec, options);
      return { sizeBytes: r.sizeBytes, pieces: (async function* () { for await (const p of r.pieces) { read.push(p.data.length); yield p; } })() };
    };
    const sum = () => read.splice(0).reduce((a, b) => a + b, 0);

    const v = await verifyQuarantine({ db: w.ledger.db, blocks: w.blocks, actor: 'cert' }, 'q-sparse');
    assert.deepEqual([v.sha256, v.bytes, v.matches], [whole, size, true]);
    assert.equal(v.readBytes, 1024 * 1024, 'only the data was read');
    assert.equal(sum(), 1024 * 1024);
    assert.equal(w.blocks.calls.filter((c) => c.op === 'exportImage').length, 0, 'no full read');

    const path = join(w.dir, 'sparse.raw');
    const t = await request(w, 'q-sparse', { kind: 'export', path });
    assert.equal(await runTransfer({ db: w.ledger.db, blocksFor: () => w.blocks, clock: w.clock, owner: 'pod-a' }, t.id), 'succeeded');
    assert.equal(sum(), 1024 * 1024);
    const file = readFileSync(path);
    assert.ok(file.equals(disk), 'the file is the disk');
    const st = statSync(path);
    assert.equal(st.size, size);
    assert.ok(st.blocks * 512 < size / 4, `the file is sparse: ${st.blocks * 512} bytes allocated for ${size}`);
    const row = await new TransferStore(w.ledger.db).get(t.id);
    assert.deepEqual([row?.sha256, row?.matches], [whole, 1]);
    const audit = (await audits(w.ledger.db, 'export')).at(-1);
    assert.equal(audit?.details['readBytes'], 1024 * 1024);

    // To a stream (the CLI's standard output): every byte, zeros made here.
    const chunks: Buffer[] = [];
    const t2 = await request(w, 'q-sparse', { kind: 'export', path: 'stdout' });
    assert.equal(await runTransfer({ db: w.ledger.db, blocksFor: () => w.blocks, clock: w.clock, owner: 'pod-a' }, t2.id, { sink: new Writable({ write(c: Buffer, _e, done) { chunks.push(c); done(); } }) }), 'succeeded');
    assert.equal(sum(), 1024 * 1024);
    assert.ok(Buffer.concat(chunks).equals(disk));
  });

  test('two workers on one ledger: every task runs once and ends once in the audit trail', async () => {
    for (const n of [1, 3, 8]) {
      const w = await setup(n);
      const tasks = await Promise.all(w.ids.map((id, i) => request(w, id, i % 2 === 0 ? { kind: 'restore', pool: 'images', image: `r-${id}` } : { kind: 'export', path: join(w.dir, `${id}.raw`) })));
      const a = runner(w, 'pod-a');
      const b = runner(w, 'pod-b');
      for (const t of tasks) {
        a.submit(t.id);
        b.submit(t.id);
      }
      a.lead();
      b.lead();
      await Promise.all([a.idle(), b.idle()]);
      const rows = await new TransferStore(w.ledger.db).list();
      assert.ok(rows.every((r) => r.state === 'succeeded'), JSON.stringify(rows.map((r) => [r.id, r.state, r.error])));
      const ended = [...(await audits(w.ledger.db, 'restore')), ...(await audits(w.ledger.db, 'export'))].map((r) => r.details['transfer']);
      assert.deepEqual(ended.sort(), tasks.map((t) => t.id).sort());
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});

describe('QuarantineRestore controller', () => {
  function fakeCtx(clock: FakeClock) {
    const updates: StatusUpdate[] = [];
    const events: string[] = [];
    const ctx = {
      key: 'security/r1', clock, log: silentLogger, signal: new AbortController().signal, raw: { apiVersion: 'v1', kind: 'QuarantineRestore', metadata: { name: 'r1' } },
      status: async (u: StatusUpdate) => {
        updates.push(u);
      },
      event: async (type: string, reason: string) => {
        events.push(`${type}/${reason}`);
      },
      addFinalizer: async () => undefined,
      removeFinalizer: async () => undefined,
    } as unknown as ReconcileContext;
    return { ctx, updates, events };
  }

  const resource = (status?: QuarantineRestore['status']): QuarantineRestore => ({
    apiVersion: 'quarantine.forensics.dev/v1alpha1', kind: 'QuarantineRestore', metadata: { name: 'r1', namespace: 'security', uid: 'u-1' },
    spec: { quarantineId: 'q-0', reason: 'analysis', caseId: 'CASE-1', target: { pool: 'images', image: 'copy', readOnly: true } }, ...(status === undefined ? {} : { status }),
  });

  test('a reconcile records the task and returns without reading; a later one reflects the result', async () => {
    const w = await setup();
    const submitted: string[] = [];
    const host = { blocksFor: () => w.blocks, transfers: { submit: (id: string) => void submitted.push(id) } };
    const c = restoreController(host, w.ledger.db);
    const { ctx, updates, events } = fakeCtx(w.clock);
    const first = await c.reconcile(resource(), ctx);
    assert.deepEqual(first, { requeueAfterMs: 5_000 });
    assert.deepEqual(submitted, ['kube:u-1']);
    assert.equal(updates.at(-1)?.fields?.['phase'], 'Pending');
    assert.equal(w.blocks.calls.filter((x) => x.op === 'exportImage').length, 0, 'nothing is read inside the reconcile');
    assert.equal(restoreTaskId(resource()), 'kube:u-1');
    assert.equal(await runTransfer({ db: w.ledger.db, blocksFor: () => w.blocks, clock: w.clock, owner: 'pod-a' }, 'kube:u-1'), 'succeeded');
    const second = await c.reconcile(resource({ phase: 'Pending' }), ctx);
    assert.equal(second, undefined);
    assert.equal(updates.at(-1)?.fields?.['phase'], 'Succeeded');
    assert.equal(updates.at(-1)?.fields?.['sha256'], digest);
    assert.equal(updates.at(-1)?.fields?.['image'], 'images/copy');
    assert.deepEqual(events, ['Normal/Succeeded']);
  });

  test('a request left Running by an older operator, with no task, is failed as Interrupted', async () => {
    const w = await setup();
    const c = restoreController({ blocksFor: () => w.blocks, transfers: { submit: () => undefined } }, w.ledger.db);
    const { ctx, updates, events } = fakeCtx(w.clock);
    await c.reconcile(resource({ phase: 'Running' }), ctx);
    assert.equal(updates.at(-1)?.fields?.['phase'], 'Failed');
    assert.deepEqual(events, ['Warning/Interrupted']);
  });

  test('a request deleted before a worker took its task cancels it (audited); a running one goes on', async () => {
    const w = await setup(2);
    const c = restoreController({ blocksFor: () => w.blocks, transfers: { submit: () => undefined } }, w.ledger.db);
    const { ctx } = fakeCtx(w.clock);
    const pending = resource();
    const running: QuarantineRestore = { ...resource(), metadata: { name: 'r2', namespace: 'security', uid: 'u-2' }, spec: { ...resource().spec, quarantineId: 'q-1' } };
    await c.reconcile(pending, ctx);
    await c.reconcile(running, ctx);
    const store = new TransferStore(w.ledger.db);
    assert.ok(await store.claim('kube:u-2', 'pod-a', w.clock.now(), 60_000));
    for (const r of [pending, running]) await c.deleted?.(`security/${r.metadata.name}`, r, { clock: w.clock, log: silentLogger });
    assert.equal((await store.get('kube:u-1'))?.failure, 'Cancelled');
    assert.equal((await store.get('kube:u-2'))?.state, 'running');
    const [a] = await audits(w.ledger.db, 'restore.failed');
    assert.equal(a?.details['failure'], 'Cancelled');
    assert.equal(a?.subject, 'q-0');
  });
});
