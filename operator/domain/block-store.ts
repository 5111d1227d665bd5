// The port through which the rest of the operator preserves, inspects and
// restores RBD disks. It speaks in images, snapshots and trash entries; how
// they are reached (librbd in-process, or the rbd CLI) is the adapters' business (ceph/).
//
// Every method rejects with an RbdError subclass from ceph/errors.ts when the
// store refuses (RbdNotFoundError, RbdPermissionDeniedError, ...), and with
// InvalidNameError / InvalidRequestError before touching the store when an
// argument is unsafe or impossible.

import type { Readable } from 'node:stream';

/** A pool, or an RBD namespace inside it (absent = the pool's default namespace). */
export interface PoolRef {
  readonly pool: string;
  readonly namespace?: string | undefined;
}

export interface NamespaceRef {
  readonly pool: string;
  readonly namespace: string;
}

/** An image by name: `pool[/namespace]/image`. */
export interface ImageSpec extends PoolRef {
  readonly image: string;
}

/** An image by id: the only handle on an image that sits in the trash. */
export interface ImageIdRef extends PoolRef {
  readonly imageId: string;
}

export type ImageRef = ImageSpec | ImageIdRef;

export interface SnapshotSpec extends ImageSpec {
  readonly snapshot: string;
}

export type SnapshotRef = SnapshotSpec | (ImageIdRef & { readonly snapshot: string });

/** Where a clone's data comes from. */
export interface ParentInfo {
  readonly pool: string;
  readonly namespace?: string | undefined;
  readonly image: string;
  /** Absent in trash listings, which do not report it. */
  readonly imageId?: string | undefined;
  /**
   * For a parent snapshot that was removed while clones still used it, this is
   * the uuid name it got in the trash snapshot namespace, not the original name.
   */
  readonly snapshot: string;
  /** The parent image itself is in the trash. */
  readonly inTrash?: boolean | undefined;
  readonly overlapBytes?: number | undefined;
}

export interface ImageInfo {
  readonly name: string;
  readonly id: string;
  readonly sizeBytes: number;
  readonly objectSizeBytes: number;
  readonly objectCount: number;
  readonly format: number;
  readonly snapshotCount: number;
  readonly features: readonly string[];
  /** e.g. clone-parent, clone-child, snap-trash */
  readonly opFeatures: readonly string[];
  readonly flags: readonly string[];
  readonly createdAt?: Date | undefined;
  readonly modifiedAt?: Date | undefined;
  readonly accessedAt?: Date | undefined;
  /** Present for a clone that has not been flattened. */
  readonly parent?: ParentInfo | undefined;
}

/**
 * `user` snapshots are the ordinary ones. A `trash` snapshot is one that was
 * removed while v2 clones still depend on it; it disappears with its last clone.
 */
export type SnapshotNamespaceKind = 'user' | 'trash' | 'group' | 'mirror' | 'other';

export interface SnapshotInfo {
  readonly id: number;
  readonly name: string;
  readonly sizeBytes: number;
  readonly protected: boolean;
  readonly createdAt: Date;
  readonly namespace: SnapshotNamespaceKind;
  /** The name a trash snapshot had before it was removed. */
  readonly originalName?: string | undefined;
}

export interface TrashEntry {
  readonly pool: string;
  readonly namespace?: string | undefined;
  readonly id: string;
  readonly name: string;
  /** USER for `rbd trash mv`/`rm` with move-to-trash; also MIRRORING, MIGRATION, REMOVING. */
  readonly source: string;
  readonly deletedAt: Date;
  /** End of the deferment: before it, removal needs `force`. */
  readonly expiresAt: Date;
  /** As judged by the store at listing time. */
  readonly expired: boolean;
  /** Only when listed `withParents` (an adapter that gets it for free may always give it). */
  readonly parent?: ParentInfo | undefined;
}

export interface UsageRow {
  readonly image: string;
  readonly id: string;
  /** Absent for the image head. */
  readonly snapshot?: string | undefined;
  readonly provisionedBytes: number;
  readonly usedBytes: number;
}

export interface DiskUsage {
  /** The head row of each image and one row per (user) snapshot. */
  readonly rows: readonly UsageRow[];
  /** Sum of the heads' provisioned sizes. */
  readonly totalProvisionedBytes: number;
  /** Sum of the used sizes of every row, snapshots included. */
  readonly totalUsedBytes: number;
}

