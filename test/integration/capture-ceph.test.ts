// The capture engine, sweep and investigator reads on the real Ceph cluster,
// with the cloud acting as its own restricted cephx user (client.nova) and the
// operator as client.quarantine-operator.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { RbdCli } from '../../operator/ceph/rbd-cli.ts';
import { RbdHasSnapshotsError, RbdPermissionDeniedError } from '../../operator/ceph/errors.ts';
import type { ImageSpec } from '../../operator/domain/block-store.ts';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { CaptureEngine, type CaptureRequest } from '../../operator/capture/engine.ts';
import { sweep } from '../../operator/capture/sweep.ts';
import { upsertHold } from '../../operator/capture/holds.ts';
import { exportQuarantine, restoreQuarantine } from '../../operator/capture/restore.ts';
import { silentLogger } from '../../operator/log.ts';
import { requireEnv, uniqueSuffix } from '../support/env.ts';
import { sha256Of } from '../support/ceph-checks.ts';

const conf = requireEnv('QTEST_CEPH_CONF');
const cloudUser = new RbdCli({ cephConf: conf, id: requireEnv('QTEST_CEPH_CLOUD_ID') });
const operatorUser = new RbdCli({ cephConf: conf, id: requireEnv('QTEST_CEPH_OPERATOR_ID') });
const qpool = requireEnv('QTEST_CEPH_QUARANTINE_POOL');
const MiB = 1024 * 1024;

