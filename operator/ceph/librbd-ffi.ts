// The C API of librados.so.2 / librbd.so.1 (Ceph >= 16, Debian's librbd1),
// bound through koffi. Only declarations and memory layouts live here; the
// BlockStore semantics are in ./librbd.ts. Every call that can block on the
// network is bound for `.async`, which runs it on a worker thread.
//
// Struct layouts follow rbd/librbd.h of Pacific 16.2 on LP64 (x86_64, arm64).

import { createRequire } from 'node:module';
import type * as KoffiModule from 'koffi';

type Koffi = typeof KoffiModule;
type IKoffiCType = KoffiModule.TypeObject;

/** An opaque pointer as koffi hands it back (rados_t, rados_ioctx_t, rbd_image_t, rbd_image_options_t). */
export type Handle = unknown;

/** A bound C function: synchronous call, plus `.async(...args, callback)` on a worker thread. */
interface CFunction {
  (...args: unknown[]): unknown;
  async(...args: unknown[]): void;
}

export interface LibrbdTypes {
  readonly trashInfo: IKoffiCType;
  readonly snapInfo: IKoffiCType;
  readonly linkedImageSpec: IKoffiCType;
  readonly snapSpec: IKoffiCType;
  readonly imageInfo: IKoffiCType;
  readonly timespec: IKoffiCType;
}

export const SNAP_NAMESPACE = { user: 0, group: 1, trash: 2, mirror: 3 } as const;
export const TRASH_SOURCES = ['USER', 'MIRRORING', 'MIGRATION', 'REMOVING', 'USER_PARENT'] as const;
export const IMAGE_OPTION_CLONE_FORMAT = 12;
export const FEATURE_NAMES: readonly (readonly [bigint, string])[] = [
  [1n << 0n, 'layering'],
  [1n << 1n, 'striping'],
  [1n << 2n, 'exclusive-lock'],
  [1n << 3n, 'object-map'],
  [1n << 4n, 'fast-diff'],
  [1n << 5n, 'deep-flatten'],
  [1n << 6n, 'journaling'],
  [1n << 7n, 'data-pool'],
  [1n << 8n, 'operations'],
  [1n << 9n, 'migrating'],
  [1n << 10n, 'non-primary'],
  [1n << 11n, 'dirty-cache'],
];
export const OP_FEATURE_NAMES: readonly (readonly [bigint, string])[] = [
  [1n << 0n, 'clone-parent'],
  [1n << 1n, 'clone-child'],
  [1n << 2n, 'group'],
  [1n << 3n, 'snap-trash'],
];
export const FLAG_NAMES: readonly (readonly [bigint, string])[] = [
  [1n << 0n, 'object map invalid'],
  [1n << 1n, 'fast diff invalid'],
];
/** LIBRADOS_OP_FLAG_FADVISE_SEQUENTIAL | LIBRADOS_OP_FLAG_FADVISE_NOCACHE: whole-image copies. */
export const OP_FLAGS_STREAMING = 0x8 | 0x40;

