// One description of the BlockStore port, run against every adapter: the
// in-memory fake (test/unit/ceph-contract-fake.test.ts), the rbd CLI and
// librbd on the real test cluster (test/integration/ceph-contract-*.test.ts).
// A rule one adapter keeps and another does not fails here, so the fake that
// other unit tests rely on cannot drift from Ceph either.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { uniqueSuffix } from './env.ts';
import { sparseSha256 } from '../../operator/capture/sparse-digest.ts';
import type { AllocationMap, BlockStore, ImageSpec, SnapshotSpec } from '../../operator/domain/block-store.ts';
import {
  InvalidRequestError,
  RbdAbortedError,
  RbdBusyError,
  RbdExistsError,
  RbdHasSnapshotsError,
  RbdInvalidArgumentError,
  RbdNotFoundError,
  RbdPermissionDeniedError,
  RbdTimeoutError,
} from '../../operator/ceph/errors.ts';

export interface ContractContext {
  /** The operator's access: every pool. */
  readonly operator: BlockStore;
  /** The cloud's access: its own pools only (the same store when separateUsers is false). */
  readonly cloud: BlockStore;
  /** Whether operator and cloud are distinct users with distinct caps. */
  readonly separateUsers: boolean;
  /** A cloud pool, where the disks to capture live. */
  readonly vms: string;
  /** A cloud pool whose rbd_move_to_trash_on_remove the suite may change (and puts back). */
  readonly armedPool: string;
  readonly quarantinePool: string;
  close?(): Promise<void>;
}

const run = uniqueSuffix();
// Nova's naming, so that the disk looks like one the operator must preserve.
const instance = `${randomBytes(4).toString('hex')}-${run}`;
const namespace = `cases-${run}`;

const content = randomBytes(6 * 1024 * 1024 + 12345);
const contentSha = createHash('sha256').update(content).digest('hex');

async function exportSha256(cli: BlockStore, spec: ImageSpec | SnapshotSpec): Promise<{ sha: string; bytes: number }> {
  const { stream, done } = cli.exportImage(spec);
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  await done;
  return { sha: hash.digest('hex'), bytes };
}

function assertWellFormed(map: AllocationMap): void {
  let end = -1;
  for (const e of map.extents) {
    assert.ok(e.length > 0 && e.offset > end && e.offset + e.length <= map.sizeBytes, `extent ${JSON.stringify(e)} after ${end}`);
    end = e.offset + e.length;
  }
}

/** Removes an image wherever it ended up: live, or in the trash of its pool/namespace. */
async function purge(operator: BlockStore, spec: ImageSpec): Promise<void> {
  const where = { pool: spec.pool, namespace: spec.namespace };
  try {
    const { id } = await operator.info(spec);
    await operator.purgeSnapshots(spec);
    await operator.moveToTrash(spec);
    await operator.removeFromTrash({ ...where, imageId: id }, { force: true });
  } catch (error) {
    if (!(error instanceof RbdNotFoundError)) throw error;
  }
  for (const entry of await operator.listTrash(where)) {
    if (entry.name !== spec.image) continue;
    await operator.purgeSnapshots({ ...where, imageId: entry.id });
    await operator.removeFromTrash({ ...where, imageId: entry.id }, { force: true });
  }
}