function uuid(): string {
  const h = randomBytes(16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

async function writeDisk(image: ImageSpec, bytes: Buffer): Promise<void> {
  const { Readable } = await import('node:stream');
  await cloudUser.importImage({ stream: Readable.from([bytes]) }, image);
}

function request(vm: string, source: CaptureRequest['source'], mode: CaptureRequest['mode']): CaptureRequest {
  return {
    cloud: 'lab', instanceId: vm, disk: 'disk', mode, policy: { name: 'all', retentionMs: 3_600_000, flatten: false }, source,
    provenance: { cloud: 'lab', instance: { id: vm, name: 'batch-1', project: 'hep', user: 'alice', host: 'cmp-1', image: null, flavor: null, createdAt: null }, addresses: [], deletedAt: null, deletedBy: 'alice', messageId: 'm-1' },
  };
}

describe('capture on real Ceph', () => {
  let ledger: LedgerDb;
  let engine: CaptureEngine;
  let now = Date.now();
  const made: string[] = [];
  before(async () => {
    ledger = openLedgerDb('sqlite::memory:');
    await migrateToLatest(ledger);
    engine = new CaptureEngine({ db: ledger.db, blocks: operatorUser, quarantine: { pool: qpool }, logger: silentLogger, clock: () => new Date(now) });
  });
  after(async () => {
    // Leave the shared cluster as we found it.
    for (const q of await engine.store.list()) {
      await sweep({ db: ledger.db, blocksFor: () => operatorUser, logger: silentLogger }, { now: new Date(8_000_000_000_000), dryRun: false, policies: [] }).catch(() => undefined);
      void q;
    }
    for (const image of made) await cloudUser.removeImage({ pool: 'vms', image }).catch(() => undefined);
    for (const e of await cloudUser.listTrash({ pool: 'vms' })) if (made.includes(e.name) || e.name.startsWith('qop-anchor.')) await operatorUser.removeFromTrash({ pool: 'vms', imageId: e.id }, { force: true }).catch(() => undefined);
    await ledger.close();
  });

  test('a live disk is quarantined with the same SHA-256; the cloud user cannot delete it; the source keeps no user snapshot', async () => {
    const vm = uuid();
    const image = { pool: 'vms', image: `${vm}_disk` };
    const data = randomBytes(4 * MiB);
    made.push(image.image);
    await writeDisk(image, data);
    const before = createHash('sha256').update(data).digest('hex');
    const row = await engine.capture(request(vm, { kind: 'live', image }, 'onDelete'));
    assert.equal(row.state, 'quarantined', row.failure ?? '');
    const location = { pool: qpool, image: row.location_image };
    assert.equal(await sha256Of(operatorUser, location), before);
    await assert.rejects(cloudUser.removeImage(location), RbdPermissionDeniedError);
    await assert.rejects(cloudUser.purgeSnapshots(location), RbdPermissionDeniedError);
    assert.deepEqual((await cloudUser.listSnapshots(image)).map((s) => s.name), []);
    // The cloud now deletes its disk the way Nova does: it cannot, because our clone pins it.
    await assert.rejects(cloudUser.removeImage(image), RbdHasSnapshotsError);
    const meta = await operatorUser.listMeta(location);
    assert.equal(meta['quarantine.instance'], vm);
    assert.equal(JSON.parse(meta['quarantine.provenance'] ?? '{}').deletedBy, 'alice');
    // The orphan is taken over: out of the cloud's listing, into the trash, as the anchor.
    assert.equal(await engine.adoptOrphan(row.id), true);
    assert.ok(!(await cloudUser.listImages({ pool: 'vms' })).includes(image.image));
    assert.equal(await sha256Of(operatorUser, location), before, 'still intact after the source left');
  });

  test('a disk the pool moved to the trash is adopted and survives the cloud purging its trash', async () => {
    const vm = uuid();
    const image = { pool: 'vms', image: `${vm}_disk` };
    const data = randomBytes(2 * MiB);
    made.push(image.image);
    await writeDisk(image, data);
    await cloudUser.moveToTrash(image);
    const entry = (await cloudUser.listTrash({ pool: 'vms' })).find((e) => e.name === image.image);
    assert.ok(entry);
    const row = await engine.capture(request(vm, { kind: 'trash', entry }, 'trash'));
    assert.equal(row.state, 'quarantined', row.failure ?? '');
    assert.equal(await sha256Of(operatorUser, { pool: qpool, image: row.location_image }), createHash('sha256').update(data).digest('hex'));
    // The cloud's user tries to finish the job: the anchor cannot be removed while the quarantine needs it.
    await assert.rejects(cloudUser.removeFromTrash({ pool: 'vms', imageId: entry.id }, { force: true }));
    assert.ok(!(await cloudUser.listImages({ pool: 'vms' })).some((n) => n.startsWith(vm)), 'nothing reappears under the instance name');
  });

  test('export and restore reproduce the content; a hold keeps it past expiry; the sweep then removes it for real', async () => {
    const vm = uuid();
    const image = { pool: 'vms', image: `${vm}_disk` };
    const data = randomBytes(3 * MiB);
    const digest = createHash('sha256').update(data).digest('hex');
    made.push(image.image);
    await writeDisk(image, data);
    const row = await engine.capture(request(vm, { kind: 'live', image }, 'softDelete'));
    const ctx = { db: ledger.db, blocks: operatorUser, actor: 'investigator' };
    const sink = new Writable({ write(_c, _e, done) { done(); } });
    const exported = await exportQuarantine(ctx, row.id, sink, '-');
    assert.equal(exported.sha256, digest);
    const target = { pool: 'images', image: `case-${uniqueSuffix()}` };
    const restored = await restoreQuarantine(ctx, row.id, target);
    assert.equal(restored.sha256, digest);
    assert.equal(await sha256Of(operatorUser, target), digest);
    await operatorUser.removeImage(target);

    await upsertHold(ledger.db, { name: `case-${vm}`, selector: { instances: [vm] }, actor: 'investigator' }, new Date(now));
    now += 2 * 3_600_000;
    const deps = { db: ledger.db, blocksFor: () => operatorUser, logger: silentLogger };
    const held = await sweep(deps, { now: new Date(now), dryRun: false, policies: [] });
    assert.ok(held.held.some((h) => h.id === row.id));
    assert.ok((await operatorUser.listImages({ pool: qpool })).includes(row.location_image));
    await ledger.db.updateTable('holds').set({ released_at: now }).execute();
    const swept = await sweep(deps, { now: new Date(now), dryRun: false, policies: [] });
    assert.ok(swept.deleted.some((d) => d.id === row.id));
    assert.ok(!(await operatorUser.listImages({ pool: qpool })).includes(row.location_image));
    assert.ok(!(await operatorUser.listTrash({ pool: qpool })).some((e) => e.name === row.location_image), 'not deferred to the trash');
  });
});