export interface TrashMoveOptions {
  /**
   * Until then the entry can only be removed with `force`. Must lie in the
   * future. Absent = expires at once (still restorable until removed).
   */
  readonly expiresAt?: Date | undefined;
}

export interface TrashListOptions {
  /** Also entries not moved there by a user (mirroring, migration, in-progress removal). */
  readonly all?: boolean | undefined;
  /**
   * Also each trashed clone's parent. An adapter may need to open every entry for it, which makes a
   * scan cost grow with the trash; capture does not need it.
   */
  readonly withParents?: boolean | undefined;
}

export interface TrashRestoreOptions {
  /** Restore under another name (the original one may be taken again). */
  readonly name?: string | undefined;
}

export interface TrashRemoveOptions {
  /** Remove even before the deferment has expired. */
  readonly force?: boolean | undefined;
}

export interface SnapshotListOptions {
  /** Also list snapshots in the trash namespace (removed, still used by clones). */
  readonly includeTrash?: boolean | undefined;
}

export interface TransferOptions {
  readonly signal?: AbortSignal | undefined;
  /** Overrides the store's default for long transfers. */
  readonly timeoutMs?: number | undefined;
}

export interface ExportHandle {
  /**
   * The raw image bytes. It ends only once the export has succeeded and is
   * destroyed with the typed error otherwise, so a digest over a truncated
   * stream cannot pass as complete.
   */
  readonly stream: Readable;
  /** Settles with the export; rejects with the same error as the stream. */
  readonly done: Promise<void>;
}

/** A byte range of an image. */
export interface Extent {
  readonly offset: number;
  readonly length: number;
}

/** Where an image (or snapshot) holds data; every byte outside `extents` reads as zero. */
export interface AllocationMap {
  readonly sizeBytes: number;
  /** Ascending and disjoint; a clone's include what it reads through its parent. */
  readonly extents: readonly Extent[];
}

/** Bytes of an allocated extent (a long extent comes in several pieces). */
export interface ExtentData {
  readonly offset: number;
  readonly data: Buffer;
}

export interface AllocatedRead {
  readonly sizeBytes: number;
  /**
   * The allocated bytes in ascending offset order, disjoint. Iteration ends
   * only once the read has succeeded and throws the typed error otherwise;
   * leaving it early stops the read. It must be iterated: the image stays
   * open (and the rbd process waits) until it is read to its end or left.
   */
  readonly pieces: AsyncIterable<ExtentData>;
}

export type ImportSource = { readonly path: string } | { readonly stream: Readable };

export interface BlockStore {
  listImages(where: PoolRef): Promise<string[]>;
  info(image: ImageRef): Promise<ImageInfo>;
  /**
   * `info(image).id` alone, for an adapter that can look it up without
   * reading the rest (librbd: one call instead of an image open). Rejects
   * with RbdNotFoundError for a missing image.
   */
  imageId(image: ImageSpec): Promise<string>;
  /**
   * `info(image).sizeBytes` alone (librbd: one call on the image instead of
   * the dozen that gather all of info). Rejects with RbdNotFoundError for a
   * missing image.
   */
  imageSize(image: ImageSpec): Promise<number>;
  /**
   * `info(image).parent` alone: undefined once the image is no clone (or
   * flattened). librbd: the parent getters on one open instead of info's
   * dozen calls. Rejects with RbdNotFoundError for a missing image.
   */
  imageParent(image: ImageSpec): Promise<ParentInfo | undefined>;
  /**
   * Until the returned function is called, the adapter may keep these images
   * open between calls (librbd: one open for the several steps of a capture
   * instead of one per call). Calls behave the same either way; after the
   * release nothing of this store holds the images open any more.
   */
  keepOpen(images: readonly ImageSpec[]): () => Promise<void>;
  createImage(image: ImageSpec, sizeBytes: number): Promise<void>;
  /** Plain removal; a pool with rbd_move_to_trash_on_remove turns it into a trash move. */
  removeImage(image: ImageSpec): Promise<void>;