const FUNCTIONS = {
  rados_create2: 'int rados_create2(_Out_ rados_t *cluster, const char *clustername, const char *name, uint64_t flags)',
  rados_conf_read_file: 'int rados_conf_read_file(rados_t cluster, const char *path)',
  rados_conf_set: 'int rados_conf_set(rados_t cluster, const char *option, const char *value)',
  rados_connect: 'int rados_connect(rados_t cluster)',
  rados_shutdown: 'void rados_shutdown(rados_t cluster)',
  rados_ioctx_create: 'int rados_ioctx_create(rados_t cluster, const char *pool, _Out_ rados_ioctx_t *io)',
  rados_ioctx_destroy: 'void rados_ioctx_destroy(rados_ioctx_t io)',
  rados_ioctx_set_namespace: 'void rados_ioctx_set_namespace(rados_ioctx_t io, const char *nspace)',
  rados_exec: 'int rados_exec(rados_ioctx_t io, const char *oid, const char *cls, const char *method, const void *in_buf, size_t in_len, void *buf, size_t out_len)',

  rbd_version: 'void rbd_version(_Out_ int *major, _Out_ int *minor, _Out_ int *extra)',
  rbd_list: 'int rbd_list(rados_ioctx_t io, void *names, _Inout_ size_t *size)',
  rbd_image_options_create: 'void rbd_image_options_create(_Out_ rbd_image_options_t *opts)',
  rbd_image_options_destroy: 'void rbd_image_options_destroy(rbd_image_options_t opts)',
  rbd_image_options_set_uint64: 'int rbd_image_options_set_uint64(rbd_image_options_t opts, int optname, uint64_t optval)',
  rbd_create4: 'int rbd_create4(rados_ioctx_t io, const char *name, uint64_t size, rbd_image_options_t opts)',
  rbd_clone3: 'int rbd_clone3(rados_ioctx_t p_ioctx, const char *p_name, const char *p_snapname, rados_ioctx_t c_ioctx, const char *c_name, rbd_image_options_t c_opts)',
  rbd_remove: 'int rbd_remove(rados_ioctx_t io, const char *name)',
  rbd_trash_move: 'int rbd_trash_move(rados_ioctx_t io, const char *name, uint64_t delay)',
  rbd_trash_list: 'int rbd_trash_list(rados_ioctx_t io, void *entries, _Inout_ size_t *num_entries)',
  rbd_trash_list_cleanup: 'void rbd_trash_list_cleanup(void *entries, size_t num_entries)',
  rbd_trash_remove: 'int rbd_trash_remove(rados_ioctx_t io, const char *id, bool force)',
  rbd_trash_restore: 'int rbd_trash_restore(rados_ioctx_t io, const char *id, const char *name)',

  rbd_open: 'int rbd_open(rados_ioctx_t io, const char *name, _Out_ rbd_image_t *image, const char *snap_name)',
  rbd_open_by_id: 'int rbd_open_by_id(rados_ioctx_t io, const char *id, _Out_ rbd_image_t *image, const char *snap_name)',
  rbd_open_read_only: 'int rbd_open_read_only(rados_ioctx_t io, const char *name, _Out_ rbd_image_t *image, const char *snap_name)',
  rbd_open_by_id_read_only: 'int rbd_open_by_id_read_only(rados_ioctx_t io, const char *id, _Out_ rbd_image_t *image, const char *snap_name)',
  rbd_close: 'int rbd_close(rbd_image_t image)',
  rbd_resize2: 'int rbd_resize2(rbd_image_t image, uint64_t size, bool allow_shrink, librbd_progress_fn_t *cb, void *cbdata)',
  rbd_stat: 'int rbd_stat(rbd_image_t image, void *info, size_t infosize)',
  rbd_get_old_format: 'int rbd_get_old_format(rbd_image_t image, _Out_ uint8_t *old)',
  rbd_get_features: 'int rbd_get_features(rbd_image_t image, _Out_ uint64_t *features)',
  rbd_get_op_features: 'int rbd_get_op_features(rbd_image_t image, _Out_ uint64_t *op_features)',
  rbd_get_flags: 'int rbd_get_flags(rbd_image_t image, _Out_ uint64_t *flags)',
  rbd_get_create_timestamp: 'int rbd_get_create_timestamp(rbd_image_t image, void *timestamp)',
  rbd_get_access_timestamp: 'int rbd_get_access_timestamp(rbd_image_t image, void *timestamp)',
  rbd_get_modify_timestamp: 'int rbd_get_modify_timestamp(rbd_image_t image, void *timestamp)',
  rbd_get_overlap: 'int rbd_get_overlap(rbd_image_t image, _Out_ uint64_t *overlap)',
  rbd_get_name: 'int rbd_get_name(rbd_image_t image, void *name, _Inout_ size_t *name_len)',
  rbd_get_id: 'int rbd_get_id(rbd_image_t image, void *id, size_t id_len)',
  rbd_get_parent: 'int rbd_get_parent(rbd_image_t image, void *parent_image, void *parent_snap)',
  rbd_linked_image_spec_cleanup: 'void rbd_linked_image_spec_cleanup(void *image)',
  rbd_snap_spec_cleanup: 'void rbd_snap_spec_cleanup(void *snap)',

  rbd_snap_list: 'int rbd_snap_list(rbd_image_t image, void *snaps, _Inout_ int *max_snaps)',
  rbd_snap_list_end: 'void rbd_snap_list_end(void *snaps)',
  rbd_snap_create: 'int rbd_snap_create(rbd_image_t image, const char *snapname)',
  rbd_snap_remove: 'int rbd_snap_remove(rbd_image_t image, const char *snapname)',
  rbd_snap_remove_by_id: 'int rbd_snap_remove_by_id(rbd_image_t image, uint64_t snap_id)',
  rbd_snap_is_protected: 'int rbd_snap_is_protected(rbd_image_t image, const char *snap_name, _Out_ int *is_protected)',
  rbd_snap_get_timestamp: 'int rbd_snap_get_timestamp(rbd_image_t image, uint64_t snap_id, void *timestamp)',
  rbd_snap_get_namespace_type: 'int rbd_snap_get_namespace_type(rbd_image_t image, uint64_t snap_id, _Out_ int *namespace_type)',
  rbd_snap_get_trash_namespace: 'int rbd_snap_get_trash_namespace(rbd_image_t image, uint64_t snap_id, void *original_name, size_t max_length)',
  rbd_snap_set: 'int rbd_snap_set(rbd_image_t image, const char *snapname)',
  rbd_flatten: 'int rbd_flatten(rbd_image_t image)',
  rbd_flatten_with_progress: 'int rbd_flatten_with_progress(rbd_image_t image, librbd_progress_fn_t *cb, void *cbdata)',
  rbd_update_features: 'int rbd_update_features(rbd_image_t image, uint64_t features, uint8_t enabled)',
  rbd_rebuild_object_map: 'int rbd_rebuild_object_map(rbd_image_t image, librbd_progress_fn_t *cb, void *cbdata)',

  rbd_read2: 'int64_t rbd_read2(rbd_image_t image, uint64_t ofs, size_t len, void *buf, int op_flags)',
  rbd_write2: 'int64_t rbd_write2(rbd_image_t image, uint64_t ofs, size_t len, const void *buf, int op_flags)',
  rbd_diff_iterate2: 'int rbd_diff_iterate2(rbd_image_t image, const char *fromsnapname, uint64_t ofs, uint64_t len, uint8_t include_parent, uint8_t whole_object, rbd_diff_cb *cb, void *arg)',

  rbd_metadata_get: 'int rbd_metadata_get(rbd_image_t image, const char *key, void *value, _Inout_ size_t *val_len)',
  rbd_metadata_set: 'int rbd_metadata_set(rbd_image_t image, const char *key, const char *value)',
  rbd_metadata_remove: 'int rbd_metadata_remove(rbd_image_t image, const char *key)',
  rbd_metadata_list: 'int rbd_metadata_list(rbd_image_t image, const char *start, uint64_t max, void *keys, _Inout_ size_t *key_len, void *values, _Inout_ size_t *vals_len)',

  rbd_namespace_create: 'int rbd_namespace_create(rados_ioctx_t io, const char *namespace_name)',
  rbd_namespace_remove: 'int rbd_namespace_remove(rados_ioctx_t io, const char *namespace_name)',
  rbd_namespace_list: 'int rbd_namespace_list(rados_ioctx_t io, void *namespace_names, _Inout_ size_t *size)',
  rbd_namespace_exists: 'int rbd_namespace_exists(rados_ioctx_t io, const char *namespace_name, _Out_ bool *exists)',

  rbd_pool_metadata_get: 'int rbd_pool_metadata_get(rados_ioctx_t io, const char *key, void *value, _Inout_ size_t *val_len)',
  rbd_pool_metadata_set: 'int rbd_pool_metadata_set(rados_ioctx_t io, const char *key, const char *value)',
  rbd_pool_metadata_remove: 'int rbd_pool_metadata_remove(rados_ioctx_t io, const char *key)',
} as const;

