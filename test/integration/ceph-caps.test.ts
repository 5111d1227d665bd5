// Least privilege, proven on the real cluster. The operator, with the caps
// docs/cloud-operators.md gives it for capturing by snapshot
// (client.quarantine-snapshot of test/env), captures, flattens and exports a
// disk, and is refused when it tries to remove or change a live disk or to
// write into the Glance pool. The cloud's own compute user (client.nova) is
// refused everything in the quarantine pool.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';
import { RbdCli } from '../../operator/ceph/rbd-cli.ts';
import type { ImageSpec } from '../../operator/domain/block-store.ts';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { CaptureEngine } from '../../operator/capture/engine.ts';
import { exportQuarantine } from '../../operator/capture/restore.ts';
import { destroyImage } from '../../operator/capture/sweep.ts';
import { silentLogger } from '../../operator/log.ts';
import { requireEnv, uniqueSuffix } from '../support/env.ts';
import { cephAs, denied, sha256Of } from '../support/ceph-checks.ts';

const run = promisify(execFile);
const conf = requireEnv('QTEST_CEPH_CONF');
const cloudId = requireEnv('QTEST_CEPH_CLOUD_ID');
const operatorId = requireEnv('QTEST_CEPH_SNAPSHOT_OPERATOR_ID');
const admin = new RbdCli({ cephConf: conf, id: 'admin' });
const cloud = new RbdCli({ cephConf: conf, id: cloudId });
const operator = new RbdCli({ cephConf: conf, id: operatorId });
const qpool = requireEnv('QTEST_CEPH_QUARANTINE_POOL');
const MiB = 1024 * 1024;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A raw RADOS call as `id`; resolves to its exit status and stderr, never throws. */
const rados = (id: string, args: string[]) => cephAs(conf, id, 'rados', args);