  createSnapshot(snapshot: SnapshotSpec): Promise<void>;
  listSnapshots(image: ImageRef, options?: SnapshotListOptions): Promise<SnapshotInfo[]>;
  removeSnapshot(snapshot: SnapshotRef): Promise<void>;
  /** Removes every user snapshot; works on trashed images by id. */
  purgeSnapshots(image: ImageRef): Promise<void>;

  /** A v2 (copy-on-write) clone; parent and child may be in different pools or namespaces. */
  clone(parent: SnapshotSpec, child: ImageSpec): Promise<void>;
  /** Copies the parent's data into the clone and detaches it from the parent. */
  flatten(image: ImageSpec): Promise<void>;
  /**
   * Makes the image's record of which of its objects exist (librbd's object
   * map) true again, from the objects the cluster holds. A process killed while
   * librbd copied objects up into a clone (an interrupted flatten) can leave
   * that record claiming objects that were never written; a later flatten
   * skips every object the record claims, so the flattened image reads zeros
   * there. librbd's own rebuild and check keep such a claim (Ceph 16), so the
   * record is dropped and made anew. The content is unchanged. An image that
   * cannot have the record (no exclusive lock) is left as it is.
   */
  renewObjectMap(image: ImageSpec): Promise<void>;

  /** Returns the image id, the handle for the trash entry. */
  moveToTrash(image: ImageSpec, options?: TrashMoveOptions): Promise<string>;
  listTrash(where: PoolRef, options?: TrashListOptions): Promise<TrashEntry[]>;
  restoreFromTrash(entry: ImageIdRef, options?: TrashRestoreOptions): Promise<void>;
  removeFromTrash(entry: ImageIdRef, options?: TrashRemoveOptions): Promise<void>;

  /** Rejects with RbdNotFoundError for a missing key. */
  getMeta(image: ImageSpec, key: string): Promise<string>;
  setMeta(image: ImageSpec, key: string, value: string): Promise<void>;
  removeMeta(image: ImageSpec, key: string): Promise<void>;
  listMeta(image: ImageSpec): Promise<Record<string, string>>;

  diskUsage(target: ImageSpec | PoolRef): Promise<DiskUsage>;

  exportImage(source: ImageSpec | SnapshotSpec, options?: TransferOptions): ExportHandle;
  /** The allocated extents (`rbd diff`): what a sparse reader must read, the rest being zeros. */
  allocatedExtents(source: ImageSpec | SnapshotSpec): Promise<AllocationMap>;
  /**
   * The allocated extents with their bytes (`rbd export-diff` from creation):
   * the image's content without moving its zeros. Rejects with the typed error
   * when the image cannot be opened.
   */
  readAllocated(source: ImageSpec | SnapshotSpec, options?: TransferOptions): Promise<AllocatedRead>;
  importImage(source: ImportSource, destination: ImageSpec, options?: TransferOptions): Promise<void>;
  /**
   * Writes the pieces into an existing image at their offsets (`rbd
   * import-diff`): what a clone is written so holds its own copy of those
   * objects from then on, copied up from its parent as a flatten would.
   * Pieces must come in ascending order, inside the image. Resolves with the
   * bytes written; rejects with the typed error.
   */
  writeExtents(image: ImageSpec, pieces: AsyncIterable<ExtentData>, options?: TransferOptions): Promise<number>;

  /** The pool-level override only; undefined when the pool does not set the key. */
  getPoolConfig(pool: string, key: string): Promise<string | undefined>;
  setPoolConfig(pool: string, key: string, value: string): Promise<void>;
  /** Rejects with RbdNotFoundError when the pool does not set the key. */
  removePoolConfig(pool: string, key: string): Promise<void>;

  createNamespace(where: NamespaceRef): Promise<void>;
  listNamespaces(pool: string): Promise<string[]>;
  /** Rejects with RbdBusyError while the namespace holds images, trashed ones included. */
  removeNamespace(where: NamespaceRef): Promise<void>;
}

export function isImageIdRef(ref: ImageRef): ref is ImageIdRef {
  return 'imageId' in ref;
}

export function isSnapshotSpec(spec: ImageSpec | SnapshotSpec): spec is SnapshotSpec {
  return 'snapshot' in spec && typeof spec.snapshot === 'string';
}
