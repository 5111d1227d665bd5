// Isolation on the real Ceph cluster, attacked as the cloud's own compute
// user (client.nova). Before isolation a quarantine made by snapshot + clone
// reads its data from the cloud's pool, so a raw write there changes it:
// verify catches that against the digest taken at capture. After isolation
// every attack on what the quarantine used to depend on is refused or no
// longer reaches it, and its digest stays the capture digest. The operator
// isolates live-disk captures with the least-privilege snapshot caps
// (client.quarantine-snapshot) and trash adoptions with client.quarantine-operator.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { RbdCli } from '../../operator/ceph/rbd-cli.ts';
import type { BlockStore, ImageSpec } from '../../operator/domain/block-store.ts';
import { TokenBucket } from '../../operator/capture/bandwidth.ts';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { verifyAudit } from '../../operator/ledger/audit.ts';
import { CaptureEngine, type CaptureRequest } from '../../operator/capture/engine.ts';
import { Isolation } from '../../operator/capture/isolation.ts';
import { verifyQuarantine } from '../../operator/capture/restore.ts';
import { destroyImage } from '../../operator/capture/sweep.ts';
import { systemClock } from '../../operator/kube/runtime/clock.ts';
import { silentLogger } from '../../operator/log.ts';
import { requireEnv, uniqueSuffix } from '../support/env.ts';
import { cephAs, denied, sha256Of } from '../support/ceph-checks.ts';

const conf = requireEnv('QTEST_CEPH_CONF');
const cloudId = requireEnv('QTEST_CEPH_CLOUD_ID');
const admin = new RbdCli({ cephConf: conf, id: 'admin' });
const cloud = new RbdCli({ cephConf: conf, id: cloudId });
const snapshotOperator = new RbdCli({ cephConf: conf, id: requireEnv('QTEST_CEPH_SNAPSHOT_OPERATOR_ID') });
const fullOperator = new RbdCli({ cephConf: conf, id: requireEnv('QTEST_CEPH_OPERATOR_ID') });
const qpool = requireEnv('QTEST_CEPH_QUARANTINE_POOL');
const MiB = 1024 * 1024;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A raw call of `tool` (rados or rbd) as `id`: its exit status and stderr, never a throw. */
const as = (id: string, tool: 'rados' | 'rbd', args: string[]) => cephAs(conf, id, tool, args);

function request(vm: string, source: CaptureRequest['source'], mode: CaptureRequest['mode']): CaptureRequest {
  return {
    cloud: 'lab', instanceId: vm, disk: 'disk', mode, policy: { name: 'all', retentionMs: 3_600_000, flatten: false, isolate: true }, source,
    provenance: { cloud: 'lab', instance: { id: vm, name: 'vm', project: 'hep', user: 'alice', host: 'cmp-1', image: null, flavor: null, createdAt: null }, addresses: [], deletedAt: null, deletedBy: 'alice', messageId: 'm-1' },
  };
}

