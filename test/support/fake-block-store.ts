// An in-memory BlockStore for unit tests of the modules that use the port.
// It follows the rbd behaviour the operator depends on, with the same error
// classes: snapshots block removal, v2 clones keep their parent snapshot alive
// (a removed one moves to the trash snapshot namespace), the trash defers
// removal until expiry unless forced, and a pool with
// rbd_move_to_trash_on_remove turns removal into a trash move. Names are
// checked with the same validators as the real adapter.

import { Readable } from 'node:stream';
import { randomBytes, randomUUID } from 'node:crypto';
import type {
  AllocatedRead,
  AllocationMap,
  Extent,
  ExtentData,
  BlockStore,
  DiskUsage,
  ExportHandle,
  ImageIdRef,
  ImageInfo,
  ImageRef,
  ImageSpec,
  ParentInfo,
  ImportSource,
  NamespaceRef,
  PoolRef,
  SnapshotInfo,
  SnapshotListOptions,
  SnapshotRef,
  SnapshotSpec,
  TransferOptions,
  TrashEntry,
  TrashListOptions,
  TrashMoveOptions,
  TrashRemoveOptions,
  TrashRestoreOptions,
  UsageRow,
} from '../../operator/domain/block-store.ts';
import { isImageIdRef, isSnapshotSpec } from '../../operator/domain/block-store.ts';
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
import type { RbdError, RbdErrorDetails } from '../../operator/ceph/errors.ts';
import {
  formatImageSpec,
  formatPoolSpec,
  formatSnapshotSpec,
  validateConfigKey,
  validateConfigValue,
  validateImageId,
  validateImageName,
  validateMetaKey,
  validateMetaValue,
  validateNamespaceName,
  validatePoolName,
  validatePoolRef,
  validateSnapshotName,
} from '../../operator/ceph/names.ts';

type ErrorClass = new (message: string, details: RbdErrorDetails) => RbdError;

const EXIT_CODES = new Map<ErrorClass, number>([
  [RbdPermissionDeniedError, 1],
  [RbdNotFoundError, 2],
  [RbdBusyError, 16],
  [RbdExistsError, 17],
  [RbdInvalidArgumentError, 22],
  [RbdHasSnapshotsError, 39],
]);

interface FakeSnapshot {
  id: number;
  name: string;
  namespace: 'user' | 'trash';
  originalName?: string | undefined;
  data: Buffer;
  sizeBytes: number;
  createdAt: Date;
}

interface FakeImage {
  id: string;
  name: string;
  pool: string;
  namespace: string | undefined;
  sizeBytes: number;
  /** Bytes past its end read as zeros, as in a sparse image. */
  data: Buffer;
  snapshots: FakeSnapshot[];
  meta: Map<string, string>;
  parent: { imageId: string; snapshotId: number } | undefined;
  createdAt: Date;
  trash: { deletedAt: Date; expiresAt: Date } | undefined;
  /**
   * Ranges the object map claims that were never written (a flatten killed
   * mid-way): reads still go through to the parent, a flatten skips them.
   */
  unwrittenClaims: Extent[];
}

export interface FakeBlockStoreOptions {
  /** Pools that exist, each with its default namespace. Default: vms, images, volumes, quarantine. */
  readonly pools?: readonly string[];
  /** Pools this client may touch (cephx caps); any other existing pool answers PermissionDenied. Default: all. */
  readonly accessiblePools?: readonly string[];
  readonly now?: () => Date;
}

export interface FakeCall {
  readonly op: string;
  readonly args: readonly unknown[];
}

const ALLOCATION_BLOCK = 4096;
const ZERO_BLOCK = Buffer.alloc(ALLOCATION_BLOCK);

export class FakeBlockStore implements BlockStore {
  readonly calls: FakeCall[] = [];
  readonly #pools = new Map<string, { namespaces: Set<string>; config: Map<string, string> }>();
  readonly #images = new Map<string, FakeImage>();
  readonly #accessible: ReadonlySet<string> | undefined;
  readonly #now: () => Date;
  readonly #failures: { op: string; error: Error }[] = [];
  #nextSnapshotId = 1;

  constructor(options: FakeBlockStoreOptions = {}) {
    for (const pool of options.pools ?? ['vms', 'images', 'volumes', 'quarantine']) this.addPool(pool);
    this.#accessible = options.accessiblePools === undefined ? undefined : new Set(options.accessiblePools);
    this.#now = options.now ?? (() => new Date());
  }

