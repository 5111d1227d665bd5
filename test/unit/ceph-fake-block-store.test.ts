// The fake stands in for Ceph in other modules' unit tests, so it must keep
// the rules those modules rely on; these are the same rules the integration
// test checks against a real cluster.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { FakeBlockStore, busyError } from '../support/fake-block-store.ts';
import {
  InvalidRequestError,
  RbdBusyError,
  RbdExistsError,
  RbdHasSnapshotsError,
  RbdInvalidArgumentError,
  RbdNotFoundError,
  RbdPermissionDeniedError,
} from '../../operator/ceph/errors.ts';
import { InvalidNameError } from '../../operator/ceph/names.ts';
import type { BlockStore, ImageSpec } from '../../operator/domain/block-store.ts';

const disk: ImageSpec = { pool: 'vms', image: '0f5a6a6c-8d58-4b2e-9d6c-2f0a3c1e9b7d_disk' };
const content = Buffer.from('forensic evidence '.repeat(1000));

async function sha256(store: BlockStore, spec: Parameters<BlockStore['exportImage']>[0]): Promise<string> {
  const { stream, done } = store.exportImage(spec);
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  await done;
  return hash.digest('hex');
}

function clock(start = '2026-11-23T12:00:00Z'): { now: () => Date; advance: (ms: number) => void } {
  let t = new Date(start).getTime();
  return { now: () => new Date(t), advance: (ms) => (t += ms) };
}

async function withDisk(store = new FakeBlockStore()): Promise<FakeBlockStore> {
  await store.importImage({ stream: Readable.from([content]) }, disk);
  return store;
}