describe('isolation on real Ceph, attacked as the cloud\'s compute user', () => {
  const s = uniqueSuffix();
  const scratch = mkdtempSync(join(tmpdir(), 'qop-iso-'));
  const junk = join(scratch, 'junk');
  let ledger: LedgerDb;
  const quarantines: ImageSpec[] = [];
  const disks: ImageSpec[] = [];
  const closers: (() => Promise<void>)[] = [];

  before(async () => {
    writeFileSync(junk, randomBytes(4096));
    ledger = openLedgerDb('sqlite::memory:');
    await migrateToLatest(ledger);
  });

  after(async () => {
    for (const close of closers) await close();
    for (const img of [...quarantines, ...disks]) await destroyImage(admin, img).catch(() => undefined);
    await ledger.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  const engineAs = (blocks: RbdCli) => new CaptureEngine({ db: ledger.db, blocks, quarantine: { pool: qpool }, logger: silentLogger, owner: 'it' });
  const isolationAs = (engine: CaptureEngine, blocks: RbdCli, beforeStep?: (id: string, step: string) => Promise<void>) =>
    new Isolation({ store: engine.store, blocks, clock: systemClock, logger: silentLogger, owner: 'it', beforeStep });

  async function liveDisk(name: string, bytes: Buffer): Promise<ImageSpec> {
    const image = { pool: 'vms', image: `${name}-${s}_disk` };
    disks.push(image);
    await cloud.importImage({ stream: Readable.from([bytes]) }, image);
    return image;
  }

  test('before isolation completes, a raw write into the live disk\'s data objects reaches the quarantine, and verify reports it against the capture digest', async () => {
    const data = randomBytes(8 * MiB);
    const disk = await liveDisk('early', data);
    const engine = engineAs(snapshotOperator);
    const row = await engine.capture(request(`early-${s}`, { kind: 'live', image: disk }, 'softDelete'));
    assert.equal(row.state, 'quarantined', row.failure ?? '');
    quarantines.push({ pool: qpool, image: row.location_image });
    let tampered = false;
    const isolation = isolationAs(engine, snapshotOperator, async (qid, step) => {
      // The copy starts beside the digest; here it waits until the digest is recorded.
      if (step !== 'copy' || tampered) return;
      for (let i = 0; i < 600 && (await engine.store.get(qid))?.digest == null; i++) await new Promise((r) => setTimeout(r, 50));
      tampered = true;
      // Between the digest and the copy, the compute user overwrites the disk's first data object.
      const id = (await admin.info(disk)).id;
      const put = await as(cloudId, 'rados', ['-p', 'vms', 'put', `rbd_data.${id}.0000000000000000`, junk]);
      assert.equal(put.code, 0, `the cloud may write its own disk's objects: ${put.stderr}`);
    });
    assert.equal(await isolation.reconcile(row.id), 'isolated');
    assert.ok(tampered);
    const q = await engine.store.get(row.id);
    assert.equal(q?.digest, sha(data), 'the digest is that of the disk at capture');
    const v = await verifyQuarantine({ db: ledger.db, blocks: snapshotOperator, actor: 'cert' }, row.id);
    assert.equal(v.matches, false, 'the change is detected');
    assert.equal(v.recorded, sha(data));
  });

  for (const driver of ['cli', 'librbd'] as const) {
    test(`a paced isolation (${driver}): the copy keeps to its bandwidth, beside the digest; the quarantine is the disk and no longer a clone`, async () => {
      // 48 MiB of data in a 256 MiB disk, copied at 8 MiB/s: a second's worth at once, the other 40 MiB in 5 s.
      const data = Buffer.alloc(256 * MiB);
      for (const at of [0, 40, 100, 200]) randomBytes(12 * MiB).copy(data, at * MiB);
      const disk = await liveDisk(`paced-${driver}`, data);
      let blocks: BlockStore = snapshotOperator;
      if (driver === 'librbd') {
        const { LibrbdStore } = await import('../../operator/ceph/librbd.ts');
        const lib = new LibrbdStore({ cephConf: conf, id: requireEnv('QTEST_CEPH_SNAPSHOT_OPERATOR_ID') });
        closers.push(() => lib.close());
        blocks = lib;
      }
      const engine = new CaptureEngine({ db: ledger.db, blocks, quarantine: { pool: qpool }, logger: silentLogger, owner: 'it' });
      const row = await engine.capture(request(`paced-${driver}-${s}`, { kind: 'live', image: disk }, 'softDelete'));
      assert.equal(row.state, 'quarantined', row.failure ?? '');
      const location = { pool: qpool, image: row.location_image };
      quarantines.push(location);
      const isolation = new Isolation({ store: engine.store, blocks, clock: systemClock, logger: silentLogger, owner: 'it', bandwidth: new TokenBucket(systemClock, 8 * MiB) });
      assert.equal(await isolation.reconcile(row.id), 'isolated');
      const q = await engine.store.get(row.id);
      assert.equal(q?.digest, sha(data));
      assert.equal((await admin.info(location)).parent, undefined);
      const notes = (await ledger.db.selectFrom('audit').select(['details']).where('subject', '=', row.id).execute()).map((a) => JSON.parse(a.details) as Record<string, unknown>);
      const isolated = notes.find((n) => n['step'] === 'isolated');
      assert.equal(isolated?.['copy'], 'paced copy, then flatten');
      const copied = Number(isolated?.['copiedBytes']);
      assert.ok(copied >= 48 * MiB && copied <= 64 * MiB, `${copied} bytes copied`);
      const achieved = Number(isolated?.['achievedMiBps']);
      // Over the copy the rate may exceed the limit by the burst alone: at most copied × 8 / (copied − 8 MiB).
      assert.ok(achieved > 0 && achieved <= ((copied / MiB) * 8) / (copied / MiB - 8) * 1.02, `${achieved} MiB/s against a limit of 8`);
      assert.ok(notes.find((n) => n['step'] === 'digest')?.['copyBeside'] === true);
      assert.equal((await verifyQuarantine({ db: ledger.db, blocks, actor: 'cert' }, row.id)).matches, true);
    });
  }

  test('a live-disk capture isolated with the snapshot caps: the cloud user\'s writes, removals and renames no longer reach it, and it cannot touch the quarantine', async () => {
    const data = randomBytes(8 * MiB);
    const disk = await liveDisk('live', data);
    const sourceId = (await admin.info(disk)).id;
    const engine = engineAs(snapshotOperator);
    const row = await engine.capture(request(`live-${s}`, { kind: 'live', image: disk }, 'softDelete'));
    assert.equal(row.state, 'quarantined', row.failure ?? '');
    const location = { pool: qpool, image: row.location_image };
    quarantines.push(location);
    assert.equal(await isolationAs(engine, snapshotOperator).reconcile(row.id), 'isolated');
    const q = await engine.store.get(row.id);
    assert.equal(q?.isolation, 'isolated');
    assert.equal(q?.digest, sha(data));
    const info = await admin.info(location);
    assert.equal(info.parent, undefined, 'the quarantine no longer reads from the cloud\'s pool');
    assert.deepEqual((await admin.listSnapshots(disk, { includeTrash: true })).map((x) => x.name), [], 'the capture snapshot is released from the live disk');

    // Attacks on what the quarantine depended on: they now reach only the cloud's own disk.
    const object = `rbd_data.${sourceId}.0000000000000000`;
    assert.equal((await as(cloudId, 'rados', ['-p', 'vms', 'put', object, junk])).code, 0);
    assert.equal((await as(cloudId, 'rados', ['-p', 'vms', 'rm', `rbd_data.${sourceId}.0000000000000001`])).code, 0);
    assert.equal((await as(cloudId, 'rbd', ['rename', `vms/${disk.image}`, `vms/${disk.image}-x`])).code, 0);
    assert.equal((await as(cloudId, 'rbd', ['rm', '--no-progress', `vms/${disk.image}-x`])).code, 0, 'the cloud deletes its disk: nothing pins it any more');
    // And on the quarantine itself: refused.
    await denied('reading the quarantine', cloud.info(location));
    await denied('exporting the quarantine', (async () => { const h = cloud.exportImage(location); h.stream.resume(); await h.done; })());
    await denied('removing the quarantine', cloud.removeImage(location));
    await denied('trashing the quarantine', cloud.moveToTrash(location));
    const rename = await as(cloudId, 'rbd', ['rename', `${qpool}/${location.image}`, `${qpool}/x-${s}`]);
    assert.match(rename.stderr, /Operation not permitted/);
    for (const args of [['put', `rbd_data.${info.id}.0000000000000000`, junk], ['rm', `rbd_data.${info.id}.0000000000000000`], ['rm', `rbd_header.${info.id}`]]) {
      const r = await as(cloudId, 'rados', ['-p', qpool, ...args]);
      assert.notEqual(r.code, 0, `rados ${args[0] ?? ''} in the quarantine pool`);
      assert.match(r.stderr, /Operation not permitted/);
    }
    const v = await verifyQuarantine({ db: ledger.db, blocks: snapshotOperator, actor: 'cert' }, row.id);
    assert.equal(v.matches, true, 'the digest is unchanged');
    assert.equal(v.sha256, sha(data));
  });

  test('a trash adoption isolated: the anchor leaves the cloud\'s trash, so restoring, renaming or removing it has nothing to act on, and the digest stays', async () => {
    const data = randomBytes(8 * MiB);
    const disk = await liveDisk('trash', data);
    await cloud.moveToTrash(disk);
    const entry = (await cloud.listTrash({ pool: 'vms' })).find((e) => e.name === disk.image);
    assert.ok(entry);
    const engine = engineAs(fullOperator);
    const row = await engine.capture(request(`trash-${s}`, { kind: 'trash', entry }, 'trash'));
    assert.equal(row.state, 'quarantined', row.failure ?? '');
    const location = { pool: qpool, image: row.location_image };
    quarantines.push(location);
    // Before isolation the anchor sits in the cloud's trash, within the cloud user's reach.
    assert.ok((await cloud.listTrash({ pool: 'vms' })).some((e) => e.id === entry.id));
    assert.equal(await isolationAs(engine, fullOperator).reconcile(row.id), 'isolated');
    const q = await engine.store.get(row.id);
    assert.equal(q?.anchor_trash_id, null);
    assert.equal(q?.digest, sha(data));
    assert.ok(!(await cloud.listTrash({ pool: 'vms' })).some((e) => e.id === entry.id), 'the anchor is released');
    assert.equal((await admin.info(location)).parent, undefined);
    for (const args of [['trash', 'restore', `vms/${entry.id}`], ['trash', 'rm', `vms/${entry.id}`], ['rename', `vms/qop-anchor.${row.id}`, `vms/${disk.image}`]]) {
      const r = await as(cloudId, 'rbd', args);
      assert.notEqual(r.code, 0, `rbd ${args.join(' ')}: there is no anchor left to act on`);
    }
    assert.equal((await as(cloudId, 'rados', ['-p', 'vms', 'put', `rbd_data.${entry.id}.0000000000000000`, junk])).code, 0, 'a stray object in the cloud\'s pool is the cloud\'s business');
    assert.equal((await verifyQuarantine({ db: ledger.db, blocks: fullOperator, actor: 'cert' }, row.id)).matches, true);
    const audit = await verifyAudit(ledger.db);
    assert.ok(audit.ok, JSON.stringify(audit.problems));
  });
});