export type FunctionName = keyof typeof FUNCTIONS;

export interface Librbd {
  readonly koffi: Koffi;
  readonly types: LibrbdTypes;
  readonly version: string;
  /** A progress function that ignores progress, for calls that demand one. */
  readonly noProgress: unknown;
  /** The C function, for a synchronous call (only for calls that never touch the network). */
  fn(name: FunctionName): CFunction;
  /** Runs the C function on a worker thread. */
  call(name: FunctionName, ...args: unknown[]): Promise<unknown>;
  /** A JS function as an `rbd_diff_cb` pointer; unregister it after the call. */
  diffCallback(handler: (offset: bigint, length: number, exists: number) => number): { pointer: unknown; release(): void };
  /** A JS function as a `librbd_progress_fn_t` pointer (non-zero return aborts the call); unregister it after the call. */
  progressCallback(handler: (done: bigint, total: bigint) => number): { pointer: unknown; release(): void };
  /** Calls made through `call` in this process so far, per C function: what a capture costs, in calls. */
  callCounts(): Readonly<Partial<Record<FunctionName, number>>>;
  /** Milliseconds spent in those calls so far, per C function (waiting for a thread included). */
  callTimes(): Readonly<Partial<Record<FunctionName, number>>>;
  /** Calls handed to a worker thread and not yet returned, per C function, and calls waiting for a slot. */
  callsInFlight(): { readonly running: Readonly<Partial<Record<FunctionName, number>>>; readonly waiting: number };
}