describe('cephx caps: the snapshot-capturing operator and the cloud user', () => {
  const s = uniqueSuffix();
  const base = { pool: 'images', image: `glance-${s}` };
  const disk = { pool: 'vms', image: `${s}-vm_disk` };
  const live = { pool: 'vms', image: `${s}-other_disk` };
  const data = randomBytes(6 * MiB);
  const liveData = randomBytes(5 * MiB);
  let ledger: LedgerDb;
  let engine: CaptureEngine;
  let qid = '';
  let location: ImageSpec = { pool: qpool, image: '' };

  before(async () => {
    ledger = openLedgerDb('sqlite::memory:');
    await migrateToLatest(ledger);
    engine = new CaptureEngine({ db: ledger.db, blocks: operator, quarantine: { pool: qpool }, logger: silentLogger });
    // A Glance base image and a VM disk cloned from it, as Nova makes them; another VM's live disk.
    await admin.importImage({ stream: Readable.from([data]) }, base);
    await admin.createSnapshot({ ...base, snapshot: 'snap' });
    await run('rbd', [`--conf=${conf}`, '--id=admin', 'snap', 'protect', `${base.pool}/${base.image}@snap`]);
    await run('rbd', [`--conf=${conf}`, '--id=admin', 'clone', `${base.pool}/${base.image}@snap`, `${disk.pool}/${disk.image}`]);
    await admin.importImage({ stream: Readable.from([liveData]) }, live);
  });

  after(async () => {
    await destroyImage(admin, location).catch(() => undefined);
    for (const img of [disk, live]) await destroyImage(admin, img).catch(() => undefined);
    await run('rbd', [`--conf=${conf}`, '--id=admin', 'snap', 'unprotect', `${base.pool}/${base.image}@snap`]).catch(() => undefined);
    await destroyImage(admin, base).catch(() => undefined);
    await ledger.close();
  });

  test('with those caps the operator captures a disk by snapshot, flattens it out of the Glance chain and exports it with the same SHA-256', async () => {
    const before = await sha256Of(admin, disk);
    const row = await engine.capture({
      cloud: 'lab', instanceId: `${s}-vm`, disk: 'disk', mode: 'softDelete', policy: { name: 'all', retentionMs: 3_600_000, flatten: false }, source: { kind: 'live', image: disk },
      provenance: { cloud: 'lab', instance: { id: `${s}-vm`, name: 'vm', project: 'hep', user: 'alice', host: 'cmp-1', image: null, flavor: null, createdAt: null }, addresses: [], deletedAt: null, deletedBy: 'alice', messageId: 'm-1' },
    });
    assert.equal(row.state, 'quarantined', row.failure ?? '');
    qid = row.id;
    location = { pool: row.location_pool, image: row.location_image };
    const flat = await engine.flatten(row.id);
    assert.equal(flat?.flattened, 1);
    const chunks: Buffer[] = [];
    const r = await exportQuarantine({ db: ledger.db, blocks: operator, actor: 'investigator' }, row.id, new Writable({ write(c: Buffer, _e, done) { chunks.push(c); done(); } }), '/evidence/x.raw');
    assert.equal(r.sha256, before);
    assert.equal(sha(Buffer.concat(chunks)), before);
  });

  test('the operator cannot remove, rename, trash, shrink or overwrite a live disk: its content stays the same', async () => {
    const before = await sha256Of(admin, live);
    await denied('rbd rm of a live disk', operator.removeImage(live));
    await denied('rbd trash mv of a live disk', operator.moveToTrash(live));
    await assert.rejects(run('rbd', [`--conf=${conf}`, `--id=${operatorId}`, 'rename', `${live.pool}/${live.image}`, `${live.pool}/${live.image}-x`]), /Operation not permitted/);
    await assert.rejects(run('rbd', [`--conf=${conf}`, `--id=${operatorId}`, 'resize', '--allow-shrink', '--no-progress', '--size', '1M', `${live.pool}/${live.image}`]), /Operation not permitted/);
    const info = await admin.info(live);
    const object = `rbd_data.${info.id}.0000000000000000`;
    const put = await rados(operatorId, ['-p', live.pool, 'put', object, '/dev/null']);
    assert.notEqual(put.code, 0, 'a data object of a live disk cannot be overwritten');
    assert.match(put.stderr, /Operation not permitted/);
    const rm = await rados(operatorId, ['-p', live.pool, 'rm', object]);
    assert.notEqual(rm.code, 0, 'a data object of a live disk cannot be deleted');
    assert.equal(await sha256Of(admin, live), before);
    assert.equal((await admin.info(live)).id, info.id);
  });

  test('the operator cannot write into the Glance pool: no image, no snapshot, no object', async () => {
    await denied('rbd create in images', operator.createImage({ pool: 'images', image: `x-${s}` }, MiB));
    await denied('rbd import into images', operator.importImage({ stream: Readable.from([randomBytes(1024)]) }, { pool: 'images', image: `y-${s}` }));
    await denied('a snapshot of a Glance image', operator.createSnapshot({ ...base, snapshot: `qop-${s}` }));
    await denied('rbd rm of a Glance image', operator.removeImage(base));
    const put = await rados(operatorId, ['-p', 'images', 'put', `obj-${s}`, '/dev/null']);
    assert.notEqual(put.code, 0);
    assert.match(put.stderr, /Operation not permitted/);
    assert.deepEqual((await admin.listImages({ pool: 'images' })).filter((n) => n.endsWith(s)), [base.image]);
  });

  test('the cloud user can neither read, write, rename, trash nor remove anything in the quarantine pool', async () => {
    assert.notEqual(qid, '', 'the capture test ran first');
    const before = await sha256Of(admin, location);
    await denied('listing the quarantine pool', cloud.listImages({ pool: qpool }));
    await denied('reading a quarantine', cloud.info(location));
    await denied('removing a quarantine', cloud.removeImage(location));
    await denied('trashing a quarantine', cloud.moveToTrash(location));
    await denied('snapshotting a quarantine', cloud.createSnapshot({ ...location, snapshot: 'x' }));
    await denied('creating an image in the quarantine pool', cloud.createImage({ pool: qpool, image: `x-${s}` }, MiB));
    await denied('listing the quarantine pool trash', cloud.listTrash({ pool: qpool }));
    await assert.rejects(run('rbd', [`--conf=${conf}`, `--id=${cloudId}`, 'rename', `${location.pool}/${location.image}`, `${location.pool}/x-${s}`]), /Operation not permitted/);
    const info = await admin.info(location);
    for (const args of [['ls'], ['get', `rbd_header.${info.id}`, '/dev/null'], ['put', `rbd_data.${info.id}.0000000000000000`, '/dev/null'], ['rm', `rbd_data.${info.id}.0000000000000000`], ['rm', `rbd_header.${info.id}`]]) {
      const r = await rados(cloudId, ['-p', qpool, ...args]);
      assert.notEqual(r.code, 0, `rados ${args[0] ?? ''} in the quarantine pool`);
      assert.match(r.stderr, /Operation not permitted/, `rados ${args.join(' ')}`);
    }
    assert.equal(await sha256Of(admin, location), before, 'the quarantine is unchanged');
  });
});
