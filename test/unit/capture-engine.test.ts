// The capture state machine on the in-memory block store: live and trash
// sources, idempotency per source image, and a crash at every step resuming to
// exactly one quarantine with the source's content.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import { CaptureEngine, type CaptureRequest } from '../../operator/capture/engine.ts';
import type { CaptureState } from '../../operator/capture/quarantine-store.ts';
import { verifyAudit } from '../../operator/ledger/audit.ts';
import { silentLogger } from '../../operator/log.ts';
import { FakeBlockStore } from '../support/fake-block-store.ts';

const VM = '6f1b7a52-3c1e-4d7b-9a57-0d9a5c1f2e11';
const content = Buffer.from('evidence: /home/batch/flood.sh was here\n'.repeat(100));

async function setup(beforeStep?: (id: string, step: CaptureState) => Promise<void>) {
  const ledger = openLedgerDb('sqlite::memory:');
  await migrateToLatest(ledger);
  const blocks = new FakeBlockStore();
  await blocks.importImage({ stream: Readable.from([content]) }, { pool: 'vms', image: `${VM}_disk` });
  let now = Date.parse('2026-05-01T16:30:00Z');
  const clock = () => new Date(now);
  const engine = new CaptureEngine({ db: ledger.db, blocks, quarantine: { pool: 'quarantine' }, logger: silentLogger, clock, ...(beforeStep === undefined ? {} : { beforeStep }) });
  return { ledger, blocks, engine, advance: (ms: number) => { now += ms; } };
}

function request(source: CaptureRequest['source'], mode: CaptureRequest['mode'] = 'onDelete'): CaptureRequest {
  return {
    cloud: 'cern', instanceId: VM, disk: 'disk', mode, policy: { name: 'all', retentionMs: 7 * 86_400_000, flatten: false }, source,
    provenance: {
      cloud: 'cern', instance: { id: VM, name: 'batch-17', project: 'hep', user: 'alice', host: 'cmp-4', image: null, flavor: 'm1.small', createdAt: null },
      addresses: [{ address: '188.185.194.218', kind: 'floating', network: 'ext', port: 'p1', from: '2026-05-01T16:05:00.000Z', to: null }],
      deletedAt: '2026-05-01T16:30:00.000Z', deletedBy: 'alice', messageId: 'm-1',
    },
  };
}