export function blockStoreContract(name: string, setup: () => Promise<ContractContext>): void {
  describe(`BlockStore contract: ${name}`, { concurrency: false }, () => {
    let operator: BlockStore;
    let cloud: BlockStore;
    let vms: string;
    let armedPool: string;
    let quarantinePool: string;
    let disk: ImageSpec;
    let quarantined: ImageSpec;
    let captureSnap: SnapshotSpec;
    let ctx: ContractContext;
    const tmp = mkdtempSync(join(tmpdir(), 'qop-rbd-it-'));
    const cleanup: ImageSpec[] = [];

    before(async () => {
      ctx = await setup();
      ({ operator, cloud, vms, armedPool, quarantinePool } = ctx);
      disk = { pool: vms, image: `${instance}_disk` };
      quarantined = { pool: quarantinePool, namespace, image: `${instance}_disk.q` };
      captureSnap = { ...disk, snapshot: `q-${run}` };
      await cloud.importImage({ stream: Readable.from([content.subarray(0, 1_000_000), content.subarray(1_000_000)]) }, disk);
      cleanup.push(disk);
    });

    after(async () => {
      // Clones before their parents.
      for (const spec of cleanup.reverse()) await purge(operator, spec).catch((error: unknown) => console.error('cleanup', spec, error));
      await operator.removeNamespace({ pool: quarantinePool, namespace }).catch((error: unknown) => console.error('cleanup', namespace, error));
      rmSync(tmp, { recursive: true, force: true });
      await ctx.close?.();
    });

    it('the cloud user can create disks in its pool; the import is byte-exact', async () => {
      const info = await operator.info(disk);
      assert.equal(info.sizeBytes, content.length);
      assert.equal(info.parent, undefined);
      assert.ok((await operator.listImages({ pool: vms })).includes(disk.image));
      assert.deepEqual(await exportSha256(operator, disk), { sha: contentSha, bytes: content.length });
    });

    it('namespaces: create and list; a second create is Exists', async () => {
      await operator.createNamespace({ pool: quarantinePool, namespace });
      assert.ok((await operator.listNamespaces(quarantinePool)).includes(namespace));
      await assert.rejects(operator.createNamespace({ pool: quarantinePool, namespace }), RbdExistsError);
      await assert.rejects(operator.removeNamespace({ pool: quarantinePool, namespace: `nosuchns-${run}` }), RbdNotFoundError);
    });

    it('sparse reads: a clone\'s allocated extents (its parent\'s data included) cover every written byte, the rest reads as zeros, and their digest is a full read\'s', async () => {
      // 64 MiB and a bit, written at three places: the start, the middle (unaligned), the very end.
      const size = 64 * 1024 * 1024 + 777;
      const sparse = Buffer.alloc(size);
      const written: [number, number][] = [[0, 4096], [9 * 1024 * 1024 + 100, 300 * 1024], [size - 5000, 5000]];
      for (const [at, length] of written) randomBytes(length).copy(sparse, at);
      const base: ImageSpec = { pool: vms, image: `${instance}_sparse` };
      const clone: ImageSpec = { pool: quarantinePool, namespace, image: `${instance}_sparse.q` };
      await cloud.importImage({ stream: Readable.from([sparse]) }, base);
      cleanup.push(base);
      await operator.createSnapshot({ ...base, snapshot: 'cap' });
      await operator.clone({ ...base, snapshot: 'cap' }, clone);
      cleanup.push(clone);
      const full = createHash('sha256').update(sparse).digest('hex');

      for (const spec of [clone, { ...base, snapshot: 'cap' }] as const) {
        const map = await operator.allocatedExtents(spec);
        assert.equal(map.sizeBytes, size);
        assertWellFormed(map);
        const allocated = map.extents.reduce((sum, e) => sum + e.length, 0);
        // Allocation is per object at worst (4 MiB, and an import may write the last one whole): three writes, far from the whole disk.
        assert.ok(allocated <= 4 * 4 * 1024 * 1024, `${allocated} bytes allocated for ${JSON.stringify(map.extents)}`);
        const outside = Buffer.from(sparse);
        for (const e of map.extents) outside.fill(0, e.offset, e.offset + e.length);
        assert.ok(outside.equals(Buffer.alloc(size)), 'every written byte lies in an allocated extent');

        const read = await operator.readAllocated(spec);
        assert.equal(read.sizeBytes, size);
        const rebuilt = Buffer.alloc(size);
        let last = 0;
        let readBytes = 0;
        for await (const piece of read.pieces) {
          assert.ok(piece.offset >= last, 'pieces ascending and disjoint');
          assert.ok(map.extents.some((e) => piece.offset >= e.offset && piece.offset + piece.data.length <= e.offset + e.length), `piece at ${piece.offset} inside an extent`);
          piece.data.copy(rebuilt, piece.offset);
          last = piece.offset + piece.data.length;
          readBytes += piece.data.length;
        }
        // export-diff leaves out the all-zero blocks of an extent as well.
        assert.ok(readBytes <= allocated && readBytes >= written.reduce((sum, [, length]) => sum + length, 0) - 4096, `${readBytes} bytes read of ${allocated} allocated`);
        assert.ok(rebuilt.equals(sparse), 'the pieces and the zeros between them are the disk');
        assert.deepEqual(await sparseSha256(await operator.readAllocated(spec)), { sha256: full, bytes: size, readBytes });
        assert.deepEqual(await exportSha256(operator, spec), { sha: full, bytes: size });
      }

      // A paced isolation's copy: the clone's allocated data written into the clone, then a flatten that only detaches it.
      const copied = await operator.writeExtents(clone, (await operator.readAllocated(clone)).pieces);
      assert.ok(copied >= written.reduce((sum, [, length]) => sum + length, 0) - 4096, `${copied} bytes copied`);
      assert.notEqual((await operator.info(clone)).parent, undefined, 'still a clone until flattened');
      await operator.flatten(clone);
      assert.equal((await operator.info(clone)).parent, undefined);
      assert.equal((await sparseSha256(await operator.readAllocated(clone))).sha256, full, 'the copy is the disk');
      assert.deepEqual(await exportSha256(operator, clone), { sha: full, bytes: size });

      const missing = { pool: vms, image: `missing-${run}` };
      await assert.rejects(operator.writeExtents(missing, (async function* () { yield { offset: 0, data: Buffer.alloc(512) }; })()), RbdNotFoundError);
      await assert.rejects(operator.allocatedExtents(missing), RbdNotFoundError);
      await assert.rejects(operator.readAllocated(missing), RbdNotFoundError);
      await assert.rejects(operator.readAllocated({ ...base, snapshot: 'nope' }), RbdNotFoundError);
      const controller = new AbortController();
      controller.abort();
      await assert.rejects(operator.readAllocated(clone, { signal: controller.signal }), RbdAbortedError);
      // Left early: the read stops, and the store goes on serving.
      const left = await operator.readAllocated(clone);
      for await (const piece of left.pieces) {
        assert.equal(piece.offset, 0);
        break;
      }
      assert.equal((await operator.allocatedExtents(clone)).sizeBytes, size);
      // Out of the way of the listings below.
      await purge(operator, clone);
      await purge(operator, base);
    });

    it('captures: snapshot, then a v2 clone into the quarantine pool', async () => {
      await operator.createSnapshot(captureSnap);
      const snaps = await operator.listSnapshots(disk);
      assert.deepEqual(
        snaps.map((s) => [s.name, s.namespace, s.protected, s.sizeBytes]),
        [[captureSnap.snapshot, 'user', false, content.length]],
      );
      await assert.rejects(operator.createSnapshot(captureSnap), RbdExistsError);

      await operator.clone(captureSnap, quarantined);
      cleanup.push(quarantined);
      const info = await operator.info(quarantined);
      assert.ok(info.opFeatures.includes('clone-child'));
      assert.deepEqual(
        { pool: info.parent?.pool, namespace: info.parent?.namespace, image: info.parent?.image, snapshot: info.parent?.snapshot },
        { pool: vms, namespace: undefined, image: disk.image, snapshot: captureSnap.snapshot },
      );
      assert.equal(info.parent?.inTrash, false);
      assert.ok((await operator.info(disk)).opFeatures.includes('clone-parent'));
    });

    it('the cloud user cannot remove, trash, snapshot or unsnapshot anything in the quarantine pool', async (t) => {
      if (!ctx.separateUsers) {
        t.skip('one cephx user only');
        return;
      }
      await operator.createSnapshot({ ...quarantined, snapshot: 'sealed' });
      await assert.rejects(cloud.removeImage(quarantined), RbdPermissionDeniedError);
      await assert.rejects(cloud.moveToTrash(quarantined), RbdPermissionDeniedError);
      await assert.rejects(cloud.removeSnapshot({ ...quarantined, snapshot: 'sealed' }), RbdPermissionDeniedError);
      await assert.rejects(cloud.createSnapshot({ ...quarantined, snapshot: 'x' }), RbdPermissionDeniedError);
      await assert.rejects(cloud.purgeSnapshots(quarantined), RbdPermissionDeniedError);
      await assert.rejects(cloud.listImages({ pool: quarantinePool, namespace }), RbdPermissionDeniedError);
      assert.equal((await operator.listSnapshots(quarantined)).length, 1);
      await operator.removeSnapshot({ ...quarantined, snapshot: 'sealed' });
    });

    it('removing an image with snapshots is HasSnapshots', async () => {
      await assert.rejects(operator.removeImage(disk), RbdHasSnapshotsError);
      await assert.rejects(cloud.removeImage(disk), RbdHasSnapshotsError);
    });

    it('the clone survives the cloud deleting the snapshot (it moves to the trash namespace)', async () => {
      await cloud.removeSnapshot(captureSnap);
      assert.deepEqual(await operator.listSnapshots(disk), []);
      const all = await operator.listSnapshots(disk, { includeTrash: true });
      assert.equal(all.length, 1);
      assert.equal(all[0]?.namespace, 'trash');
      assert.equal(all[0]?.originalName, captureSnap.snapshot);
      assert.equal((await operator.info(quarantined)).parent?.snapshot, all[0]?.name);
      // imageParent alone says what info says of the parent
      assert.deepEqual(await operator.imageParent(quarantined), (await operator.info(quarantined)).parent);
      assert.deepEqual(await exportSha256(operator, quarantined), { sha: contentSha, bytes: content.length });
    });

    it('renewObjectMap keeps a clone\'s content, parent and features, its object map valid; a missing image is NotFound', async () => {
      const before = await operator.info(quarantined);
      await operator.renewObjectMap(quarantined);
      const after = await operator.info(quarantined);
      assert.deepEqual(after.parent, before.parent);
      assert.deepEqual([...after.features].sort(), [...before.features].sort());
      assert.deepEqual(after.flags, [], 'the renewed object map is valid');
      assert.deepEqual(await exportSha256(operator, quarantined), { sha: contentSha, bytes: content.length });
      await operator.renewObjectMap(disk);
      assert.deepEqual(await exportSha256(operator, disk), { sha: contentSha, bytes: content.length });
      await assert.rejects(operator.renewObjectMap({ pool: vms, image: `missing-${run}` }), RbdNotFoundError);
    });

    it('flatten copies the data and detaches the clone; du shows it', async () => {
      const before = await operator.diskUsage(quarantined);
      assert.equal(before.rows.at(-1)?.usedBytes, 0);
      await operator.flatten(quarantined);
      const info = await operator.info(quarantined);
      assert.equal(info.parent, undefined);
      assert.ok(!info.opFeatures.includes('clone-child'));
      const afterFlatten = await operator.diskUsage(quarantined);
      assert.ok((afterFlatten.rows.at(-1)?.usedBytes ?? 0) >= content.length, JSON.stringify(afterFlatten));
      assert.equal(afterFlatten.totalProvisionedBytes, content.length);
      // the parent's trash snapshot went with its last clone
      assert.deepEqual(await operator.listSnapshots(disk, { includeTrash: true }), []);
      assert.deepEqual(await exportSha256(operator, quarantined), { sha: contentSha, bytes: content.length });
      await assert.rejects(operator.flatten(quarantined), RbdInvalidArgumentError);
    });

    it('a namespace that holds images cannot be removed', async () => {
      await assert.rejects(operator.removeNamespace({ pool: quarantinePool, namespace }), RbdBusyError);
    });

    it('du of a pool namespace lists its images with totals', async () => {
      const du = await operator.diskUsage({ pool: quarantinePool, namespace });
      assert.deepEqual(
        du.rows.map((r) => r.image),
        [quarantined.image],
      );
      assert.equal(du.totalProvisionedBytes, content.length);
      assert.ok(du.totalUsedBytes >= content.length);
    });

    it('exports a snapshot byte-exact', async () => {
      const snap = { ...quarantined, snapshot: 'evidence' };
      await operator.createSnapshot(snap);
      assert.deepEqual(await exportSha256(operator, snap), { sha: contentSha, bytes: content.length });
      await operator.removeSnapshot(snap);
    });

    it('image-meta: set, get, list, remove; a missing key is NotFound', async () => {
      const provenance = JSON.stringify({ instance, capturedAt: '2026-11-23T12:00:00Z', note: 'spaces and "quotes"' });
      await operator.setMeta(quarantined, 'quarantine.provenance', provenance);
      await operator.setMeta(quarantined, 'quarantine.case', '-starts-with-dash');
      assert.equal(await operator.getMeta(quarantined, 'quarantine.provenance'), provenance);
      assert.equal(await operator.getMeta(quarantined, 'quarantine.case'), '-starts-with-dash');
      assert.deepEqual(await operator.listMeta(quarantined), {
        'quarantine.case': '-starts-with-dash',
        'quarantine.provenance': provenance,
      });
      await operator.removeMeta(quarantined, 'quarantine.case');
      await assert.rejects(operator.getMeta(quarantined, 'quarantine.case'), RbdNotFoundError);
      await assert.rejects(operator.removeMeta(quarantined, 'quarantine.case'), RbdNotFoundError);
      assert.deepEqual(await operator.listMeta(disk), {});
    });

    it('imageSize is the size info gives; a missing image is NotFound', async () => {
      assert.equal(await operator.imageSize(disk), (await operator.info(disk)).sizeBytes);
      await assert.rejects(operator.imageSize({ pool: vms, image: `missing-${run}` }), RbdNotFoundError);
    });

    it('imageParent of a flattened or plain image is none; a missing image is NotFound', async () => {
      assert.equal(await operator.imageParent(quarantined), undefined);
      assert.equal(await operator.imageParent(disk), undefined);
      await assert.rejects(operator.imageParent({ pool: vms, image: `missing-${run}` }), RbdNotFoundError);
    });

    it('imageId is the id info gives; a missing image is NotFound', async () => {
      assert.equal(await operator.imageId(disk), (await operator.info(disk)).id);
      await assert.rejects(operator.imageId({ pool: vms, image: `missing-${run}` }), RbdNotFoundError);
    });

    it('keepOpen: calls on kept images see each other and the cloud; after the release nothing holds them', async () => {
      const source: ImageSpec = { pool: vms, image: `${instance}_kept` };
      const copy: ImageSpec = { pool: quarantinePool, namespace, image: `${instance}_kept.q` };
      await cloud.createImage(source, 1024 * 1024);
      cleanup.push(source);
      const release = operator.keepOpen([source, copy, source]);
      await operator.createSnapshot({ ...source, snapshot: 'k' });
      await cloud.createSnapshot({ ...source, snapshot: 'by-cloud' });
      assert.deepEqual((await operator.listSnapshots(source)).map((s) => s.name).sort(), ['by-cloud', 'k']);
      await operator.clone({ ...source, snapshot: 'k' }, copy);
      cleanup.push(copy);
      await operator.setMeta(copy, 'quarantine.instance', instance);
      await operator.setMeta(copy, 'quarantine.case', 'C-1');
      assert.deepEqual(await operator.listMeta(copy), { 'quarantine.instance': instance, 'quarantine.case': 'C-1' });
      assert.equal((await operator.info(copy)).parent?.image, source.image);
      await operator.removeSnapshot({ ...source, snapshot: 'k' });
      await cloud.removeSnapshot({ ...source, snapshot: 'by-cloud' });
      assert.deepEqual(await operator.listSnapshots(source), []);
      // This store's own removal of a kept image goes through.
      const id = await operator.moveToTrash(copy);
      await assert.rejects(operator.info(copy), RbdNotFoundError);
      await operator.restoreFromTrash({ pool: quarantinePool, namespace, imageId: id }, { name: copy.image });
      assert.equal(await operator.getMeta(copy, 'quarantine.case'), 'C-1');
      await release();
      await release();

      // Released: the cloud removes its disk as if the operator had never opened it.
      const plain: ImageSpec = { pool: vms, image: `${instance}_plain` };
      await cloud.createImage(plain, 1024 * 1024);
      const again = operator.keepOpen([plain]);
      await operator.setMeta(plain, 'quarantine.case', 'C-2');
      assert.equal(await operator.getMeta(plain, 'quarantine.case'), 'C-2');
      await again();
      await cloud.removeImage(plain);
      await assert.rejects(operator.info(plain), RbdNotFoundError);
    });

    it('a missing image, snapshot or pool is NotFound, not a crash', async () => {
      const missing = { pool: vms, image: `missing-${run}` };
      await assert.rejects(operator.info(missing), RbdNotFoundError);
      await assert.rejects(operator.removeImage(missing), RbdNotFoundError);
      await assert.rejects(operator.createSnapshot({ ...missing, snapshot: 's' }), RbdNotFoundError);
      await assert.rejects(operator.listSnapshots({ pool: vms, imageId: 'deadbeef0000' }), RbdNotFoundError);
      await assert.rejects(operator.removeSnapshot({ ...disk, snapshot: 'nope' }), RbdNotFoundError);
      await assert.rejects(operator.clone({ ...disk, snapshot: 'nope' }, { pool: quarantinePool, image: `x-${run}` }), RbdNotFoundError);
      await assert.rejects(operator.listImages({ pool: `nosuchpool-${run}` }), RbdNotFoundError);
      await assert.rejects(operator.listImages({ pool: vms, namespace: `nosuchns-${run}` }), RbdNotFoundError);
      await assert.rejects(operator.restoreFromTrash({ pool: vms, imageId: 'deadbeef0000' }), RbdNotFoundError);
      const { done } = operator.exportImage(missing);
      await assert.rejects(done, RbdNotFoundError);
    });

    it('trash: deferred removal, listing with expiry, restore under a new name, forced removal', async () => {
      const victim: ImageSpec = { pool: quarantinePool, namespace, image: `victim-${run}` };
      const file = join(tmp, 'victim.raw');
      writeFileSync(file, content.subarray(0, 1024 * 1024));
      await operator.importImage({ path: file }, victim);
      await assert.rejects(operator.importImage({ path: file }, victim), RbdExistsError);
      cleanup.push(victim);
      await operator.setMeta(victim, 'quarantine.case', 'CASE-7');
      await operator.createSnapshot({ ...victim, snapshot: 'kept' });

      const asked = new Date(Date.now() + 3600_000);
      const id = await operator.moveToTrash(victim, { expiresAt: asked });
      assert.ok(!(await operator.listImages({ pool: quarantinePool, namespace })).includes(victim.image));
      const entry = (await operator.listTrash({ pool: quarantinePool, namespace })).find((e) => e.id === id);
      assert.ok(entry !== undefined);
      assert.equal(entry.name, victim.image);
      assert.equal(entry.source, 'USER');
      assert.equal(entry.expired, false);
      assert.equal(entry.namespace, namespace);
      // never earlier than asked, and at most ~2 s later
      assert.ok(entry.expiresAt.getTime() >= Math.floor(asked.getTime() / 1000) * 1000, `${entry.expiresAt.toISOString()} < ${asked.toISOString()}`);
      assert.ok(entry.expiresAt.getTime() <= asked.getTime() + 2500, `${entry.expiresAt.toISOString()} vs ${asked.toISOString()}`);
      assert.ok(Math.abs(entry.deletedAt.getTime() - Date.now()) < 120_000);

      const ref = { pool: quarantinePool, namespace, imageId: id };
      await assert.rejects(operator.removeFromTrash(ref), RbdPermissionDeniedError);
      await assert.rejects(operator.removeFromTrash(ref, { force: true }), RbdHasSnapshotsError);
      assert.equal((await operator.info(ref)).name, victim.image);
      assert.deepEqual(
        (await operator.listSnapshots(ref)).map((s) => s.name),
        ['kept'],
      );

      const restored: ImageSpec = { ...victim, image: `restored-${run}` };
      await operator.restoreFromTrash(ref, { name: restored.image });
      cleanup.push(restored);
      assert.equal((await operator.info(restored)).id, id);
      assert.equal(await operator.getMeta(restored, 'quarantine.case'), 'CASE-7');
      const expected = createHash('sha256').update(content.subarray(0, 1024 * 1024)).digest('hex');
      assert.equal((await exportSha256(operator, restored)).sha, expected);

      // expire-now entries are listed as expired and go without force once their snapshots are gone
      const id2 = await operator.moveToTrash(restored);
      const ref2 = { pool: quarantinePool, namespace, imageId: id2 };
      assert.equal((await operator.listTrash({ pool: quarantinePool, namespace })).find((e) => e.id === id2)?.expired, true);
      await operator.removeSnapshot({ ...ref2, snapshot: 'kept' });
      await operator.removeFromTrash(ref2);
      assert.ok(!(await operator.listTrash({ pool: quarantinePool, namespace }, { all: true })).some((e) => e.id === id2));
      await assert.rejects(operator.removeFromTrash(ref2, { force: true }), RbdNotFoundError);
    });

    it('trash: a past expiry is refused before rbd could turn it into 2106', async () => {
      await assert.rejects(operator.moveToTrash(disk, { expiresAt: new Date(Date.now() - 60_000) }), InvalidRequestError);
      assert.ok((await operator.listImages({ pool: vms })).includes(disk.image));
    });

    it('trash: snapshots of a trashed image are purged by id', async () => {
      const img: ImageSpec = { pool: quarantinePool, namespace, image: `purge-${run}` };
      await operator.createImage(img, 4 * 1024 * 1024);
      cleanup.push(img);
      await operator.createSnapshot({ ...img, snapshot: 'a' });
      await operator.createSnapshot({ ...img, snapshot: 'b' });
      const id = await operator.moveToTrash(img);
      const ref = { pool: quarantinePool, namespace, imageId: id };
      await operator.purgeSnapshots(ref);
      assert.deepEqual(await operator.listSnapshots(ref), []);
      await operator.removeFromTrash(ref);
    });

    it('trash: a trashed clone names its parent when listed withParents', async () => {
      const base: ImageSpec = { pool: quarantinePool, namespace, image: `tparent-${run}` };
      const child: ImageSpec = { pool: quarantinePool, namespace, image: `tchild-${run}` };
      const where = { pool: quarantinePool, namespace };
      await operator.createImage(base, 4 * 1024 * 1024);
      cleanup.push(base);
      await operator.createSnapshot({ ...base, snapshot: 'p' });
      await operator.clone({ ...base, snapshot: 'p' }, child);
      const id = await operator.moveToTrash(child);
      const entry = (await operator.listTrash(where, { withParents: true })).find((e) => e.id === id);
      assert.deepEqual([entry?.parent?.image, entry?.parent?.snapshot], [base.image, 'p']);
      await operator.removeFromTrash({ ...where, imageId: id }, { force: true });
      await operator.removeSnapshot({ ...base, snapshot: 'p' });
    });

    it('pool config: rbd_move_to_trash_on_remove makes a plain rm go to the trash', async () => {
      const key = 'rbd_move_to_trash_on_remove';
      const expireKey = 'rbd_move_to_trash_on_remove_expire_seconds';
      const previous = await operator.getPoolConfig(armedPool, key);
      const previousExpire = await operator.getPoolConfig(armedPool, expireKey);
      const img: ImageSpec = { pool: armedPool, image: `armed-${run}` };
      try {
        await operator.setPoolConfig(armedPool, key, 'true');
        await operator.setPoolConfig(armedPool, expireKey, '3600');
        assert.equal(await operator.getPoolConfig(armedPool, key), 'true');
        assert.equal(await operator.getPoolConfig(armedPool, expireKey), '3600');

        await cloud.createImage(img, 1024 * 1024);
        cleanup.push(img);
        await cloud.createSnapshot({ ...img, snapshot: 's' });
        // the cloud's own removal, which would otherwise fail on the snapshot or destroy the disk
        await cloud.removeImage(img);
        assert.ok(!(await operator.listImages({ pool: armedPool })).includes(img.image));
        const entry = (await operator.listTrash({ pool: armedPool })).find((e) => e.name === img.image);
        assert.ok(entry !== undefined, 'the removed image is in the trash');
        assert.equal(entry.expired, false);
        assert.ok(entry.expiresAt.getTime() > Date.now() + 3000_000);
        assert.equal((await operator.listSnapshots({ pool: armedPool, imageId: entry.id })).length, 1);
      } finally {
        if (previous === undefined) await operator.removePoolConfig(armedPool, key);
        else await operator.setPoolConfig(armedPool, key, previous);
        if (previousExpire === undefined) await operator.removePoolConfig(armedPool, expireKey);
        else await operator.setPoolConfig(armedPool, expireKey, previousExpire);
      }
      assert.equal(await operator.getPoolConfig(armedPool, key), previous);
      await assert.rejects(operator.getPoolConfig(`nosuchpool-${run}`, key), RbdNotFoundError);
    });

    it('export honours abort and timeout', async () => {
      const controller = new AbortController();
      const aborted = operator.exportImage(disk, { signal: controller.signal });
      aborted.stream.once('data', () => controller.abort());
      aborted.stream.resume();
      await assert.rejects(aborted.done, RbdAbortedError);

      const slow = operator.exportImage(disk, { timeoutMs: 1 });
      slow.stream.resume();
      await assert.rejects(slow.done, RbdTimeoutError);
    });
  });
}