  // --- test controls -------------------------------------------------------------------

  addPool(pool: string): void {
    this.#pools.set(validatePoolName(pool), { namespaces: new Set(), config: new Map() });
  }

  /** The next call of `op` rejects with `error` instead of running. */
  failNext(op: keyof BlockStore, error: Error): void {
    this.#failures.push({ op, error });
  }

  /**
   * A raw write (`rados put`, no snapshot context) into an image's data
   * objects: the head and every snapshot of it see the new bytes, and so does
   * every clone still reading through to one of those snapshots (a flattened
   * clone has its own copy and does not).
   */
  rawWrite(ref: ImageRef, offset: number, bytes: Buffer): void {
    const image = this.#resolve(ref, 'rawWrite');
    const write = (data: Buffer): Buffer => {
      const out = Buffer.alloc(Math.max(data.length, offset + bytes.length));
      data.copy(out);
      bytes.copy(out, offset);
      return out;
    };
    image.data = write(image.data);
    for (const snapshot of image.snapshots) {
      snapshot.data = write(snapshot.data);
      for (const child of this.#children(image, snapshot)) child.data = write(child.data);
    }
  }

  /**
   * A flatten killed mid-way, as librbd leaves it: the clone stays a clone,
   * and its object map claims `claimed` although those objects were never
   * written. Reads are unchanged (they go through to the parent); a later
   * flatten skips the claimed ranges, which then read as zeros, unless the
   * object map was renewed in between.
   */
  interruptFlatten(spec: ImageSpec, claimed: readonly Extent[]): void {
    const image = this.#live(spec, 'interruptFlatten');
    if (image.parent === undefined) throw new Error(`${formatImageSpec(spec)} is no clone`);
    image.unwrittenClaims.push(...claimed);
  }

  /** Data as the image (or one of its snapshots) would export it, without the zero tail. */
  peekData(spec: ImageSpec | SnapshotSpec): Buffer {
    const image = this.#live(spec, 'peek');
    return Buffer.from(isSnapshotSpec(spec) ? this.#userSnapshot(image, spec.snapshot, 'peek').data : image.data);
  }

  // --- images ----------------------------------------------------------------------------

  async listImages(where: PoolRef): Promise<string[]> {
    this.#enter('listImages', where);
    this.#location(where, 'ls');
    return this.#liveIn(where).map((i) => i.name).sort();
  }

  /** Nothing is opened here; the images kept open are recorded so that tests can see the releases. */
  readonly keptOpen = new Map<string, number>();

  keepOpen(images: readonly ImageSpec[]): () => Promise<void> {
    const keys = images.map((image) => formatImageSpec(image));
    for (const key of keys) this.keptOpen.set(key, (this.keptOpen.get(key) ?? 0) + 1);
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      for (const key of keys) {
        const n = (this.keptOpen.get(key) ?? 1) - 1;
        if (n > 0) this.keptOpen.set(key, n);
        else this.keptOpen.delete(key);
      }
    };
  }

  async imageId(ref: ImageSpec): Promise<string> {
    this.#enter('imageId', ref);
    return this.#resolve(ref, 'info').id;
  }

  async imageSize(ref: ImageSpec): Promise<number> {
    this.#enter('imageSize', ref);
    return (await this.info(ref)).sizeBytes;
  }

  async imageParent(ref: ImageSpec): Promise<ParentInfo | undefined> {
    this.#enter('imageParent', ref);
    return (await this.info(ref)).parent;
  }

  async info(ref: ImageRef): Promise<ImageInfo> {
    this.#enter('info', ref);
    const image = this.#resolve(ref, 'info');
    const parent = image.parent === undefined ? undefined : this.#images.get(image.parent.imageId);
    const parentSnapshot = parent?.snapshots.find((s) => s.id === image.parent?.snapshotId);
    const hasChildren = image.snapshots.some((s) => this.#children(image, s).length > 0);
    const opFeatures = [
      ...(hasChildren ? ['clone-parent'] : []),
      ...(image.parent !== undefined ? ['clone-child'] : []),
      ...(image.snapshots.some((s) => s.namespace === 'trash') ? ['snap-trash'] : []),
    ];
    return {
      name: image.name,
      id: image.id,
      sizeBytes: image.sizeBytes,
      objectSizeBytes: 4 * 1024 * 1024,
      objectCount: Math.ceil(image.sizeBytes / (4 * 1024 * 1024)),
      format: 2,
      snapshotCount: image.snapshots.length,
      features: ['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten'],
      opFeatures,
      flags: [],
      createdAt: image.createdAt,
      modifiedAt: image.createdAt,
      accessedAt: image.createdAt,
      parent:
        parent === undefined || parentSnapshot === undefined
          ? undefined
          : {
              pool: parent.pool,
              namespace: parent.namespace,
              image: parent.name,
              imageId: parent.id,
              snapshot: parentSnapshot.name,
              inTrash: parent.trash !== undefined,
              overlapBytes: Math.min(parentSnapshot.sizeBytes, image.sizeBytes),
            },
    };
  }

  async createImage(spec: ImageSpec, sizeBytes: number): Promise<void> {
    this.#enter('createImage', spec, sizeBytes);
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) {
      throw new InvalidRequestError(`image size must be a positive whole number of bytes, got ${sizeBytes}`);
    }
    this.#newImage(spec, sizeBytes, Buffer.alloc(0), 'create');
  }

  async removeImage(spec: ImageSpec): Promise<void> {
    this.#enter('removeImage', spec);
    const image = this.#live(spec, 'rm');
    const config = this.#pools.get(image.pool)?.config;
    if (config?.get('rbd_move_to_trash_on_remove') === 'true') {
      const seconds = Number(config.get('rbd_move_to_trash_on_remove_expire_seconds') ?? '0');
      const now = this.#now();
      image.trash = { deletedAt: now, expiresAt: new Date(now.getTime() + seconds * 1000) };
      return;
    }
    this.#destroy(image, 'rm');
  }

  // --- snapshots -------------------------------------------------------------------------

  async createSnapshot(spec: SnapshotSpec): Promise<void> {
    this.#enter('createSnapshot', spec);
    const image = this.#live(spec, 'snap create');
    validateSnapshotName(spec.snapshot);
    if (image.snapshots.some((s) => s.namespace === 'user' && s.name === spec.snapshot)) {
      throw this.#error(RbdExistsError, 'snap create', formatSnapshotSpec(spec), 'failed to create snapshot: (17) File exists');
    }
    image.snapshots.push({
      id: this.#nextSnapshotId++,
      name: spec.snapshot,
      namespace: 'user',
      data: Buffer.from(image.data),
      sizeBytes: image.sizeBytes,
      createdAt: this.#now(),
    });
  }

  async listSnapshots(ref: ImageRef, options: SnapshotListOptions = {}): Promise<SnapshotInfo[]> {
    this.#enter('listSnapshots', ref, options);
    const image = this.#resolve(ref, 'snap ls');
    return image.snapshots
      .filter((s) => options.includeTrash === true || s.namespace === 'user')
      .map((s) => ({
        id: s.id,
        name: s.name,
        sizeBytes: s.sizeBytes,
        protected: false,
        createdAt: s.createdAt,
        namespace: s.namespace,
        originalName: s.originalName,
      }));
  }

  async removeSnapshot(ref: SnapshotRef): Promise<void> {
    this.#enter('removeSnapshot', ref);
    const image = this.#resolve(ref, 'snap rm');
    const snapshot = this.#userSnapshot(image, validateSnapshotName(ref.snapshot), 'snap rm');
    this.#dropSnapshot(image, snapshot);
  }

  async purgeSnapshots(ref: ImageRef): Promise<void> {
    this.#enter('purgeSnapshots', ref);
    const image = this.#resolve(ref, 'snap purge');
    for (const snapshot of image.snapshots.filter((s) => s.namespace === 'user')) this.#dropSnapshot(image, snapshot);
  }

  // --- clones --------------------------------------------------------------------------------

  async clone(parentSpec: SnapshotSpec, childSpec: ImageSpec): Promise<void> {
    this.#enter('clone', parentSpec, childSpec);
    const parent = this.#live(parentSpec, 'clone');
    const snapshot = this.#userSnapshot(parent, validateSnapshotName(parentSpec.snapshot), 'clone');
    const child = this.#newImage(childSpec, snapshot.sizeBytes, Buffer.from(snapshot.data), 'clone');
    child.parent = { imageId: parent.id, snapshotId: snapshot.id };
  }

  async flatten(spec: ImageSpec): Promise<void> {
    this.#enter('flatten', spec);
    const image = this.#live(spec, 'flatten');
    if (image.parent === undefined) {
      throw this.#error(RbdInvalidArgumentError, 'flatten', formatImageSpec(spec), 'flatten error: (22) Invalid argument (image has no parent)');
    }
    for (const { offset, length } of image.unwrittenClaims) {
      if (offset < image.data.length) image.data.fill(0, offset, Math.min(image.data.length, offset + length));
    }
    image.unwrittenClaims = [];
    this.#detach(image);
  }

  async renewObjectMap(spec: ImageSpec): Promise<void> {
    this.#enter('renewObjectMap', spec);
    this.#live(spec, 'object-map rebuild').unwrittenClaims = [];
  }

  // --- trash ------------------------------------------------------------------------------------

  async moveToTrash(spec: ImageSpec, options: TrashMoveOptions = {}): Promise<string> {
    this.#enter('moveToTrash', spec, options);
    const image = this.#live(spec, 'trash mv');
    const now = this.#now();
    if (options.expiresAt !== undefined && !(options.expiresAt.getTime() - now.getTime() >= 5000)) {
      throw new InvalidRequestError(`trash expiry ${String(options.expiresAt)} is not at least 5 s in the future`);
    }
    image.trash = { deletedAt: now, expiresAt: options.expiresAt ?? now };
    return image.id;
  }

  async listTrash(where: PoolRef, options: TrashListOptions = {}): Promise<TrashEntry[]> {
    this.#enter('listTrash', where, options);
    this.#location(where, 'trash ls');
    const now = this.#now().getTime();
    return [...this.#images.values()]
      .filter((i) => i.trash !== undefined && i.pool === where.pool && i.namespace === where.namespace)
      .map((i) => {
        const trash = i.trash as { deletedAt: Date; expiresAt: Date };
        const parent = i.parent === undefined ? undefined : this.#images.get(i.parent.imageId);
        const parentSnapshot = parent?.snapshots.find((s) => s.id === i.parent?.snapshotId);
        return {
          pool: i.pool,
          namespace: i.namespace,
          id: i.id,
          name: i.name,
          source: 'USER',
          deletedAt: trash.deletedAt,
          expiresAt: trash.expiresAt,
          expired: trash.expiresAt.getTime() <= now,
          parent:
            parent === undefined || parentSnapshot === undefined
              ? undefined
              : { pool: parent.pool, namespace: parent.namespace, image: parent.name, snapshot: parentSnapshot.name },
        };
      });
  }

  async restoreFromTrash(ref: ImageIdRef, options: TrashRestoreOptions = {}): Promise<void> {
    this.#enter('restoreFromTrash', ref, options);
    const image = this.#trashed(ref, 'trash restore');
    const name = options.name === undefined ? image.name : validateImageName(options.name);
    if (this.#liveIn(image).some((i) => i.name === name)) {
      throw this.#error(RbdExistsError, 'trash restore', name, 'error: an image with the same name already exists');
    }
    image.name = name;
    image.trash = undefined;
  }

  async removeFromTrash(ref: ImageIdRef, options: TrashRemoveOptions = {}): Promise<void> {
    this.#enter('removeFromTrash', ref, options);
    const image = this.#trashed(ref, 'trash rm');
    const trash = image.trash as { expiresAt: Date };
    if (options.force !== true && trash.expiresAt.getTime() > this.#now().getTime()) {
      throw this.#error(
        RbdPermissionDeniedError,
        'trash rm',
        ref.imageId,
        'Deferment time has not expired, please use --force if you really want to remove the image',
      );
    }
    this.#destroy(image, 'trash rm');
  }

  // --- metadata -----------------------------------------------------------------------------------

  async getMeta(spec: ImageSpec, key: string): Promise<string> {
    this.#enter('getMeta', spec, key);
    const value = this.#live(spec, 'image-meta get').meta.get(validateMetaKey(key));
    if (value === undefined) {
      throw this.#error(RbdNotFoundError, 'image-meta get', formatImageSpec(spec), `failed to get metadata ${key}: (2) No such file or directory`);
    }
    return value;
  }

  async setMeta(spec: ImageSpec, key: string, value: string): Promise<void> {
    this.#enter('setMeta', spec, key, value);
    this.#live(spec, 'image-meta set').meta.set(validateMetaKey(key), validateMetaValue(value));
  }

  async removeMeta(spec: ImageSpec, key: string): Promise<void> {
    this.#enter('removeMeta', spec, key);
    if (!this.#live(spec, 'image-meta remove').meta.delete(validateMetaKey(key))) {
      throw this.#error(RbdNotFoundError, 'image-meta remove', formatImageSpec(spec), `failed to remove metadata ${key}: (2) No such file or directory`);
    }
  }

  async listMeta(spec: ImageSpec): Promise<Record<string, string>> {
    this.#enter('listMeta', spec);
    return Object.fromEntries(this.#live(spec, 'image-meta list').meta);
  }

  // --- usage ----------------------------------------------------------------------------------------

  async diskUsage(target: ImageSpec | PoolRef): Promise<DiskUsage> {
    this.#enter('diskUsage', target);
    const images = 'image' in target ? [this.#live(target as ImageSpec, 'du')] : (this.#location(target, 'du'), this.#liveIn(target));
    const rows: UsageRow[] = [];
    for (const image of images) {
      for (const s of image.snapshots.filter((x) => x.namespace === 'user')) {
        rows.push({ image: image.name, id: image.id, snapshot: s.name, provisionedBytes: s.sizeBytes, usedBytes: s.data.length });
      }
      // A clone's data stays with its parent until it is flattened.
      const used = image.parent === undefined ? image.data.length : 0;
      rows.push({ image: image.name, id: image.id, provisionedBytes: image.sizeBytes, usedBytes: used });
    }
    return {
      rows,
      totalProvisionedBytes: rows.filter((r) => r.snapshot === undefined).reduce((sum, r) => sum + r.provisionedBytes, 0),
      totalUsedBytes: rows.reduce((sum, r) => sum + r.usedBytes, 0),
    };
  }

  // --- transfers ----------------------------------------------------------------------------------------

  exportImage(source: ImageSpec | SnapshotSpec, options: TransferOptions = {}): ExportHandle {
    // Like the real adapters, a store refusal arrives through the handle, not as a throw;
    // only a bad name is refused before anything starts.
    if (isSnapshotSpec(source)) formatSnapshotSpec(source);
    else formatImageSpec(source);
    try {
      return this.#export(source, options);
    } catch (error) {
      const stream = new Readable({ read() {} });
      stream.on('error', () => {});
      stream.destroy(error as Error);
      const done = Promise.reject(error as Error);
      done.catch(() => {});
      return { stream, done };
    }
  }

  #export(source: ImageSpec | SnapshotSpec, options: TransferOptions): ExportHandle {
    this.#enter('exportImage', source);
    const image = this.#live(source, 'export');
    const snapshot = isSnapshotSpec(source) ? this.#userSnapshot(image, validateSnapshotName(source.snapshot), 'export') : undefined;
    const data = snapshot?.data ?? image.data;
    const size = snapshot?.sizeBytes ?? image.sizeBytes;
    const signal = options.signal;
    const spec = isSnapshotSpec(source) ? formatSnapshotSpec(source) : formatImageSpec(source);
    const aborted = (): Error => this.#error(RbdAbortedError, 'export', spec, 'aborted');
    const timeoutMs = options.timeoutMs;
    const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    const timedOut = (): Error =>
      new RbdTimeoutError(`rbd export ${spec} timed out after ${timeoutMs} ms`, { command: ['rbd', 'export', spec], exitCode: null, stderr: '', timeoutMs: timeoutMs ?? 0 });
    async function* chunks(): AsyncGenerator<Buffer> {
      const step = 1024 * 1024;
      for (let at = 0; at < size; at += step) {
        if (signal?.aborted === true) throw aborted();
        // A real export of any size takes more than a millisecond.
        if (Date.now() + 1 >= deadline) throw timedOut();
        const chunk = Buffer.alloc(Math.min(step, size - at));
        data.copy(chunk, 0, Math.min(at, data.length), Math.min(at + chunk.length, data.length));
        yield chunk;
      }
    }
    const stream = Readable.from(chunks());
    stream.on('error', () => {});
    const done = new Promise<void>((resolve, reject) => {
      stream.once('end', resolve);
      stream.once('error', reject);
      stream.once('close', () => {
        if (!stream.readableEnded) reject(aborted());
      });
    });
    done.catch(() => {});
    return { stream, done };
  }

  async importImage(source: ImportSource, destination: ImageSpec, options: TransferOptions = {}): Promise<void> {
    this.#enter('importImage', destination);
    formatImageSpec(destination);
    if (!('stream' in source)) {
      const { readFile } = await import('node:fs/promises');
      const data = await readFile(source.path);
      this.#newImage(destination, Math.max(data.length, 1), data, 'import');
      return;
    }
    const parts: Buffer[] = [];
    for await (const chunk of source.stream) {
      if (options.signal?.aborted === true) throw this.#error(RbdAbortedError, 'import', formatImageSpec(destination), 'aborted');
      parts.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
    }
    const data = Buffer.concat(parts);
    this.#newImage(destination, Math.max(data.length, 1), data, 'import');
  }

  async writeExtents(spec: ImageSpec, pieces: AsyncIterable<ExtentData>, options: TransferOptions = {}): Promise<number> {
    this.#enter('writeExtents', spec);
    const image = this.#live(spec, 'import-diff');
    let written = 0;
    let end = 0;
    for await (const piece of pieces) {
      if (options.signal?.aborted === true) throw this.#error(RbdAbortedError, 'import-diff', formatImageSpec(spec), 'aborted');
      if (piece.offset < end || piece.offset + piece.data.length > image.sizeBytes) {
        throw new InvalidRequestError(`piece at ${piece.offset} (${piece.data.length} bytes) out of order or beyond ${formatImageSpec(spec)}`);
      }
      if (image.data.length < piece.offset + piece.data.length) {
        const grown = Buffer.alloc(piece.offset + piece.data.length);
        image.data.copy(grown);
        image.data = grown;
      }
      piece.data.copy(image.data, piece.offset);
      end = piece.offset + piece.data.length;
      // A write copies the object up whole: a claim it touches is written from then on.
      image.unwrittenClaims = image.unwrittenClaims.filter((c) => c.offset + c.length <= piece.offset || c.offset >= end);
      written += piece.data.length;
    }
    return written;
  }

  // --- pool config and namespaces ------------------------------------------------------------------------

  async getPoolConfig(pool: string, key: string): Promise<string | undefined> {
    this.#enter('getPoolConfig', pool, key);
    validateConfigKey(key);
    return this.#location({ pool }, 'config pool get').config.get(key);
  }

  async setPoolConfig(pool: string, key: string, value: string): Promise<void> {
    this.#enter('setPoolConfig', pool, key, value);
    validateConfigKey(key);
    validateConfigValue(value);
    this.#location({ pool }, 'config pool set').config.set(key, value);
  }

  async removePoolConfig(pool: string, key: string): Promise<void> {
    this.#enter('removePoolConfig', pool, key);
    validateConfigKey(key);
    if (!this.#location({ pool }, 'config pool remove').config.delete(key)) {
      throw this.#error(RbdNotFoundError, 'config pool remove', pool, `failed to remove ${key}: (2) No such file or directory`);
    }
  }

  async createNamespace(where: NamespaceRef): Promise<void> {
    this.#enter('createNamespace', where);
    const pool = this.#location({ pool: where.pool }, 'namespace create');
    if (pool.namespaces.has(validateNamespaceName(where.namespace))) {
      throw this.#error(RbdExistsError, 'namespace create', formatPoolSpec(where), 'failed to created namespace: (17) File exists');
    }
    pool.namespaces.add(where.namespace);
  }

  async removeNamespace(where: NamespaceRef): Promise<void> {
    this.#enter('removeNamespace', where);
    const pool = this.#location(where, 'namespace remove');
    if ([...this.#images.values()].some((i) => i.pool === where.pool && i.namespace === where.namespace)) {
      throw this.#error(RbdBusyError, 'namespace remove', formatPoolSpec(where), 'namespace contains images which must be deleted first.');
    }
    pool.namespaces.delete(where.namespace);
  }

  // Its own map: the 4 KiB blocks of the image's bytes that are not all zeros,
  // as an `rbd import` (which skips zero blocks) would have allocated them.
  #allocation(source: ImageSpec | SnapshotSpec, op: string): { map: AllocationMap; data: Buffer; spec: string } {
    const image = this.#live(source, op);
    const snapshot = isSnapshotSpec(source) ? this.#userSnapshot(image, validateSnapshotName(source.snapshot), op) : undefined;
    const data = snapshot?.data ?? image.data;
    const sizeBytes = snapshot?.sizeBytes ?? image.sizeBytes;
    const extents: Extent[] = [];
    const end = Math.min(data.length, sizeBytes);
    for (let at = 0; at < end; at += ALLOCATION_BLOCK) {
      const block = data.subarray(at, Math.min(at + ALLOCATION_BLOCK, end));
      if (block.equals(ZERO_BLOCK.subarray(0, block.length))) continue;
      const last = extents.at(-1);
      if (last !== undefined && last.offset + last.length === at) extents[extents.length - 1] = { offset: last.offset, length: last.length + block.length };
      else extents.push({ offset: at, length: block.length });
    }
    return { map: { sizeBytes, extents }, data, spec: isSnapshotSpec(source) ? formatSnapshotSpec(source) : formatImageSpec(source) };
  }

  async allocatedExtents(source: ImageSpec | SnapshotSpec): Promise<AllocationMap> {
    this.#enter('allocatedExtents', source);
    return this.#allocation(source, 'diff').map;
  }

  async readAllocated(source: ImageSpec | SnapshotSpec, options: TransferOptions = {}): Promise<AllocatedRead> {
    this.#enter('readAllocated', source);
    const { map, data, spec } = this.#allocation(source, 'export-diff');
    const copy = Buffer.from(data);
    const aborted = (): Error => this.#error(RbdAbortedError, 'export-diff', spec, 'aborted');
    const signal = options.signal;
    if (signal?.aborted === true) throw aborted();
    async function* pieces(): AsyncGenerator<ExtentData> {
      for (const e of map.extents) {
        for (let at = e.offset; at < e.offset + e.length; at += 1024 * 1024) {
          if (signal?.aborted === true) throw aborted();
          yield { offset: at, data: copy.subarray(at, Math.min(at + 1024 * 1024, e.offset + e.length)) };
        }
      }
    }
    return { sizeBytes: map.sizeBytes, pieces: pieces() };
  }

  async listNamespaces(pool: string): Promise<string[]> {
    this.#enter('listNamespaces', pool);
    return [...this.#location({ pool }, 'namespace ls').namespaces].sort();
  }

  // --- internals ------------------------------------------------------------------------------------------

  #enter(op: string, ...args: unknown[]): void {
    this.calls.push({ op, args });
    const index = this.#failures.findIndex((f) => f.op === op);
    if (index >= 0) {
      const [failure] = this.#failures.splice(index, 1);
      if (failure !== undefined) throw failure.error;
    }
  }

  #error(ErrorClass: ErrorClass, op: string, target: string, stderr: string): RbdError {
    const exitCode = EXIT_CODES.get(ErrorClass) ?? null;
    return new ErrorClass(`rbd ${op} ${target} failed: ${stderr}`, {
      command: ['rbd', ...op.split(' '), target],
      exitCode,
      stderr: `rbd: ${stderr}\n`,
    });
  }

  /** The pool entry after checking that pool (and namespace) exist and are reachable. */
  #location(where: PoolRef, op: string): { namespaces: Set<string>; config: Map<string, string> } {
    validatePoolRef(where);
    const pool = this.#pools.get(where.pool);
    if (pool === undefined) {
      throw this.#error(RbdNotFoundError, op, where.pool, `error opening pool '${where.pool}': (2) No such file or directory`);
    }
    if (this.#accessible !== undefined && !this.#accessible.has(where.pool)) {
      throw this.#error(RbdPermissionDeniedError, op, formatPoolSpec(where), '(1) Operation not permitted');
    }
    if (where.namespace !== undefined && !pool.namespaces.has(where.namespace)) {
      throw this.#error(RbdNotFoundError, op, formatPoolSpec(where), `namespace '${where.namespace}' does not exist.`);
    }
    return pool;
  }