describe('capture engine', () => {
  test('a live disk becomes a clone in the quarantine pool with the same content, provenance and an exact expiry', async () => {
    const { ledger, blocks, engine } = await setup();
    const row = await engine.capture(request({ kind: 'live', image: { pool: 'vms', image: `${VM}_disk` } }));
    assert.equal(row.state, 'quarantined');
    assert.equal(row.expires_at, Date.parse('2026-05-01T16:30:00Z') + 7 * 86_400_000);
    const location = { pool: 'quarantine', image: row.location_image };
    assert.ok(blocks.peekData(location).equals(content));
    assert.doesNotMatch(row.location_image, new RegExp(`^${VM}`), 'never named like the instance (prefix cleanup)');
    const meta = await blocks.listMeta(location);
    assert.equal(JSON.parse(meta['quarantine.provenance'] ?? '{}').deletedBy, 'alice');
    // Our own snapshot is gone from the source's user snapshots; the clone pins it in the trash namespace.
    assert.deepEqual((await blocks.listSnapshots({ pool: 'vms', image: `${VM}_disk` })).map((s) => s.name), []);
    const audit = await ledger.db.selectFrom('audit').select(['action', 'subject']).execute();
    // Each step of the row is in the trail (planned, snapshotting, cloning, quarantined), then the capture itself.
    assert.deepEqual(audit, [...['quarantine.planned', 'quarantine.changed', 'quarantine.changed', 'quarantine.changed', 'capture'].map((action) => ({ action, subject: row.id }))]);
    assert.equal((await verifyAudit(ledger.db)).ok, true);
    await ledger.close();
  });

  test('the clone step keeps the origin open (the clone goes through its header) and lets go of it whatever the step ends in', async () => {
    const { ledger, blocks, engine } = await setup();
    const seen: string[][] = [];
    const keepOpen = blocks.keepOpen.bind(blocks);
    blocks.keepOpen = (images) => {
      seen.push(images.map((i) => `${i.pool}/${i.image}`));
      return keepOpen(images);
    };
    const row = await engine.capture(request({ kind: 'live', image: { pool: 'vms', image: `${VM}_disk` } }));
    assert.equal(row.state, 'quarantined');
    assert.deepEqual(seen, [[`vms/${VM}_disk`]]);
    assert.equal(blocks.keptOpen.size, 0, 'released after a capture');
    // A Ceph error in the step: released all the same.
    const other = `${VM.slice(0, -1)}9_disk`;
    await blocks.importImage({ stream: Readable.from([content]) }, { pool: 'vms', image: other });
    blocks.failNext('setMeta', new Error('the cluster went away'));
    await assert.rejects(engine.capture({ ...request({ kind: 'live', image: { pool: 'vms', image: other } }), instanceId: VM.replace(/.$/, '9') }), /went away/);
    assert.equal(blocks.keptOpen.size, 0, 'released after a failed step');
    await ledger.close();
  });

  test('capturing the same source image twice gives one quarantine', async () => {
    const { ledger, engine } = await setup();
    const src = { kind: 'live' as const, image: { pool: 'vms', image: `${VM}_disk` } };
    const [a, b] = await Promise.all([engine.capture(request(src)), engine.capture(request(src))]);
    const again = await engine.capture(request(src));
    assert.equal(a.id, b.id);
    assert.equal(a.id, again.id);
    assert.equal((await engine.store.list()).length, 1);
    await ledger.close();
  });

  test('a trashed disk is adopted: restored under an operator name, cloned, and put back in the trash as the anchor', async () => {
    const { ledger, blocks, engine } = await setup();
    await blocks.moveToTrash({ pool: 'vms', image: `${VM}_disk` });
    const [entry] = await blocks.listTrash({ pool: 'vms' });
    assert.ok(entry);
    const row = await engine.capture(request({ kind: 'trash', entry }, 'trash'));
    assert.equal(row.state, 'quarantined');
    assert.equal(row.anchor_trash_id, entry.id);
    assert.ok(blocks.peekData({ pool: 'quarantine', image: row.location_image }).equals(content));
    assert.deepEqual(await blocks.listImages({ pool: 'vms' }), [], 'nothing reappears in the cloud pool');
    assert.equal((await blocks.listTrash({ pool: 'vms' }))[0]?.id, entry.id);
    await ledger.close();
  });

  test('a live source the cloud trashed mid-capture is followed into the trash', async () => {
    let blocksRef: FakeBlockStore | undefined;
    const { ledger, blocks, engine } = await setup(async (_id, step) => {
      if (step === 'snapshotting' && blocksRef !== undefined) {
        await blocksRef.moveToTrash({ pool: 'vms', image: `${VM}_disk` });
        blocksRef = undefined;
      }
    });
    blocksRef = blocks;
    const row = await engine.capture(request({ kind: 'live', image: { pool: 'vms', image: `${VM}_disk` } }));
    assert.equal(row.state, 'quarantined');
    assert.ok(blocks.peekData({ pool: 'quarantine', image: row.location_image }).equals(content));
    await ledger.close();
  });

  test('the cloud deleting the disk first is a failed capture with the reason, recorded in the audit trail', async () => {
    const { ledger, blocks, engine } = await setup(async (_id, step) => {
      if (step === 'snapshotting') await blocks.removeImage({ pool: 'vms', image: `${VM}_disk` }).catch(() => undefined);
    });
    const row = await engine.capture(request({ kind: 'live', image: { pool: 'vms', image: `${VM}_disk` } }));
    assert.equal(row.state, 'failed');
    assert.match(row.failure ?? '', /gone before it could be snapshotted/);
    const audit = await ledger.db.selectFrom('audit').select('action').execute();
    assert.deepEqual(audit.map((a) => a.action), ['quarantine.planned', 'quarantine.changed', 'quarantine.changed', 'capture.failed']);
    await ledger.close();
  });

  for (const crashAt of ['snapshotting', 'cloning'] as const) {
    for (const kind of ['live', 'trash'] as const) {
      test(`a crash at ${crashAt} (${kind} source) resumes to exactly one quarantine`, async () => {
        let crash = true;
        const { ledger, blocks, engine } = await setup(async (_id, step) => {
          if (crash && step === crashAt) {
            crash = false;
            throw new Error(`simulated crash at ${step}`);
          }
        });
        let source: CaptureRequest['source'] = { kind: 'live', image: { pool: 'vms', image: `${VM}_disk` } };
        if (kind === 'trash') {
          await blocks.moveToTrash({ pool: 'vms', image: `${VM}_disk` });
          const [entry] = await blocks.listTrash({ pool: 'vms' });
          assert.ok(entry);
          source = { kind: 'trash', entry };
        }
        await assert.rejects(engine.capture(request(source, kind === 'trash' ? 'trash' : 'onDelete')), /simulated crash/);
        const [stuck] = await engine.store.list();
        assert.equal(stuck?.state, crashAt);
        // A new engine, as after a restart, on the same ledger and store.
        // Its default retention differs from the request's: the planned row's must win.
        const restarted = new CaptureEngine({ db: ledger.db, blocks, quarantine: { pool: 'quarantine' }, logger: silentLogger, defaultRetentionMs: 30 * 86_400_000 });
        const resumed = await restarted.resume();
        assert.equal(resumed.length, 1);
        assert.equal(resumed[0]?.state, 'quarantined');
        assert.equal(resumed[0]?.expires_at, (resumed[0]?.captured_at ?? 0) + 7 * 86_400_000, 'resumed with the retention it was planned with');
        const rows = await restarted.store.list();
        assert.equal(rows.length, 1);
        assert.deepEqual(await blocks.listImages({ pool: 'quarantine' }), [rows[0]?.location_image]);
        assert.ok(blocks.peekData({ pool: 'quarantine', image: rows[0]?.location_image ?? '' }).equals(content));
        // Capturing again after the restart finds the same quarantine.
        const again = await restarted.capture(request(source, kind === 'trash' ? 'trash' : 'onDelete'));
        assert.equal(again.id, rows[0]?.id);
        await ledger.close();
      });
    }
  }

  for (const op of ['restoreFromTrash', 'createSnapshot', 'clone', 'setMeta', 'removeSnapshot', 'moveToTrash'] as const) {
    test(`a crash right after ${op} succeeded, before it was recorded, resumes to exactly one quarantine`, async () => {
      const { ledger, blocks } = await setup();
      await blocks.moveToTrash({ pool: 'vms', image: `${VM}_disk` });
      const [entry] = await blocks.listTrash({ pool: 'vms' });
      assert.ok(entry);
      let armed = true;
      // The call reaches Ceph, then the process dies before the ledger hears of it.
      const dying = new Proxy(blocks, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver);
          if (prop !== op || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
          return async (...args: unknown[]) => {
            const r = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
            if (armed) {
              armed = false;
              throw new Error(`died after ${op}`);
            }
            return r;
          };
        },
      });
      const first = new CaptureEngine({ db: ledger.db, blocks: dying, quarantine: { pool: 'quarantine' }, logger: silentLogger });
      await assert.rejects(first.capture(request({ kind: 'trash', entry }, 'trash')), /died after/);
      const restarted = new CaptureEngine({ db: ledger.db, blocks, quarantine: { pool: 'quarantine' }, logger: silentLogger });
      const [resumed] = await restarted.resume();
      assert.equal(resumed?.state, 'quarantined');
      assert.equal((await restarted.store.list()).length, 1);
      assert.equal((await blocks.listImages({ pool: 'quarantine' })).length, 1);
      assert.deepEqual(await blocks.listImages({ pool: 'vms' }), []);
      assert.ok(blocks.peekData({ pool: 'quarantine', image: resumed?.location_image ?? '' }).equals(content));
      await ledger.close();
    });
  }

  test('flatten makes the quarantine independent and releases an adopted anchor', async () => {
    const { ledger, blocks, engine } = await setup();
    await blocks.moveToTrash({ pool: 'vms', image: `${VM}_disk` });
    const [entry] = await blocks.listTrash({ pool: 'vms' });
    assert.ok(entry);
    const row = await engine.capture(request({ kind: 'trash', entry }, 'trash'));
    const flat = await engine.flatten(row.id);
    assert.equal(flat?.flattened, 1);
    assert.equal(flat?.anchor_trash_id, null);
    assert.deepEqual(await blocks.listTrash({ pool: 'vms' }), []);
    assert.ok(blocks.peekData({ pool: 'quarantine', image: row.location_image }).equals(content));
    await ledger.close();
  });
});
