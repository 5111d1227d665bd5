// BlockStore over librbd in-process: one cluster connection per store (one
// store per Cloud), reused for every call, and one I/O context per pool and
// namespace. A call costs what Ceph costs (~10-20 ms) instead of an rbd
// process start plus connect plus cephx (~40-60 ms).
//
// Every call that can wait on the network runs on a koffi worker thread, so
// the event loop never blocks on Ceph. Every image handle is closed on every
// path (withImage). Failures arrive as -errno and become the same typed errors
// the CLI adapter raises for that errno. Names go through the same validators
// before anything reaches C.

import { open as openFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { Readable } from 'node:stream';
import type {
  AllocatedRead,
  AllocationMap,
  BlockStore,
  Extent,
  ExtentData,
  DiskUsage,
  ExportHandle,
  ImageIdRef,
  ImageInfo,
  ImageRef,
  ImageSpec,
  ImportSource,
  NamespaceRef,
  ParentInfo,
  PoolRef,
  SnapshotInfo,
  SnapshotListOptions,
  SnapshotNamespaceKind,
  SnapshotRef,
  SnapshotSpec,
  TransferOptions,
  TrashEntry,
  TrashListOptions,
  TrashMoveOptions,
  TrashRemoveOptions,
  TrashRestoreOptions,
  UsageRow,
} from '../domain/block-store.ts';
import { isImageIdRef, isSnapshotSpec } from '../domain/block-store.ts';
import { InvalidRequestError, RbdAbortedError, RbdCommandError, RbdError, RbdNotFoundError, RbdTimeoutError, errorFromErrno } from './errors.ts';
import {
  formatImageSpec,
  formatPoolSpec,
  formatSnapshotSpec,
  validateCephxUser,
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
} from './names.ts';
import {
  FEATURE_NAMES,
  FLAG_NAMES,
  IMAGE_OPTION_CLONE_FORMAT,
  OP_FEATURE_NAMES,
  OP_FLAGS_STREAMING,
  SNAP_NAMESPACE,
  TRASH_SOURCES,
  loadLibrbd,
} from './librbd-ffi.ts';
import type { FunctionName, Handle, Librbd } from './librbd-ffi.ts';
import { coalesced, normalizeExtents, piecesOf } from './extents.ts';
import { DEFAULT_TIMEOUT_MS, DEFAULT_TRANSFER_TIMEOUT_MS, MIN_TRASH_EXPIRY_LEAD_MS, type CephConnectionOptions } from './connection.ts';

const FEATURE_EXCLUSIVE_LOCK = 1n << 2n;
const FEATURE_OBJECT_MAP = 1n << 3n;
const FEATURE_FAST_DIFF = 1n << 4n;

export interface LibrbdStoreOptions extends CephConnectionOptions {
  readonly now?: (() => Date) | undefined;
  /** For tests: an already loaded binding. */
  readonly library?: Librbd | undefined;
}

/** Bytes per read or write of a whole-image transfer: one default RBD object. */
export const TRANSFER_CHUNK_BYTES = 4 * 1024 * 1024;
/** Reads in flight while reading allocated extents. */
const SPARSE_READ_AHEAD = 4;
const ERANGE = 34;
const ENOENT = 2;
/** CEPH_NOSNAP: the image's head, where a snapshot id is asked for. */
const CEPH_NOSNAP = 0xfffffffffffffffen;
/** Growth step of an image imported from a stream of unknown length. */
const IMPORT_GROWTH_BYTES = 256 * 1024 * 1024;

type OpenMode = 'read' | 'write';

/** An image kept open (read-write, so watched and current) for calls between keepOpen and its release. */
interface SharedImage {
  readonly handle: Promise<Handle>;
  users: number;
  /** No new user gets it; it closes when its last user leaves. */
  evicted: boolean;
  closing?: Promise<void>;
}

function checkTimeout(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new InvalidRequestError(`${name} must be a positive number of milliseconds, got ${value}`);
  return value;
}

function checkPath(kind: string, value: string): string {
  if (value === '' || /[\u0000-\u001f]/.test(value)) throw new InvalidRequestError(`invalid ${kind} ${JSON.stringify(value)}`);
  return value;
}

function bits(value: bigint, names: readonly (readonly [bigint, string])[]): string[] {
  return names.filter(([bit]) => (value & bit) !== 0n).map(([, name]) => name);
}

/** A std::map<std::string, bufferlist> in Ceph's encoding: a u32 count, then each key and value as a u32 length and its bytes. */
function encodeStringMap(entries: readonly (readonly [string, string])[]): Buffer {
  const parts: Buffer[] = [u32(entries.length)];
  for (const [key, value] of entries) {
    for (const text of [key, value]) {
      const bytes = Buffer.from(text, 'utf8');
      parts.push(u32(bytes.length), bytes);
    }
  }
  return Buffer.concat(parts);
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value);
  return b;
}

function cString(buffer: Buffer): string {
  const end = buffer.indexOf(0);
  return buffer.toString('utf8', 0, end < 0 ? buffer.length : end);
}

/** NUL-separated names, as rbd_list and rbd_namespace_list fill their buffer. */
function nulList(buffer: Buffer, length: number): string[] {
  return buffer.toString('utf8', 0, length).split('\0').filter((name) => name !== '');
}

function toDate(ts: { tv_sec: bigint | number; tv_nsec: bigint | number }): Date | undefined {
  const ms = Number(ts.tv_sec) * 1000 + Math.floor(Number(ts.tv_nsec) / 1e6);
  return ms === 0 ? undefined : new Date(ms);
}

function snapshotKind(type: number): SnapshotNamespaceKind {
  switch (type) {
    case SNAP_NAMESPACE.user:
      return 'user';
    case SNAP_NAMESPACE.trash:
      return 'trash';
    case SNAP_NAMESPACE.group:
      return 'group';
    case SNAP_NAMESPACE.mirror:
      return 'mirror';
    default:
      return 'other';
  }
}

function location(ref: PoolRef): PoolRef {
  return ref.namespace === undefined ? { pool: ref.pool } : { pool: ref.pool, namespace: ref.namespace };
}

export class LibrbdStore implements BlockStore {
  readonly #lib: Librbd;
  readonly #cephConf: string | undefined;
  readonly #user: string;
  readonly #keyring: string | undefined;
  readonly #monHost: string | undefined;
  readonly #timeoutMs: number;
  readonly #transferTimeoutMs: number;
  readonly #now: () => Date;
  #cluster: Promise<Handle> | undefined;
  readonly #ioctxs = new Map<string, Promise<Handle>>();
  /** Namespaces seen to exist; forgotten when this store removes one. */
  readonly #namespaces = new Set<string>();
  /** How many keepOpen calls hold each image (by its spec), and the open handles they share. */
  readonly #kept = new Map<string, number>();
  readonly #shared = new Map<string, SharedImage>();
  #inFlight = 0;
  #idle: (() => void) | undefined;
  #closed = false;

  /** Throws LibrbdUnavailableError when koffi or the libraries cannot be loaded. */
  constructor(options: LibrbdStoreOptions = {}) {
    this.#lib = options.library ?? loadLibrbd();
    this.#cephConf = options.cephConf === undefined ? undefined : checkPath('ceph.conf path', options.cephConf);
    this.#user = validateCephxUser(options.id ?? 'admin');
    this.#keyring = options.keyring === undefined ? undefined : checkPath('keyring path', options.keyring);
    this.#monHost = options.monHost === undefined ? undefined : checkPath('monitor address list', options.monHost);
    this.#timeoutMs = checkTimeout('timeoutMs', options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    this.#transferTimeoutMs = checkTimeout('transferTimeoutMs', options.transferTimeoutMs ?? DEFAULT_TRANSFER_TIMEOUT_MS);
    this.#now = options.now ?? (() => new Date());
  }

  /** librbd's version, e.g. 1.16.0. */
  get libraryVersion(): string {
    return this.#lib.version;
  }

  // --- connection -----------------------------------------------------------------