describe('FakeBlockStore', () => {
  it('imports and exports the same bytes', async () => {
    const store = await withDisk();
    assert.equal(await sha256(store, disk), createHash('sha256').update(content).digest('hex'));
    assert.equal((await store.info(disk)).sizeBytes, content.length);
    assert.deepEqual(await store.listImages({ pool: 'vms' }), [disk.image]);
  });

  it('exports a created image as zeros of its size', async () => {
    const store = new FakeBlockStore();
    await store.createImage({ pool: 'vms', image: 'blank' }, 3000);
    assert.equal(await sha256(store, { pool: 'vms', image: 'blank' }), createHash('sha256').update(Buffer.alloc(3000)).digest('hex'));
  });

  it('refuses to remove an image with snapshots, and removes it after a purge', async () => {
    const store = await withDisk();
    await store.createSnapshot({ ...disk, snapshot: 's1' });
    await assert.rejects(store.removeImage(disk), RbdHasSnapshotsError);
    await store.purgeSnapshots(disk);
    await store.removeImage(disk);
    await assert.rejects(store.info(disk), RbdNotFoundError);
  });

  it('keeps a clone whole after its parent snapshot is removed (trash snapshot namespace)', async () => {
    const store = await withDisk();
    await store.createSnapshot({ ...disk, snapshot: 'q1' });
    await store.createNamespace({ pool: 'quarantine', namespace: 'cases' });
    const clone = { pool: 'quarantine', namespace: 'cases', image: 'q-disk' };
    await store.clone({ ...disk, snapshot: 'q1' }, clone);
    assert.deepEqual((await store.info(clone)).parent?.image, disk.image);
    assert.ok((await store.info(disk)).opFeatures.includes('clone-parent'));

    await store.removeSnapshot({ ...disk, snapshot: 'q1' });
    assert.deepEqual(await store.listSnapshots(disk), []);
    const [trashed] = await store.listSnapshots(disk, { includeTrash: true });
    assert.equal(trashed?.namespace, 'trash');
    assert.equal(trashed?.originalName, 'q1');
    await assert.rejects(store.removeImage(disk), RbdHasSnapshotsError);

    await assert.rejects(store.removeNamespace({ pool: 'quarantine', namespace: 'cases' }), RbdBusyError);
    await store.flatten(clone);
    assert.equal((await store.info(clone)).parent, undefined);
    assert.deepEqual(await store.listSnapshots(disk, { includeTrash: true }), []);
    await store.removeImage(disk);
    assert.equal(await sha256(store, clone), createHash('sha256').update(content).digest('hex'));
    await assert.rejects(store.flatten(clone), RbdInvalidArgumentError);
    await store.removeImage(clone);
    await store.removeNamespace({ pool: 'quarantine', namespace: 'cases' });
    assert.deepEqual(await store.listNamespaces('quarantine'), []);
  });

  it('defers trash removal until expiry unless forced', async () => {
    const time = clock();
    const store = await withDisk(new FakeBlockStore({ now: time.now }));
    const id = await store.moveToTrash(disk, { expiresAt: new Date(time.now().getTime() + 3600_000) });
    assert.deepEqual(await store.listImages({ pool: 'vms' }), []);
    const [entry] = await store.listTrash({ pool: 'vms' });
    assert.equal(entry?.id, id);
    assert.equal(entry?.expired, false);
    await assert.rejects(store.removeFromTrash({ pool: 'vms', imageId: id }), RbdPermissionDeniedError);
    time.advance(3600_000);
    assert.equal((await store.listTrash({ pool: 'vms' }))[0]?.expired, true);
    await store.removeFromTrash({ pool: 'vms', imageId: id });
    assert.deepEqual(await store.listTrash({ pool: 'vms' }), []);
  });

  it('refuses a trash expiry in the past', async () => {
    const store = await withDisk();
    await assert.rejects(store.moveToTrash(disk, { expiresAt: new Date(0) }), InvalidRequestError);
  });

  it('restores from the trash under a new name, keeping id, snapshots and metadata', async () => {
    const store = await withDisk();
    await store.createSnapshot({ ...disk, snapshot: 's' });
    await store.setMeta(disk, 'quarantine.case', 'CASE-1');
    const id = await store.moveToTrash(disk);
    await store.importImage({ stream: Readable.from([Buffer.from('new')]) }, disk);
    await assert.rejects(store.restoreFromTrash({ pool: 'vms', imageId: id }), RbdExistsError);
    await store.restoreFromTrash({ pool: 'vms', imageId: id }, { name: 'restored' });
    const restored = { pool: 'vms', image: 'restored' };
    assert.equal((await store.info(restored)).id, id);
    assert.equal(await store.getMeta(restored, 'quarantine.case'), 'CASE-1');
    assert.equal((await store.listSnapshots(restored)).length, 1);
  });

  it('needs snapshots purged by id before a trashed image can go', async () => {
    const store = await withDisk();
    await store.createSnapshot({ ...disk, snapshot: 's' });
    const id = await store.moveToTrash(disk);
    const ref = { pool: 'vms', imageId: id };
    await assert.rejects(store.removeFromTrash(ref, { force: true }), RbdHasSnapshotsError);
    assert.equal((await store.listSnapshots(ref)).length, 1);
    await store.purgeSnapshots(ref);
    await store.removeFromTrash(ref, { force: true });
    await assert.rejects(store.info(ref), RbdNotFoundError);
  });

  it('turns removal into a trash move when the pool says so', async () => {
    const time = clock();
    const store = await withDisk(new FakeBlockStore({ now: time.now }));
    assert.equal(await store.getPoolConfig('vms', 'rbd_move_to_trash_on_remove'), undefined);
    await store.setPoolConfig('vms', 'rbd_move_to_trash_on_remove', 'true');
    await store.setPoolConfig('vms', 'rbd_move_to_trash_on_remove_expire_seconds', '86400');
    await store.createSnapshot({ ...disk, snapshot: 's' });
    await store.removeImage(disk);
    const [entry] = await store.listTrash({ pool: 'vms' });
    assert.equal(entry?.name, disk.image);
    assert.equal(entry?.expiresAt.getTime(), time.now().getTime() + 86400_000);
    await store.removePoolConfig('vms', 'rbd_move_to_trash_on_remove');
    await assert.rejects(store.removePoolConfig('vms', 'rbd_move_to_trash_on_remove'), RbdNotFoundError);
  });

  it('answers PermissionDenied outside the pools a client may reach', async () => {
    const store = new FakeBlockStore({ accessiblePools: ['vms', 'images', 'volumes'] });
    await assert.rejects(store.listImages({ pool: 'quarantine' }), RbdPermissionDeniedError);
    await assert.rejects(store.removeImage({ pool: 'quarantine', image: 'q' }), RbdPermissionDeniedError);
    await assert.rejects(store.listImages({ pool: 'nosuch' }), RbdNotFoundError);
  });

  it('handles metadata like rbd', async () => {
    const store = await withDisk();
    await assert.rejects(store.getMeta(disk, 'nope'), RbdNotFoundError);
    await store.setMeta(disk, 'a', '1');
    assert.deepEqual(await store.listMeta(disk), { a: '1' });
    await store.removeMeta(disk, 'a');
    assert.deepEqual(await store.listMeta(disk), {});
  });

  it('validates names like the real adapter', async () => {
    const store = new FakeBlockStore();
    await assert.rejects(store.createImage({ pool: 'vms', image: 'a;b' }, 1), InvalidNameError);
    await assert.rejects(store.createNamespace({ pool: 'vms', namespace: '..' }), InvalidNameError);
  });

  it('reports usage per snapshot and head', async () => {
    const store = await withDisk();
    await store.createSnapshot({ ...disk, snapshot: 's' });
    const du = await store.diskUsage(disk);
    assert.deepEqual(
      du.rows.map((r) => r.snapshot),
      ['s', undefined],
    );
    assert.equal(du.totalProvisionedBytes, content.length);
  });

  it('records calls and injects failures', async () => {
    const store = await withDisk();
    store.failNext('createSnapshot', busyError());
    await assert.rejects(store.createSnapshot({ ...disk, snapshot: 's' }), RbdBusyError);
    await store.createSnapshot({ ...disk, snapshot: 's' });
    assert.deepEqual(
      store.calls.map((c) => c.op),
      ['importImage', 'createSnapshot', 'createSnapshot'],
    );
  });
});