  #liveIn(where: PoolRef): FakeImage[] {
    return [...this.#images.values()].filter((i) => i.trash === undefined && i.pool === where.pool && i.namespace === where.namespace);
  }

  #live(spec: ImageSpec, op: string): FakeImage {
    const name = validateImageName(spec.image);
    this.#location(spec, op);
    const image = this.#liveIn(spec).find((i) => i.name === name);
    if (image === undefined) {
      throw this.#error(RbdNotFoundError, op, formatImageSpec(spec), `error opening image ${spec.image}: (2) No such file or directory`);
    }
    return image;
  }

  /** By name: a live image; by id: live or trashed, as `rbd --image-id` allows. */
  #resolve(ref: ImageRef, op: string): FakeImage {
    if (!isImageIdRef(ref)) return this.#live(ref, op);
    this.#location(ref, op);
    const image = this.#images.get(validateImageId(ref.imageId));
    if (image === undefined || image.pool !== ref.pool || image.namespace !== ref.namespace) {
      throw this.#error(RbdNotFoundError, op, ref.imageId, `error opening image with id ${ref.imageId}: (2) No such file or directory`);
    }
    return image;
  }

  #trashed(ref: ImageIdRef, op: string): FakeImage {
    const image = this.#resolve(ref, op);
    if (image.trash === undefined) throw this.#error(RbdNotFoundError, op, ref.imageId, 'error: image does not exist in trash');
    return image;
  }

  #userSnapshot(image: FakeImage, name: string, op: string): FakeSnapshot {
    const snapshot = image.snapshots.find((s) => s.namespace === 'user' && s.name === name);
    if (snapshot === undefined) {
      throw this.#error(RbdNotFoundError, op, `${image.name}@${name}`, 'error setting snapshot context: (2) No such file or directory');
    }
    return snapshot;
  }

  #newImage(spec: ImageSpec, sizeBytes: number, data: Buffer, op: string): FakeImage {
    const name = validateImageName(spec.image);
    this.#location(spec, op);
    if (this.#liveIn(spec).some((i) => i.name === name)) {
      throw this.#error(RbdExistsError, op, formatImageSpec(spec), `${op} error: (17) File exists`);
    }
    const image: FakeImage = {
      id: randomBytes(6).toString('hex'),
      name: spec.image,
      pool: spec.pool,
      namespace: spec.namespace,
      sizeBytes,
      data: data.subarray(0, sizeBytes),
      snapshots: [],
      meta: new Map(),
      parent: undefined,
      createdAt: this.#now(),
      trash: undefined,
      unwrittenClaims: [],
    };
    this.#images.set(image.id, image);
    return image;
  }

  #children(image: FakeImage, snapshot: FakeSnapshot): FakeImage[] {
    return [...this.#images.values()].filter((i) => i.parent?.imageId === image.id && i.parent.snapshotId === snapshot.id);
  }

  /** v2 semantics: a snapshot that clones still use moves to the trash namespace. */
  #dropSnapshot(image: FakeImage, snapshot: FakeSnapshot): void {
    if (this.#children(image, snapshot).length === 0) {
      image.snapshots = image.snapshots.filter((s) => s !== snapshot);
      return;
    }
    snapshot.originalName = snapshot.name;
    snapshot.name = randomUUID();
    snapshot.namespace = 'trash';
  }

  /** A clone leaves its parent; a trash snapshot nobody uses any more goes away. */
  #detach(image: FakeImage): void {
    const link = image.parent;
    image.parent = undefined;
    if (link === undefined) return;
    const parent = this.#images.get(link.imageId);
    const snapshot = parent?.snapshots.find((s) => s.id === link.snapshotId);
    if (parent !== undefined && snapshot?.namespace === 'trash' && this.#children(parent, snapshot).length === 0) {
      parent.snapshots = parent.snapshots.filter((s) => s !== snapshot);
    }
  }

  #destroy(image: FakeImage, op: string): void {
    if (image.snapshots.length > 0) {
      const linked = image.snapshots.some((s) => this.#children(image, s).length > 0);
      throw this.#error(
        RbdHasSnapshotsError,
        op,
        image.name,
        linked
          ? 'image has snapshots with linked clones - these must be deleted or flattened before the image can be removed.'
          : "image has snapshots - these must be deleted with 'rbd snap purge' before the image can be removed.",
      );
    }
    this.#detach(image);
    this.#images.delete(image.id);
  }
}

/** An RbdBusyError as rbd reports an image held open elsewhere, for `failNext`. */
export function busyError(message = 'image still has watchers'): RbdBusyError {
  return new RbdBusyError(message, { command: ['rbd'], exitCode: 16, stderr: `rbd: error: ${message}\n` });
}