  /** Connects now rather than at the first call; rejects with the typed error. */
  async connect(): Promise<void> {
    await this.#op(async () => {
      await this.#connection();
    });
  }

  /** Waits for calls in flight, then releases every I/O context and the connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#inFlight > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
    this.#kept.clear();
    await Promise.all([...this.#shared.keys()].map((key) => this.#evict(key)));
    const ioctxs = [...this.#ioctxs.values()];
    this.#ioctxs.clear();
    for (const io of await Promise.allSettled(ioctxs)) {
      if (io.status === 'fulfilled') await this.#lib.call('rados_ioctx_destroy', io.value);
    }
    const cluster = this.#cluster;
    this.#cluster = undefined;
    if (cluster !== undefined) {
      const handle = await cluster.catch(() => undefined);
      if (handle !== undefined) await this.#lib.call('rados_shutdown', handle);
    }
  }

  #connection(): Promise<Handle> {
    this.#cluster ??= this.#connect().catch((error: unknown) => {
      // The next call tries again: a cluster that was down may be up by then.
      this.#cluster = undefined;
      throw error;
    });
    return this.#cluster;
  }

  async #connect(): Promise<Handle> {
    const out: Handle[] = [null];
    const target = `client.${this.#user}`;
    this.#check('rados_create2', target, await this.#lib.call('rados_create2', out, 'ceph', target, 0));
    const cluster = out[0];
    try {
      const conf = this.#cephConf;
      const read = Number(await this.#lib.call('rados_conf_read_file', cluster, conf ?? null));
      // Without an explicit file, monitors and keyring may come from the options alone.
      if (read < 0 && (conf !== undefined || this.#monHost === undefined)) this.#check('rados_conf_read_file', conf ?? '(default search path)', read);
      const seconds = String(Math.ceil(this.#timeoutMs / 1000));
      const settings: [string, string | undefined][] = [
        ['keyring', this.#keyring],
        ['mon_host', this.#monHost],
        ['client_mount_timeout', seconds],
        ['rados_mon_op_timeout', seconds],
        ['rados_osd_op_timeout', seconds],
        // v2 whatever the cluster's min-compat-client: v1 cannot cross
        // namespaces and needs a protected parent snapshot.
        ['rbd_default_clone_format', '2'],
        // No admin socket: /var/run/ceph is absent or read-only in the operator's container.
        ['admin_socket', ''],
      ];
      for (const [key, value] of settings) {
        if (value !== undefined) this.#check('rados_conf_set', key, Number(this.#lib.fn('rados_conf_set')(cluster, key, value)));
      }
      this.#check('rados_connect', target, await this.#lib.call('rados_connect', cluster));
      return cluster;
    } catch (error) {
      await this.#lib.call('rados_shutdown', cluster);
      throw error;
    }
  }

  async #ioctx(where: PoolRef): Promise<Handle> {
    validatePoolRef(where);
    const key = `${where.pool}/${where.namespace ?? ''}`;
    let io = this.#ioctxs.get(key);
    if (io === undefined) {
      io = this.#openIoctx(where);
      this.#ioctxs.set(key, io);
      io.catch(() => this.#ioctxs.delete(key));
    }
    return io;
  }

  async #openIoctx(where: PoolRef): Promise<Handle> {
    const cluster = await this.#connection();
    const out: Handle[] = [null];
    this.#check('rados_ioctx_create', where.pool, await this.#lib.call('rados_ioctx_create', cluster, where.pool, out));
    this.#lib.fn('rados_ioctx_set_namespace')(out[0], where.namespace ?? '');
    return out[0];
  }

  /** A namespace that does not exist reads as empty to librados; rbd calls it missing. */
  async #existingNamespace(where: PoolRef): Promise<Handle> {
    const io = await this.#ioctx(where);
    if (where.namespace !== undefined && !this.#namespaces.has(formatPoolSpec(where))) {
      const root = await this.#ioctx({ pool: where.pool });
      const exists = [false];
      this.#check('rbd_namespace_exists', formatPoolSpec(where), await this.#lib.call('rbd_namespace_exists', root, where.namespace, exists));
      if (exists[0] !== true) throw errorFromErrno('rbd_namespace_exists', formatPoolSpec(where), ENOENT);
      this.#namespaces.add(formatPoolSpec(where));
    }
    return io;
  }

  /** Counts the call in flight so that close() can wait for it. */
  async #op<T>(body: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new RbdCommandError('the librbd connection is closed', { command: ['librbd'], exitCode: null, stderr: '' });
    this.#inFlight++;
    try {
      return await body();
    } finally {
      this.#inFlight--;
      if (this.#inFlight === 0) this.#idle?.();
    }
  }

  #check(call: string, target: string, result: unknown): number {
    const code = Number(result);
    if (code < 0) throw errorFromErrno(call, target, -code, this.#timeoutMs);
    return code;
  }

  async #c(name: FunctionName, target: string, ...args: unknown[]): Promise<number> {
    return this.#check(name, target, await this.#lib.call(name, ...args));
  }

  // --- images kept open -------------------------------------------------------------

  /**
   * Until the returned function is called, calls on these images (by name,
   * at their head) share one read-write open instead of opening and closing
   * the image each: an open is a header read and a watch, most of a call's
   * cost. This store's own removals, trash moves and renames of an image close
   * its shared open first.
   */
  keepOpen(images: readonly ImageSpec[]): () => Promise<void> {
    const keys = [...new Set(images.map((image) => formatImageSpec(image)))];
    for (const key of keys) this.#kept.set(key, (this.#kept.get(key) ?? 0) + 1);
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      const closing: Promise<void>[] = [];
      for (const key of keys) {
        const count = (this.#kept.get(key) ?? 1) - 1;
        if (count > 0) {
          this.#kept.set(key, count);
          continue;
        }
        this.#kept.delete(key);
        closing.push(this.#evict(key));
      }
      await Promise.all(closing);
    };
  }

  /** Stops sharing the image's open and closes it once its calls in flight are done. */
  async #evict(key: string): Promise<void> {
    const shared = this.#shared.get(key);
    if (shared === undefined) return;
    this.#shared.delete(key);
    shared.evicted = true;
    if (shared.users === 0) await this.#closeShared(shared);
  }

  #closeShared(shared: SharedImage): Promise<void> {
    shared.closing ??= (async () => {
      const handle = await shared.handle.catch(() => undefined);
      if (handle !== undefined) await this.#lib.call('rbd_close', handle);
    })();
    return shared.closing;
  }

  /** Closes the image's shared open (if any) before this store removes, moves or renames it. */
  async #release(image: ImageSpec): Promise<void> {
    await this.#evict(formatImageSpec(image));
  }

  async #open(io: Handle, call: FunctionName, name: string, target: string, snapshot: string | undefined): Promise<Handle> {
    const out: Handle[] = [null];
    await this.#c(call, snapshot === undefined ? target : `${target}@${snapshot}`, io, name, out, snapshot ?? null);
    return out[0];
  }

  /** A kept image's shared open: joins the one there is or opens it. */
  async #withShared<T>(ref: ImageSpec, target: string, body: (image: Handle, target: string) => Promise<T>): Promise<T> {
    let shared = this.#shared.get(target);
    if (shared === undefined) {
      const opening = this.#existingNamespace(ref).then((io) => this.#open(io, 'rbd_open', ref.image, target, undefined));
      const created: SharedImage = { handle: opening, users: 0, evicted: false };
      shared = created;
      this.#shared.set(target, created);
      opening.catch(() => {
        if (this.#shared.get(target) === created) this.#shared.delete(target);
      });
    }
    shared.users++;
    try {
      return await body(await shared.handle, target);
    } catch (error) {
      // A failed call may have been about the handle itself: the next call opens afresh.
      if (this.#shared.get(target) === shared) this.#shared.delete(target);
      shared.evicted = true;
      throw error;
    } finally {
      shared.users--;
      if (shared.users === 0 && (shared.evicted || !this.#kept.has(target))) {
        if (this.#shared.get(target) === shared) this.#shared.delete(target);
        await this.#closeShared(shared);
      }
    }
  }

  /**
   * Opens the image, runs body, closes the image whatever happened; an image
   * kept open (keepOpen) is not closed. `privately` opens a handle of its own
   * even then, for a body that changes the handle's state (rbd_snap_set).
   */
  async #withImage<T>(ref: ImageRef, mode: OpenMode, body: (image: Handle, target: string) => Promise<T>, snapshot?: string, privately = false): Promise<T> {
    return this.#op(async () => {
      const byId = isImageIdRef(ref);
      const target = byId ? `${formatPoolSpec(ref)}/id:${validateImageId(ref.imageId)}` : formatImageSpec(ref);
      if (!byId && snapshot === undefined && !privately && this.#kept.has(target)) return this.#withShared(ref, target, body);
      const io = await this.#existingNamespace(ref);
      const out: Handle[] = [null];
      const call: FunctionName = byId
        ? mode === 'read' ? 'rbd_open_by_id_read_only' : 'rbd_open_by_id'
        : mode === 'read' ? 'rbd_open_read_only' : 'rbd_open';
      const name = byId ? ref.imageId : ref.image;
      await this.#c(call, snapshot === undefined ? target : `${target}@${snapshot}`, io, name, out, snapshot ?? null);
      const image = out[0];
      try {
        return await body(image, target);
      } finally {
        await this.#lib.call('rbd_close', image);
      }
    });
  }

  /** Fills a growing buffer until the call stops saying ERANGE. */
  async #sized(call: FunctionName, target: string, initial: number, invoke: (buffer: Buffer, size: number[]) => Promise<unknown>): Promise<{ buffer: Buffer; length: number }> {
    let capacity = initial;
    for (;;) {
      const buffer = Buffer.alloc(capacity);
      const size = [capacity];
      const result = Number(await invoke(buffer, size));
      if (result === -ERANGE) {
        capacity = Math.max((size[0] ?? 0) + 1, capacity * 2);
        continue;
      }
      this.#check(call, target, result);
      return { buffer, length: size[0] ?? 0 };
    }
  }

  // --- images -------------------------------------------------------------------

  async listImages(where: PoolRef): Promise<string[]> {
    return this.#op(async () => {
      const io = await this.#existingNamespace(where);
      const { buffer, length } = await this.#sized('rbd_list', formatPoolSpec(where), 4096, (buf, size) => this.#lib.call('rbd_list', io, buf, size));
      return nulList(buffer, length);
    });
  }

  async info(image: ImageRef): Promise<ImageInfo> {
    return this.#withImage(image, 'read', (handle, target) => this.#info(handle, target, image));
  }

  async imageId(image: ImageSpec): Promise<string> {
    const target = formatImageSpec(image);
    return this.#op(async () => {
      const io = await this.#existingNamespace(image);
      const id = await this.#idByClass(io, image.image);
      if (id !== undefined) return id;
      // Missing, a format 1 image (no id object), or caps without the rbd
      // class: the open says which, with the same error as info.
      return this.#withImage(image, 'read', async (handle) => this.#readId(handle, target));
    });
  }

  /**
   * What an open reads first: the image's `rbd_id.<name>` object, through the
   * rbd object class; one round trip instead of an open (header, watch) and a
   * close. Undefined when that does not answer (a missing image, a format 1
   * image, caps without the class): the caller opens the image, whose error
   * says which.
   */
  async #idByClass(io: Handle, name: string): Promise<string | undefined> {
    const out = Buffer.alloc(256);
    const length = Number(await this.#lib.call('rados_exec', io, `rbd_id.${name}`, 'rbd', 'get_id', null, 0, out, out.length));
    if (length >= 4) {
      const size = out.readUInt32LE(0);
      if (size > 0 && 4 + size <= length) return out.toString('utf8', 4, 4 + size);
    }
    return undefined;
  }

  /**
   * An image this process holds no open of, read or written through its
   * header object with the rbd object class: no open (a dozen round trips
   * and a watch), no exclusive lock, no close. Undefined when the class path
   * does not apply or did not answer; the caller then goes through an open.
   */
  async #viaHeader<T>(image: ImageSpec, body: (io: Handle, header: string) => Promise<T | undefined>): Promise<T | undefined> {
    if (this.#kept.has(formatImageSpec(image)) || this.#shared.has(formatImageSpec(image))) return undefined;
    return this.#op(async () => {
      const io = await this.#existingNamespace(image);
      const id = await this.#idByClass(io, image.image);
      return id === undefined ? undefined : body(io, `rbd_header.${id}`);
    });
  }

  async imageSize(image: ImageSpec): Promise<number> {
    // The header's size at the head (cls_rbd get_size: snap id in; order, size out).
    const bySize = await this.#viaHeader(image, async (io, header) => {
      const input = Buffer.alloc(8);
      input.writeBigUInt64LE(CEPH_NOSNAP);
      const out = Buffer.alloc(16);
      const length = Number(await this.#lib.call('rados_exec', io, header, 'rbd', 'get_size', input, input.length, out, out.length));
      return length >= 9 ? Number(out.readBigUInt64LE(1)) : undefined;
    });
    if (bySize !== undefined) return bySize;
    return this.#withImage(image, 'read', async (handle, target) => {
      const { koffi, types } = this.#lib;
      const stat = Buffer.alloc(koffi.sizeof(types.imageInfo));
      await this.#c('rbd_stat', target, handle, stat, stat.length);
      return Number((koffi.decode(stat, types.imageInfo) as { size: bigint | number }).size);
    });
  }

  async imageParent(image: ImageSpec): Promise<ParentInfo | undefined> {
    return this.#withImage(image, 'read', (handle, target) => this.#parent(handle, target));
  }

  async #readId(handle: Handle, target: string): Promise<string> {
    const idBuffer = Buffer.alloc(64);
    await this.#c('rbd_get_id', target, handle, idBuffer, idBuffer.length);
    return cString(idBuffer);
  }

  async #info(handle: Handle, target: string, ref: ImageRef): Promise<ImageInfo> {
    const { koffi, types } = this.#lib;
    const stat = Buffer.alloc(koffi.sizeof(types.imageInfo));
    await this.#c('rbd_stat', target, handle, stat, stat.length);
    const s = koffi.decode(stat, types.imageInfo) as { size: bigint | number; obj_size: bigint | number; num_objs: bigint | number };
    const idBuffer = Buffer.alloc(64);
    await this.#c('rbd_get_id', target, handle, idBuffer, idBuffer.length);
    let name: string;
    if (isImageIdRef(ref)) {
      const got = await this.#sized('rbd_get_name', target, 256, (buf, size) => this.#lib.call('rbd_get_name', handle, buf, size));
      name = cString(got.buffer);
    } else {
      name = ref.image;
    }
    const old = [0];
    await this.#c('rbd_get_old_format', target, handle, old);
    const features = [0n];
    await this.#c('rbd_get_features', target, handle, features);
    const opFeatures = [0n];
    await this.#c('rbd_get_op_features', target, handle, opFeatures);
    const flags = [0n];
    await this.#c('rbd_get_flags', target, handle, flags);
    const times: (Date | undefined)[] = [];
    for (const call of ['rbd_get_create_timestamp', 'rbd_get_modify_timestamp', 'rbd_get_access_timestamp'] as const) {
      const ts = Buffer.alloc(koffi.sizeof(types.timespec));
      await this.#c(call, target, handle, ts);
      times.push(toDate(koffi.decode(ts, types.timespec) as { tv_sec: bigint; tv_nsec: bigint }));
    }
    const snapshots = await this.#snapshots(handle, target);
    const parent = await this.#parent(handle, target);
    return {
      name,
      id: cString(idBuffer),
      sizeBytes: Number(s.size),
      objectSizeBytes: Number(s.obj_size),
      objectCount: Number(s.num_objs),
      format: old[0] === 1 ? 1 : 2,
      snapshotCount: snapshots.length,
      features: bits(BigInt(features[0] ?? 0n), FEATURE_NAMES),
      opFeatures: bits(BigInt(opFeatures[0] ?? 0n), OP_FEATURE_NAMES),
      flags: bits(BigInt(flags[0] ?? 0n), FLAG_NAMES),
      createdAt: times[0],
      modifiedAt: times[1],
      accessedAt: times[2],
      parent,
    };
  }

  async #parent(handle: Handle, target: string): Promise<ParentInfo | undefined> {
    const { koffi, types } = this.#lib;
    const image = Buffer.alloc(koffi.sizeof(types.linkedImageSpec));
    const snap = Buffer.alloc(koffi.sizeof(types.snapSpec));
    const result = Number(await this.#lib.call('rbd_get_parent', handle, image, snap));
    if (result === -ENOENT) return undefined;
    this.#check('rbd_get_parent', target, result);
    try {
      const p = koffi.decode(image, types.linkedImageSpec) as {
        pool_name: string | null; pool_namespace: string | null; image_id: string | null; image_name: string | null; trash: boolean;
      };
      const s = koffi.decode(snap, types.snapSpec) as { name: string | null };
      const overlap = [0n];
      await this.#c('rbd_get_overlap', target, handle, overlap);
      return {
        pool: p.pool_name ?? '',
        namespace: p.pool_namespace === null || p.pool_namespace === '' ? undefined : p.pool_namespace,
        image: p.image_name ?? '',
        imageId: p.image_id ?? undefined,
        snapshot: s.name ?? '',
        inTrash: p.trash,
        overlapBytes: Number(overlap[0] ?? 0n),
      };
    } finally {
      this.#lib.fn('rbd_linked_image_spec_cleanup')(image);
      this.#lib.fn('rbd_snap_spec_cleanup')(snap);
    }
  }

  async createImage(image: ImageSpec, sizeBytes: number): Promise<void> {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) {
      throw new InvalidRequestError(`image size must be a positive whole number of bytes, got ${sizeBytes}`);
    }
    const target = formatImageSpec(image);
    await this.#op(async () => {
      await this.#create(image, target, sizeBytes);
    });
  }

  async #create(image: ImageSpec, target: string, sizeBytes: number): Promise<void> {
    await this.#release(image);
    const io = await this.#existingNamespace(image);
    await this.#withOptions(async (opts) => {
      await this.#c('rbd_create4', target, io, image.image, sizeBytes, opts);
    });
  }

  async #withOptions<T>(body: (opts: Handle) => Promise<T>): Promise<T> {
    const out: Handle[] = [null];
    this.#lib.fn('rbd_image_options_create')(out);
    try {
      return await body(out[0]);
    } finally {
      this.#lib.fn('rbd_image_options_destroy')(out[0]);
    }
  }

  async removeImage(image: ImageSpec): Promise<void> {
    const target = formatImageSpec(image);
    await this.#op(async () => {
      const io = await this.#existingNamespace(image);
      await this.#release(image);
      await this.#c('rbd_remove', target, io, image.image);
    });
  }

  // --- snapshots ------------------------------------------------------------------

  async createSnapshot(snapshot: SnapshotSpec): Promise<void> {
    const name = validateSnapshotName(snapshot.snapshot);
    const target = formatSnapshotSpec(snapshot);
    await this.#withImage(snapshot, 'write', async (handle) => {
      await this.#c('rbd_snap_create', target, handle, name);
    });
  }

  async listSnapshots(image: ImageRef, options: SnapshotListOptions = {}): Promise<SnapshotInfo[]> {
    return this.#withImage(image, 'read', async (handle, target) => {
      const all = await this.#snapshots(handle, target);
      return options.includeTrash === true ? all : all.filter((s) => s.namespace === 'user');
    });
  }

  async #snapshots(handle: Handle, target: string): Promise<SnapshotInfo[]> {
    const { koffi, types } = this.#lib;
    const entrySize = koffi.sizeof(types.snapInfo);
    let capacity = 16;
    for (;;) {
      const buffer = Buffer.alloc(entrySize * (capacity + 1));
      const max = [capacity];
      const count = Number(await this.#lib.call('rbd_snap_list', handle, buffer, max));
      if (count === -ERANGE) {
        capacity = Math.max(max[0] ?? 0, capacity * 2);
        continue;
      }
      this.#check('rbd_snap_list', target, count);
      const raw: { id: bigint; size: bigint; name: string }[] = [];
      try {
        for (let i = 0; i < count; i++) {
          const e = koffi.decode(buffer, i * entrySize, types.snapInfo) as { id: bigint | number; size: bigint | number; name: string | null };
          raw.push({ id: BigInt(e.id), size: BigInt(e.size), name: e.name ?? '' });
        }
      } finally {
        this.#lib.fn('rbd_snap_list_end')(buffer);
      }
      const out: SnapshotInfo[] = [];
      for (const s of raw) out.push(await this.#snapshotInfo(handle, target, s));
      return out;
    }
  }

  async #snapshotInfo(handle: Handle, target: string, s: { id: bigint; size: bigint; name: string }): Promise<SnapshotInfo> {
    const { koffi, types } = this.#lib;
    const kind = [0];
    await this.#c('rbd_snap_get_namespace_type', target, handle, s.id, kind);
    const namespace = snapshotKind(kind[0] ?? -1);
    const ts = Buffer.alloc(koffi.sizeof(types.timespec));
    await this.#c('rbd_snap_get_timestamp', target, handle, s.id, ts);
    let isProtected = false;
    let originalName: string | undefined;
    if (namespace === 'user') {
      const p = [0];
      await this.#c('rbd_snap_is_protected', target, handle, s.name, p);
      isProtected = p[0] === 1;
    } else if (namespace === 'trash') {
      const name = Buffer.alloc(512);
      await this.#c('rbd_snap_get_trash_namespace', target, handle, s.id, name, name.length);
      originalName = cString(name);
    }
    return {
      id: Number(s.id),
      name: s.name,
      sizeBytes: Number(s.size),
      protected: isProtected,
      createdAt: toDate(koffi.decode(ts, types.timespec) as { tv_sec: bigint; tv_nsec: bigint }) ?? new Date(0),
      namespace,
      originalName,
    };
  }

  async removeSnapshot(snapshot: SnapshotRef): Promise<void> {
    const name = validateSnapshotName(snapshot.snapshot);
    await this.#withImage(snapshot, 'write', async (handle, target) => {
      await this.#c('rbd_snap_remove', `${target}@${name}`, handle, name);
    });
  }

  async purgeSnapshots(image: ImageRef): Promise<void> {
    await this.#withImage(image, 'write', async (handle, target) => {
      for (const s of await this.#snapshots(handle, target)) {
        if (s.namespace !== 'user') continue;
        await this.#c('rbd_snap_remove_by_id', `${target}@${s.name}`, handle, s.id);
      }
    });
  }

  // --- clones -------------------------------------------------------------------------

  async clone(parent: SnapshotSpec, child: ImageSpec): Promise<void> {
    const parentTarget = formatSnapshotSpec(parent);
    const childTarget = formatImageSpec(child);
    await this.#op(async () => {
      const parentIo = await this.#existingNamespace(parent);
      const childIo = await this.#existingNamespace(child);
      await this.#release(child);
      await this.#withOptions(async (opts) => {
        this.#check('rbd_image_options_set_uint64', 'clone_format', this.#lib.fn('rbd_image_options_set_uint64')(opts, IMAGE_OPTION_CLONE_FORMAT, 2));
        await this.#c('rbd_clone3', `${parentTarget} ${childTarget}`, parentIo, parent.image, parent.snapshot, childIo, child.image, opts);
      });
    });
  }

  async flatten(image: ImageSpec, options: TransferOptions = {}): Promise<void> {
    const timeoutMs = checkTimeout('timeoutMs', options.timeoutMs ?? this.#transferTimeoutMs);
    const deadline = Date.now() + timeoutMs;
    const signal = options.signal;
    await this.#withImage(image, 'write', async (handle, target) => {
      const command = ['librbd', 'flatten', target];
      if (signal?.aborted === true) throw new RbdAbortedError(`flatten ${target} was aborted`, { command, exitCode: null, stderr: '' });
      let stop: RbdError | undefined;
      // librbd asks after every object it copies; a non-zero answer stops the
      // flatten there (the clone stays a clone, partly copied, and a later
      // flatten carries on), so the time limit and the signal hold here too.
      const progress = this.#lib.progressCallback(() => {
        if (stop === undefined && signal?.aborted === true) stop = new RbdAbortedError(`flatten ${target} was aborted`, { command, exitCode: null, stderr: '' });
        if (stop === undefined && Date.now() >= deadline) stop = new RbdTimeoutError(`flatten ${target} timed out after ${timeoutMs} ms`, { command, exitCode: null, stderr: '', timeoutMs });
        return stop === undefined ? 0 : -1;
      });
      try {
        const result = Number(await this.#lib.call('rbd_flatten_with_progress', handle, progress.pointer, null));
        if (stop !== undefined) throw stop;
        this.#check('rbd_flatten_with_progress', target, result);
      } finally {
        progress.release();
      }
    });
  }

  async renewObjectMap(image: ImageSpec): Promise<void> {
    await this.#withImage(image, 'write', async (handle, target) => {
      const features = [0n];
      await this.#c('rbd_get_features', target, handle, features);
      const has = BigInt(features[0] ?? 0n);
      if ((has & FEATURE_EXCLUSIVE_LOCK) === 0n) return;
      // Disabled first (fast-diff before the object map it rests on; one call takes both), then enabled
      // again: the new map starts empty and marked invalid, and the rebuild fills it from the objects.
      const mapped = has & (FEATURE_OBJECT_MAP | FEATURE_FAST_DIFF);
      if (mapped !== 0n) await this.#c('rbd_update_features', target, handle, mapped, 0);
      await this.#c('rbd_update_features', target, handle, FEATURE_OBJECT_MAP | FEATURE_FAST_DIFF, 1);
      const progress = this.#lib.progressCallback(() => 0);
      try {
        await this.#c('rbd_rebuild_object_map', target, handle, progress.pointer, null);
      } finally {
        progress.release();
      }
    });
  }

  // --- trash ----------------------------------------------------------------------------

  async moveToTrash(image: ImageSpec, options: TrashMoveOptions = {}): Promise<string> {
    const target = formatImageSpec(image);
    const delaySeconds = options.expiresAt === undefined ? 0 : this.#delaySeconds(options.expiresAt);
    const id = await this.imageId(image);
    await this.#op(async () => {
      const io = await this.#existingNamespace(image);
      await this.#release(image);
      await this.#c('rbd_trash_move', target, io, image.image, delaySeconds);
    });
    return id;
  }

  /** The same rule as the CLI adapter, so that both refuse the same requests. */
  #delaySeconds(expiresAt: Date): number {
    const at = expiresAt.getTime();
    if (Number.isNaN(at)) throw new InvalidRequestError('trash expiry is not a valid date');
    const lead = at - this.#now().getTime();
    if (lead < MIN_TRASH_EXPIRY_LEAD_MS) {
      throw new InvalidRequestError(
        `trash expiry ${expiresAt.toISOString()} is not at least ${MIN_TRASH_EXPIRY_LEAD_MS / 1000} s in the future; leave it out to expire at once`,
      );
    }
    // librbd adds the delay to its own clock in whole seconds; rounding up keeps
    // the deferment from ending before asked.
    return Math.ceil(lead / 1000);
  }

  async listTrash(where: PoolRef, options: TrashListOptions = {}): Promise<TrashEntry[]> {
    return this.#op(async () => {
      const io = await this.#existingNamespace(where);
      const target = formatPoolSpec(where);
      const { koffi, types } = this.#lib;
      const entrySize = koffi.sizeof(types.trashInfo);
      let capacity = 32;
      let raw: { id: string; name: string; source: number; deleted: number; expires: number }[];
      for (;;) {
        const buffer = Buffer.alloc(entrySize * capacity);
        const num = [capacity];
        const result = Number(await this.#lib.call('rbd_trash_list', io, buffer, num));
        if (result === -ERANGE) {
          capacity = Math.max(num[0] ?? 0, capacity * 2);
          continue;
        }
        this.#check('rbd_trash_list', target, result);
        const count = num[0] ?? 0;
        raw = [];
        try {
          for (let i = 0; i < count; i++) {
            const e = koffi.decode(buffer, i * entrySize, types.trashInfo) as {
              id: string | null; name: string | null; source: number; deletion_time: bigint | number; deferment_end_time: bigint | number;
            };
            raw.push({ id: e.id ?? '', name: e.name ?? '', source: e.source, deleted: Number(e.deletion_time), expires: Number(e.deferment_end_time) });
          }
        } finally {
          this.#lib.fn('rbd_trash_list_cleanup')(buffer, count);
        }
        break;
      }
      const now = this.#now().getTime();
      const entries: TrashEntry[] = [];
      for (const e of raw) {
        const source = TRASH_SOURCES[e.source] ?? 'UNKNOWN';
        if (options.all !== true && source !== 'USER' && source !== 'USER_PARENT') continue;
        entries.push({
          ...location(where),
          id: e.id,
          name: e.name,
          source,
          deletedAt: new Date(e.deleted * 1000),
          expiresAt: new Date(e.expires * 1000),
          expired: e.expires * 1000 <= now,
          parent: options.withParents === true ? await this.#trashParent(io, target, e.id) : undefined,
        });
      }
      return entries;
    });
  }

  /** Like `rbd trash ls --long`: the parent of a trashed clone, without its id (the CLI does not report it). */
  async #trashParent(io: Handle, target: string, id: string): Promise<ParentInfo | undefined> {
    const out: Handle[] = [null];
    const opened = Number(await this.#lib.call('rbd_open_by_id_read_only', io, id, out, null));
    // An entry that is being removed can vanish between listing and opening.
    if (opened === -ENOENT) return undefined;
    this.#check('rbd_open_by_id_read_only', `${target}/id:${id}`, opened);
    try {
      const parent = await this.#parent(out[0], `${target}/id:${id}`);
      return parent === undefined ? undefined : { ...parent, imageId: undefined, overlapBytes: undefined, inTrash: undefined };
    } finally {
      await this.#lib.call('rbd_close', out[0]);
    }
  }

  async restoreFromTrash(entry: ImageIdRef, options: TrashRestoreOptions = {}): Promise<void> {
    const id = validateImageId(entry.imageId);
    const name = options.name === undefined ? '' : validateImageName(options.name);
    await this.#op(async () => {
      const io = await this.#existingNamespace(entry);
      if (name !== '') await this.#release({ ...location(entry), image: name });
      await this.#c('rbd_trash_restore', `${formatPoolSpec(entry)}/${id}`, io, id, name);
    });
  }

  async removeFromTrash(entry: ImageIdRef, options: TrashRemoveOptions = {}): Promise<void> {
    const id = validateImageId(entry.imageId);
    await this.#op(async () => {
      const io = await this.#existingNamespace(entry);
      await this.#c('rbd_trash_remove', `${formatPoolSpec(entry)}/${id}`, io, id, options.force === true);
    });
  }

  // --- image metadata --------------------------------------------------------------------

  async getMeta(image: ImageSpec, key: string): Promise<string> {
    const k = validateMetaKey(key);
    return this.#withImage(image, 'read', async (handle, target) => {
      const got = await this.#sized('rbd_metadata_get', `${target} ${k}`, 1024, (buf, size) => this.#lib.call('rbd_metadata_get', handle, k, buf, size));
      return cString(got.buffer);
    });
  }

  async setMeta(image: ImageSpec, key: string, value: string): Promise<void> {
    const k = validateMetaKey(key);
    const v = validateMetaValue(value);
    // librbd's metadata_set takes the image's exclusive lock and tells its
    // watchers, which only matters for the `conf_` keys open images apply;
    // any other key is written to the header as librbd writes it (cls_rbd
    // metadata_set), without an open, a lock or a close. A key no reader
    // caches, such as a fresh clone's provenance, then costs two round trips.
    if (!k.startsWith('conf_')) {
      const written = await this.#viaHeader(image, async (io, header) => {
        const input = encodeStringMap([[k, v]]);
        const result = Number(await this.#lib.call('rados_exec', io, header, 'rbd', 'metadata_set', input, input.length, null, 0));
        return result >= 0 ? true : undefined;
      });
      if (written === true) return;
    }
    await this.#withImage(image, 'write', async (handle, target) => {
      await this.#c('rbd_metadata_set', `${target} ${k}`, handle, k, v);
    });
  }

  async removeMeta(image: ImageSpec, key: string): Promise<void> {
    const k = validateMetaKey(key);
    await this.#withImage(image, 'write', async (handle, target) => {
      await this.#c('rbd_metadata_remove', `${target} ${k}`, handle, k);
    });
  }

  async listMeta(image: ImageSpec): Promise<Record<string, string>> {
    return this.#withImage(image, 'read', async (handle, target) => {
      let capacity = 4096;
      for (;;) {
        const keys = Buffer.alloc(capacity);
        const values = Buffer.alloc(capacity);
        const keyLen = [capacity];
        const valLen = [capacity];
        const result = Number(await this.#lib.call('rbd_metadata_list', handle, '', 0, keys, keyLen, values, valLen));
        if (result === -ERANGE) {
          capacity = Math.max(keyLen[0] ?? 0, valLen[0] ?? 0, capacity * 2);
          continue;
        }
        this.#check('rbd_metadata_list', target, result);
        const k = nulList(keys, keyLen[0] ?? 0);
        // Values may be empty strings, so they are split without filtering.
        const v = values.toString('utf8', 0, valLen[0] ?? 0).split('\0');
        const out: Record<string, string> = {};
        k.forEach((key, i) => {
          out[key] = v[i] ?? '';
        });
        return out;
      }
    });
  }

  // --- usage --------------------------------------------------------------------------------

  async diskUsage(target: ImageSpec | PoolRef): Promise<DiskUsage> {
    const images = 'image' in target ? [target as ImageSpec] : (await this.listImages(target)).map((image) => ({ ...location(target), image }));
    const rows: UsageRow[] = [];
    for (const image of images) {
      try {
        rows.push(...(await this.#usage(image)));
      } catch (error) {
        // An image removed between listing and opening is no longer in use.
        if (!('image' in target) && error instanceof RbdNotFoundError) continue;
        throw error;
      }
    }
    return {
      rows,
      totalProvisionedBytes: rows.filter((r) => r.snapshot === undefined).reduce((sum, r) => sum + r.provisionedBytes, 0),
      totalUsedBytes: rows.reduce((sum, r) => sum + r.usedBytes, 0),
    };
  }

  /** As `rbd du`: per user snapshot the objects changed since the one before, then the head. */
  async #usage(image: ImageSpec): Promise<UsageRow[]> {
    // Privately: it moves its handle from snapshot to snapshot.
    return this.#withImage(image, 'read', async (handle, target) => {
      const idBuffer = Buffer.alloc(64);
      await this.#c('rbd_get_id', target, handle, idBuffer, idBuffer.length);
      const id = cString(idBuffer);
      const snaps = (await this.#snapshots(handle, target)).filter((s) => s.namespace === 'user');
      const rows: UsageRow[] = [];
      let from: string | null = null;
      for (const point of [...snaps.map((s) => s.name), null]) {
        this.#check('rbd_snap_set', `${target}@${point ?? ''}`, await this.#lib.call('rbd_snap_set', handle, point));
        const { koffi, types } = this.#lib;
        const stat = Buffer.alloc(koffi.sizeof(types.imageInfo));
        await this.#c('rbd_stat', target, handle, stat, stat.length);
        const size = Number((koffi.decode(stat, types.imageInfo) as { size: bigint | number }).size);
        let used = 0;
        const cb = this.#lib.diffCallback((_offset, length, exists) => {
          if (exists !== 0) used += length;
          return 0;
        });
        try {
          await this.#c('rbd_diff_iterate2', target, handle, from, 0, size, 0, 1, cb.pointer, null);
        } finally {
          cb.release();
        }
        rows.push({ image: image.image, id, ...(point === null ? {} : { snapshot: point }), provisionedBytes: size, usedBytes: used });
        from = point;
      }
      return rows;
    }, undefined, true);
  }

  // --- pool config and namespaces --------------------------------------------------------------

  // `rbd config pool` keeps its overrides as pool metadata under `conf_<key>`.
  async getPoolConfig(pool: string, key: string): Promise<string | undefined> {
    const p = validatePoolName(pool);
    const k = `conf_${validateConfigKey(key)}`;
    return this.#op(async () => {
      const io = await this.#ioctx({ pool: p });
      let capacity = 256;
      for (;;) {
        const buffer = Buffer.alloc(capacity);
        const size = [capacity];
        const result = Number(await this.#lib.call('rbd_pool_metadata_get', io, k, buffer, size));
        if (result === -ENOENT) return undefined;
        if (result === -ERANGE) {
          capacity = Math.max((size[0] ?? 0) + 1, capacity * 2);
          continue;
        }
        this.#check('rbd_pool_metadata_get', `${p} ${k}`, result);
        return cString(buffer);
      }
    });
  }

  async setPoolConfig(pool: string, key: string, value: string): Promise<void> {
    const p = validatePoolName(pool);
    const k = `conf_${validateConfigKey(key)}`;
    const v = validateConfigValue(value);
    await this.#op(async () => {
      await this.#c('rbd_pool_metadata_set', `${p} ${k}`, await this.#ioctx({ pool: p }), k, v);
    });
  }

  async removePoolConfig(pool: string, key: string): Promise<void> {
    const p = validatePoolName(pool);
    const k = `conf_${validateConfigKey(key)}`;
    await this.#op(async () => {
      await this.#c('rbd_pool_metadata_remove', `${p} ${k}`, await this.#ioctx({ pool: p }), k);
    });
  }

  async createNamespace(where: NamespaceRef): Promise<void> {
    const p = validatePoolName(where.pool);
    const ns = validateNamespaceName(where.namespace);
    await this.#op(async () => {
      await this.#c('rbd_namespace_create', `${p}/${ns}`, await this.#ioctx({ pool: p }), ns);
    });
  }

  async removeNamespace(where: NamespaceRef): Promise<void> {
    const p = validatePoolName(where.pool);
    const ns = validateNamespaceName(where.namespace);
    await this.#op(async () => {
      const prefix = `${formatPoolSpec({ pool: p, namespace: ns })}/`;
      await Promise.all([...this.#shared.keys()].filter((key) => key.startsWith(prefix)).map((key) => this.#evict(key)));
      await this.#c('rbd_namespace_remove', `${p}/${ns}`, await this.#ioctx({ pool: p }), ns);
    });
    // The cached I/O context would address a namespace that is gone.
    this.#namespaces.delete(formatPoolSpec({ pool: p, namespace: ns }));
    await this.#forget({ pool: p, namespace: ns });
  }

  async #forget(where: PoolRef): Promise<void> {
    const key = `${where.pool}/${where.namespace ?? ''}`;
    const io = this.#ioctxs.get(key);
    if (io === undefined) return;
    this.#ioctxs.delete(key);
    const handle = await io.catch(() => undefined);
    if (handle !== undefined) await this.#lib.call('rados_ioctx_destroy', handle);
  }

  async listNamespaces(pool: string): Promise<string[]> {
    const p = validatePoolName(pool);
    return this.#op(async () => {
      const io = await this.#ioctx({ pool: p });
      const { buffer, length } = await this.#sized('rbd_namespace_list', p, 4096, (buf, size) => this.#lib.call('rbd_namespace_list', io, buf, size));
      return nulList(buffer, length);
    });
  }

  // --- sparse reads -----------------------------------------------------------------------------

  async allocatedExtents(source: ImageSpec | SnapshotSpec): Promise<AllocationMap> {
    const snapshot = isSnapshotSpec(source) ? validateSnapshotName(source.snapshot) : undefined;
    const image: ImageSpec = { pool: source.pool, namespace: source.namespace, image: source.image };
    return this.#withImage(image, 'read', (handle, target) => this.#allocation(handle, snapshot === undefined ? target : `${target}@${snapshot}`), snapshot);
  }

  /** As `rbd diff` from creation: byte extents (not whole objects), a clone's parent included. */
  async #allocation(handle: Handle, target: string): Promise<AllocationMap> {
    const { koffi, types } = this.#lib;
    const stat = Buffer.alloc(koffi.sizeof(types.imageInfo));
    await this.#c('rbd_stat', target, handle, stat, stat.length);
    const sizeBytes = Number((koffi.decode(stat, types.imageInfo) as { size: bigint | number }).size);
    const extents: Extent[] = [];
    const cb = this.#lib.diffCallback((offset, length, exists) => {
      if (exists !== 0) extents.push({ offset: Number(offset), length });
      return 0;
    });
    try {
      await this.#c('rbd_diff_iterate2', target, handle, null, 0, sizeBytes, 1, 0, cb.pointer, null);
    } finally {
      cb.release();
    }
    return { sizeBytes, extents: normalizeExtents(extents, sizeBytes) };
  }

  async readAllocated(source: ImageSpec | SnapshotSpec, options: TransferOptions = {}): Promise<AllocatedRead> {
    const snapshot = isSnapshotSpec(source) ? validateSnapshotName(source.snapshot) : undefined;
    const spec = isSnapshotSpec(source) ? formatSnapshotSpec(source) : formatImageSpec(source);
    const image: ImageSpec = { pool: source.pool, namespace: source.namespace, image: source.image };
    const timeoutMs = checkTimeout('timeoutMs', options.timeoutMs ?? this.#transferTimeoutMs);
    const deadline = Date.now() + timeoutMs;
    const command = ['librbd', 'export-diff', spec];
    const interruption = (): RbdError | undefined => {
      if (options.signal?.aborted === true) return new RbdAbortedError(`read of ${spec} was aborted`, { command, exitCode: null, stderr: '' });
      if (Date.now() >= deadline) return new RbdTimeoutError(`read of ${spec} timed out after ${timeoutMs} ms`, { command, exitCode: null, stderr: '', timeoutMs });
      return undefined;
    };
    const early = interruption();
    if (early !== undefined) throw early;
    if (this.#closed) throw new RbdCommandError('the librbd connection is closed', { command: ['librbd'], exitCode: null, stderr: '' });
    // The image stays open (and counted in flight) until the pieces are read or left.
    this.#inFlight++;
    let handle: Handle | undefined;
    const release = async (): Promise<void> => {
      const h = handle;
      handle = undefined;
      try {
        if (h !== undefined) await this.#lib.call('rbd_close', h);
      } finally {
        this.#inFlight--;
        if (this.#inFlight === 0) this.#idle?.();
      }
    };
    let map: AllocationMap;
    try {
      const io = await this.#existingNamespace(image);
      const out: Handle[] = [null];
      await this.#c('rbd_open_read_only', spec, io, image.image, out, snapshot ?? null);
      handle = out[0];
      map = await this.#allocation(handle, spec);
    } catch (error) {
      await release();
      throw error;
    }
    const readPiece = async (piece: Extent): Promise<ExtentData> => {
      const data = Buffer.allocUnsafe(piece.length);
      const got = await this.#c('rbd_read2', spec, handle, piece.offset, piece.length, data, OP_FLAGS_STREAMING);
      if (got !== piece.length) {
        throw new RbdCommandError(`read of ${spec}: short read at ${piece.offset} (${got} of ${piece.length} bytes)`, { command: ['librbd', 'rbd_read2', spec], exitCode: null, stderr: '' });
      }
      return { offset: piece.offset, data };
    };
    async function* pieces(): AsyncGenerator<ExtentData> {
      // A few reads ahead, as rbd export-diff keeps several in flight: one at a time waits out each round trip.
      const ahead: Promise<ExtentData>[] = [];
      try {
        const todo = piecesOf(map.extents, TRANSFER_CHUNK_BYTES);
        for (;;) {
          while (ahead.length < SPARSE_READ_AHEAD) {
            const next = todo.next();
            if (next.done === true) break;
            const stop = interruption();
            if (stop !== undefined) throw stop;
            const pending = readPiece(next.value);
            pending.catch(() => {});
            ahead.push(pending);
          }
          const first = ahead.shift();
          if (first === undefined) break;
          yield await first;
        }
      } finally {
        // The image is closed only once no read uses it any more.
        await Promise.allSettled(ahead);
        await release();
      }
    }
    return { sizeBytes: map.sizeBytes, pieces: pieces() };
  }

  // --- whole-image transfers -------------------------------------------------------------------

  exportImage(source: ImageSpec | SnapshotSpec, options: TransferOptions = {}): ExportHandle {
    const snapshot = isSnapshotSpec(source) ? validateSnapshotName(source.snapshot) : undefined;
    const spec = isSnapshotSpec(source) ? formatSnapshotSpec(source) : formatImageSpec(source);
    const image: ImageSpec = { pool: source.pool, namespace: source.namespace, image: source.image };
    const timeoutMs = checkTimeout('timeoutMs', options.timeoutMs ?? this.#transferTimeoutMs);
    const deadline = Date.now() + timeoutMs;
    const signal = options.signal;
    let stopped = false;
    const interruption = (): RbdError | undefined => {
      const command = ['librbd', 'export', spec];
      if (signal?.aborted === true) return new RbdAbortedError(`export ${spec} was aborted`, { command, exitCode: null, stderr: '' });
      if (Date.now() >= deadline) return new RbdTimeoutError(`export ${spec} timed out after ${timeoutMs} ms`, { command, exitCode: null, stderr: '', timeoutMs });
      if (stopped) return new RbdAbortedError(`export ${spec} was stopped by its reader`, { command, exitCode: null, stderr: '' });
      return undefined;
    };
    // The export starts now, not at the first read, so that a missing image
    // rejects `done` even when nobody reads the stream (as with the CLI).
    const iterator = this.#readAll(image, snapshot, spec, interruption);
    const first = iterator.next();
    async function* chunks(): AsyncGenerator<Buffer> {
      let next = await first;
      while (next.done !== true) {
        yield next.value;
        next = await iterator.next();
      }
    }
    const stream = Readable.from(chunks(), { objectMode: false, highWaterMark: 2 * TRANSFER_CHUNK_BYTES });
    stream.on('error', () => {});
    first.catch((error: unknown) => stream.destroy(error as Error));
    stream.once('close', () => {
      stopped = true;
      // Closes the image when the reader stopped early or never started.
      void iterator.return(undefined).catch(() => {});
    });
    const done = new Promise<void>((resolve, reject) => {
      stream.once('end', resolve);
      stream.once('error', reject);
      stream.once('close', () => {
        if (!stream.readableEnded) reject(interruption() ?? new RbdAbortedError(`export ${spec} was stopped by its reader`, { command: ['librbd', 'export', spec], exitCode: null, stderr: '' }));
      });
    });
    done.catch(() => {});
    return { stream, done };
  }

  async *#readAll(image: ImageSpec, snapshot: string | undefined, spec: string, interruption: () => RbdError | undefined): AsyncGenerator<Buffer> {
    this.#inFlight++;
    let handle: Handle | undefined;
    try {
      const early = interruption();
      if (early !== undefined) throw early;
      if (this.#closed) throw new RbdCommandError('the librbd connection is closed', { command: ['librbd'], exitCode: null, stderr: '' });
      const io = await this.#existingNamespace(image);
      const out: Handle[] = [null];
      await this.#c('rbd_open_read_only', spec, io, image.image, out, snapshot ?? null);
      handle = out[0];
      const { koffi, types } = this.#lib;
      const stat = Buffer.alloc(koffi.sizeof(types.imageInfo));
      await this.#c('rbd_stat', spec, handle, stat, stat.length);
      const size = Number((koffi.decode(stat, types.imageInfo) as { size: bigint | number }).size);
      for (let at = 0; at < size; ) {
        const stop = interruption();
        if (stop !== undefined) throw stop;
        const length = Math.min(TRANSFER_CHUNK_BYTES, size - at);
        const buffer = Buffer.allocUnsafe(length);
        const read = await this.#c('rbd_read2', spec, handle, at, length, buffer, OP_FLAGS_STREAMING);
        if (read !== length) {
          throw new RbdCommandError(`export ${spec}: short read at ${at} (${read} of ${length} bytes)`, { command: ['librbd', 'rbd_read2', spec], exitCode: null, stderr: '' });
        }
        at += length;
        yield buffer;
      }
    } finally {
      if (handle !== undefined) await this.#lib.call('rbd_close', handle);
      this.#inFlight--;
      if (this.#inFlight === 0) this.#idle?.();
    }
  }

  async importImage(source: ImportSource, destination: ImageSpec, options: TransferOptions = {}): Promise<void> {
    const spec = formatImageSpec(destination);
    const timeoutMs = checkTimeout('timeoutMs', options.timeoutMs ?? this.#transferTimeoutMs);
    const deadline = Date.now() + timeoutMs;
    const command = ['librbd', 'import', spec];
    const interruption = (): RbdError | undefined => {
      if (options.signal?.aborted === true) return new RbdAbortedError(`import ${spec} was aborted`, { command, exitCode: null, stderr: '' });
      if (Date.now() >= deadline) return new RbdTimeoutError(`import ${spec} timed out after ${timeoutMs} ms`, { command, exitCode: null, stderr: '', timeoutMs });
      return undefined;
    };
    const early = interruption();
    if (early !== undefined) throw early;
    let knownSize: number | undefined;
    let input: AsyncIterable<unknown>;
    let closeFile: (() => Promise<void>) | undefined;
    if ('path' in source) {
      const file = await openFile(resolvePath(checkPath('import path', source.path)), 'r').catch((error: unknown) => {
        throw new RbdNotFoundError(`import ${spec}: cannot open ${source.path}: ${(error as Error).message}`, { command, exitCode: null, stderr: '', cause: error });
      });
      knownSize = (await file.stat()).size;
      input = file.createReadStream({ highWaterMark: TRANSFER_CHUNK_BYTES, autoClose: false });
      closeFile = () => file.close();
    } else {
      input = source.stream;
    }
    try {
      await this.#op(async () => {
        // An empty source still makes an image, as rbd import does; size 0 is
        // refused by createImage's rule but not by librbd.
        await this.#create(destination, spec, Math.max(knownSize ?? 0, 0));
        await this.#withImage(destination, 'write', async (handle) => {
          await this.#writeAll(handle, spec, input, knownSize, interruption);
        });
      });
    } finally {
      await closeFile?.();
    }
  }

  async writeExtents(image: ImageSpec, pieces: AsyncIterable<ExtentData>, options: TransferOptions = {}): Promise<number> {
    const spec = formatImageSpec(image);
    const timeoutMs = checkTimeout('timeoutMs', options.timeoutMs ?? this.#transferTimeoutMs);
    const deadline = Date.now() + timeoutMs;
    const command = ['librbd', 'import-diff', spec];
    const interruption = (): RbdError | undefined => {
      if (options.signal?.aborted === true) return new RbdAbortedError(`write into ${spec} was aborted`, { command, exitCode: null, stderr: '' });
      if (Date.now() >= deadline) return new RbdTimeoutError(`write into ${spec} timed out after ${timeoutMs} ms`, { command, exitCode: null, stderr: '', timeoutMs });
      return undefined;
    };
    const early = interruption();
    if (early !== undefined) throw early;
    return this.#withImage(image, 'write', async (handle) => {
      let written = 0;
      // Writes in flight, as the reads of readAllocated: one at a time waits out each round trip.
      const inFlight = new Set<Promise<void>>();
      let failed: unknown;
      const write = async (offset: number, data: Buffer): Promise<void> => {
        const got = await this.#c('rbd_write2', spec, handle, offset, data.length, data, OP_FLAGS_STREAMING);
        if (got !== data.length) {
          throw new RbdCommandError(`write into ${spec}: short write at ${offset} (${got} of ${data.length} bytes)`, { command: ['librbd', 'rbd_write2', spec], exitCode: null, stderr: '' });
        }
        written += data.length;
      };
      try {
        for await (const piece of coalesced(pieces, TRANSFER_CHUNK_BYTES)) {
          const stop = interruption();
          if (stop !== undefined) throw stop;
          if (failed !== undefined) throw failed;
          const pending = write(piece.offset, piece.data).catch((error: unknown) => {
            failed ??= error;
          });
          inFlight.add(pending);
          void pending.finally(() => inFlight.delete(pending));
          if (inFlight.size >= SPARSE_READ_AHEAD) await Promise.race(inFlight);
        }
      } finally {
        // The image is closed only once no write uses it any more.
        await Promise.allSettled([...inFlight]);
      }
      if (failed !== undefined) throw failed;
      return written;
    });
  }

  async #writeAll(handle: Handle, spec: string, input: AsyncIterable<unknown>, knownSize: number | undefined, interruption: () => RbdError | undefined): Promise<void> {
    let provisioned = knownSize ?? 0;
    let offset = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async (all: boolean): Promise<void> => {
      while (pendingBytes >= TRANSFER_CHUNK_BYTES || (all && pendingBytes > 0)) {
        const joined = Buffer.concat(pending, pendingBytes);
        const length = Math.min(TRANSFER_CHUNK_BYTES, joined.length);
        const chunk = joined.subarray(0, length);
        pending = length < joined.length ? [joined.subarray(length)] : [];
        pendingBytes = joined.length - length;
        if (offset + length > provisioned) {
          provisioned = Math.max(offset + length, provisioned + IMPORT_GROWTH_BYTES);
          await this.#c('rbd_resize2', spec, handle, provisioned, false, this.#lib.noProgress, null);
        }
        // Like rbd import, zero blocks are not written: the image stays sparse.
        if (!isZero(chunk)) {
          const written = await this.#c('rbd_write2', spec, handle, offset, length, chunk, OP_FLAGS_STREAMING);
          if (written !== length) {
            throw new RbdCommandError(`import ${spec}: short write at ${offset} (${written} of ${length} bytes)`, { command: ['librbd', 'rbd_write2', spec], exitCode: null, stderr: '' });
          }
        }
        offset += length;
      }
    };
    try {
      for await (const piece of input) {
        const stop = interruption();
        if (stop !== undefined) throw stop;
        const buffer = typeof piece === 'string' ? Buffer.from(piece) : Buffer.isBuffer(piece) ? piece : Buffer.from(piece as Uint8Array);
        pending.push(buffer);
        pendingBytes += buffer.length;
        await flush(false);
      }
    } catch (error) {
      if (error instanceof RbdError) throw error;
      throw new RbdAbortedError(
        `import ${spec} stopped because its source failed (${(error as Error).message}); the destination image may exist with partial data`,
        { command: ['librbd', 'import', spec], exitCode: null, stderr: '', cause: error },
      );
    }
    await flush(true);
    if (provisioned !== offset) await this.#c('rbd_resize2', spec, handle, offset, true, this.#lib.noProgress, null);
  }
}

const ZERO = Buffer.alloc(TRANSFER_CHUNK_BYTES);

function isZero(chunk: Buffer): boolean {
  return chunk.equals(ZERO.subarray(0, chunk.length));
}
