// Disk functions shared by the simulated clouds and their tests: content
// digests, existence checks, and a cleanup that removes an image wherever a
// test left it (live with snapshots and clones, or in the trash).
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { BlockStore, ImageSpec, PoolRef, SnapshotSpec } from '../../operator/domain/block-store.ts';
import { RbdNotFoundError } from '../../operator/ceph/errors.ts';
import { formatImageSpec } from '../../operator/ceph/names.ts';

export function specText(spec: ImageSpec | SnapshotSpec): string {
  const base = formatImageSpec(spec);
  return 'snapshot' in spec && typeof spec.snapshot === 'string' ? `${base}@${spec.snapshot}` : base;
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Random bytes: no all-zero block, so a sparse copy cannot hide a difference. */
export function randomContent(sizeBytes: number): Buffer {
  return randomBytes(sizeBytes);
}

/** SHA-256 of the image (or snapshot) as `rbd export` streams it. */
export async function exportSha256(rbd: BlockStore, spec: ImageSpec | SnapshotSpec): Promise<string> {
  const { stream, done } = rbd.exportImage(spec);
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  await done;
  return hash.digest('hex');
}

export async function imageExists(rbd: BlockStore, spec: ImageSpec): Promise<boolean> {
  const where: PoolRef = spec.namespace === undefined ? { pool: spec.pool } : { pool: spec.pool, namespace: spec.namespace };
  return (await rbd.listImages(where)).includes(spec.image);
}

/** Imports `content` as a new image. */
export async function importContent(rbd: BlockStore, spec: ImageSpec, content: Buffer): Promise<void> {
  await rbd.importImage({ stream: Readable.from([content]) }, spec);
}

/**
 * Removes an image and everything hanging off it, as far as `rbd` (the
 * user given) may: clones of its snapshots first (recursively, found via
 * `children`), then the snapshots, then the image; then any trash entry of
 * that name. For test cleanup; never throws for an image that is gone.
 */
export async function purgeImage(
  rbd: BlockStore,
  spec: ImageSpec,
  children?: (snapshot: SnapshotSpec) => Promise<ImageSpec[]>,
  unprotect?: (snapshot: SnapshotSpec) => Promise<void>,
): Promise<void> {
  const where: PoolRef = spec.namespace === undefined ? { pool: spec.pool } : { pool: spec.pool, namespace: spec.namespace };
  try {
    for (const snap of await rbd.listSnapshots(spec)) {
      const s: SnapshotSpec = { ...spec, snapshot: snap.name };
      if (children !== undefined) {
        for (const child of await children(s).catch(() => [])) await purgeImage(rbd, child, children, unprotect);
      }
      if (snap.protected && unprotect !== undefined) await unprotect(s).catch(() => undefined);
    }
    await rbd.purgeSnapshots(spec).catch(() => undefined);
    await rbd.removeImage(spec);
  } catch (err) {
    if (!(err instanceof RbdNotFoundError)) {
      // Snapshots in the trash namespace or linked clones elsewhere: park it in the trash and purge from there.
      await rbd.moveToTrash(spec).catch(() => undefined);
    }
  }
  for (const entry of await rbd.listTrash(where).catch(() => [])) {
    if (entry.name !== spec.image) continue;
    await rbd.purgeSnapshots({ ...where, imageId: entry.id }).catch(() => undefined);
    await rbd.removeFromTrash({ ...where, imageId: entry.id }, { force: true }).catch(() => undefined);
  }
}