export class LibrbdUnavailableError extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'LibrbdUnavailableError';
  }
}

/**
 * koffi throws once more than max_async_calls (256) calls are running or
 * queued in the process; a burst of captures must wait in line instead.
 */
export const MAX_ASYNC_CALLS = 128;
let running = 0;
const waiting: (() => void)[] = [];
const active: Partial<Record<FunctionName, number>> = {};

async function limit<T>(body: () => Promise<T>): Promise<T> {
  if (running >= MAX_ASYNC_CALLS) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await body();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

let loaded: Librbd | undefined;
let failure: LibrbdUnavailableError | undefined;

/**
 * Loads koffi, librados and librbd once per process. Throws
 * LibrbdUnavailableError (koffi missing, library missing, too old) so that
 * the caller can fall back to the CLI and say so.
 */
export function loadLibrbd(paths: { readonly librados?: string; readonly librbd?: string } = {}): Librbd {
  if (loaded !== undefined) return loaded;
  if (failure !== undefined) throw failure;
  try {
    loaded = bind(paths.librados ?? 'librados.so.2', paths.librbd ?? 'librbd.so.1');
    return loaded;
  } catch (error) {
    failure = error instanceof LibrbdUnavailableError ? error : new LibrbdUnavailableError(`librbd cannot be loaded: ${(error as Error).message}`, error);
    throw failure;
  }
}

function bind(libradosPath: string, librbdPath: string): Librbd {
  const require = createRequire(import.meta.url);
  let koffi: Koffi;
  try {
    koffi = require('koffi') as Koffi;
  } catch (error) {
    throw new LibrbdUnavailableError(`the koffi FFI module cannot be loaded: ${(error as Error).message}`, error);
  }
  const rados = koffi.load(libradosPath);
  const rbd = koffi.load(librbdPath);
  for (const name of ['rados_t', 'rados_ioctx_t', 'rbd_image_t', 'rbd_image_options_t']) {
    koffi.pointer(name, koffi.opaque());
  }
  koffi.proto('int rbd_diff_cb(uint64_t offset, size_t length, int exists, void *arg)');
  const progressType = koffi.proto('int librbd_progress_fn_t(uint64_t offset, uint64_t total, void *arg)');
  // librbd calls a progress function unconditionally: NULL would crash.
  const noProgress = koffi.register(() => 0, koffi.pointer(progressType));
  const types: LibrbdTypes = {
    trashInfo: koffi.struct('rbd_trash_image_info_t', {
      id: 'char *', name: 'char *', source: 'int', deletion_time: 'int64_t', deferment_end_time: 'int64_t',
    }),
    snapInfo: koffi.struct('rbd_snap_info_t', { id: 'uint64_t', size: 'uint64_t', name: 'char *' }),
    linkedImageSpec: koffi.struct('rbd_linked_image_spec_t', {
      pool_id: 'int64_t', pool_name: 'char *', pool_namespace: 'char *', image_id: 'char *', image_name: 'char *', trash: 'bool',
    }),
    snapSpec: koffi.struct('rbd_snap_spec_t', { id: 'uint64_t', namespace_type: 'int', name: 'char *' }),
    imageInfo: koffi.struct('rbd_image_info_t', {
      size: 'uint64_t', obj_size: 'uint64_t', num_objs: 'uint64_t', order: 'int',
      block_name_prefix: koffi.array('char', 24), parent_pool: 'int64_t', parent_name: koffi.array('char', 96),
    }),
    timespec: koffi.struct('qop_timespec', { tv_sec: 'int64_t', tv_nsec: 'int64_t' }),
  };
  const counts: Partial<Record<FunctionName, number>> = {};
  const times: Partial<Record<FunctionName, number>> = {};
  const functions = new Map<FunctionName, CFunction>();
  for (const [name, signature] of Object.entries(FUNCTIONS) as [FunctionName, string][]) {
    const lib = name.startsWith('rados_') ? rados : rbd;
    functions.set(name, lib.func(signature) as CFunction);
  }
  const fn = (name: FunctionName): CFunction => {
    const f = functions.get(name);
    if (f === undefined) throw new Error(`librbd function ${name} is not bound`);
    return f;
  };
  const major = [0];
  const minor = [0];
  const extra = [0];
  fn('rbd_version')(major, minor, extra);
  const version = `${major[0]}.${minor[0]}.${extra[0]}`;
  // rbd_get_parent, namespaces and clone format options arrived with 1.16 (Pacific).
  if ((major[0] ?? 0) < 1 || ((major[0] ?? 0) === 1 && (minor[0] ?? 0) < 16)) {
    throw new LibrbdUnavailableError(`librbd ${version} is too old (1.16, Ceph Pacific, or newer is needed)`);
  }
  return {
    koffi,
    types,
    version,
    noProgress,
    fn,
    call: (name, ...args) => {
      counts[name] = (counts[name] ?? 0) + 1;
      const started = performance.now();
      return limit(
        () =>
          new Promise((resolve, reject) => {
            active[name] = (active[name] ?? 0) + 1;
            fn(name).async(...args, (error: unknown, result: unknown) => {
              active[name] = (active[name] ?? 1) - 1;
              times[name] = (times[name] ?? 0) + (performance.now() - started);
              if (error !== null && error !== undefined) reject(error instanceof Error ? error : new Error(String(error)));
              else resolve(result);
            });
          }),
      );
    },
    callCounts: () => ({ ...counts }),
    callTimes: () => ({ ...times }),
    callsInFlight: () => ({ running: Object.fromEntries(Object.entries(active).filter(([, n]) => n > 0)), waiting: waiting.length }),
    diffCallback(handler) {
      const pointer = koffi.register(
        (offset: bigint | number, length: bigint | number, exists: number): number => handler(BigInt(offset), Number(length), exists),
        koffi.pointer('rbd_diff_cb'),
      );
      return { pointer, release: () => { koffi.unregister(pointer); } };
    },
    progressCallback(handler) {
      const pointer = koffi.register(
        (done: bigint | number, total: bigint | number): number => handler(BigInt(done), BigInt(total)),
        koffi.pointer(progressType),
      );
      return { pointer, release: () => { koffi.unregister(pointer); } };
    },
  };
}
