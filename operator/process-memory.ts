// How the operator's process is started, for its memory. Every launcher
// passes these: bin/quarantine (the flags for `run` and `ingest`, the commands
// that apply notifications for as long as they run; a one-shot answer such as
// `trace log` is better served by Node's default young generation), and the
// image's ENTRYPOINT and ENV (the Dockerfile and scripts/build-image-tar.sh);
// test/unit/process-memory.test.ts keeps them equal, and the streamed apply
// benchmark starts its process so.
//
// Measured through a streamed apply into SQLite (bench/scenarios/apply-stream.ts,
// 40,000 notifications): with Node's defaults V8 kept a heap of 250 MB for a
// live set of 15–30 MB, because each batch's short-lived objects fill a large
// young generation and are promoted across the transaction's awaits; 8 MB
// semi-spaces keep it near 60 MB. glibc gives each thread that allocates an
// arena of its own (V8's helper threads, libuv's pool, 128 threads under
// `quarantine run`), and memory freed in one stays there: two arenas took the
// native part from 90 to about 30 MB. Since derivation runs in passes over
// about a second of batches (operator/ledger/derive-pending.ts), a pass's
// short-lived objects let V8 raise its old generation's limit far above what
// stays live: through a streamed apply of 100,000 notifications the peak RSS
// went from about 250 to 306 MB. --heap-growing-percent=30 sets the next
// limit at 1.3 times what a full collection leaves (V8 otherwise picks a larger factor of its own):
// 222 MB, at about the same rate (5,717/s against 6,127/s in that run; 20 %
// gave 204 MB at 5,315/s, 50 % 228 MB at 5,903/s).

/** Node options of the operator's process (V8 flags; none limits the heap, so no burst can end the process). */
export const NODE_MEMORY_FLAGS: readonly string[] = ['--max-semi-space-size=8', '--heap-growing-percent=30'];

/** Environment of the operator's process, read by glibc when the process starts (a value already set is kept). */
export const MEMORY_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };

// Node's compile cache, filled before the process starts (scripts/fill-compile-cache.ts:
// by scripts/bootstrap.sh for bin/quarantine, at build for the image) and named in
// the environment, so that even the entry module comes from it. A module that is
// not in the cache is type-stripped as it loads, and the stripper, a WebAssembly
// module, then stays in the process: through an ingest of 300,000 notifications
// the operator peaked at 258 MiB with it and 244 MiB without (bench/notes/run-rss.md).
// V8 keys the cache by its flags and Node by the user id: a cache filled under
// other flags or by another user is not read, and an unwritable, empty or
// unread cache only costs that memory and the compile time.

/** The Node flags each launcher may start the operator with: `run` and `ingest` (NODE_MEMORY_FLAGS), every other command (none). V8 keys its cache by flags. */
export const LAUNCH_FLAG_SETS: readonly (readonly string[])[] = [NODE_MEMORY_FLAGS, []];

/** bin/quarantine's compile cache, beside the code it caches and owned by whoever installed it (not the shared temporary directory). */
export const defaultCompileCacheDir = (root: string): string => `${root.replace(/\/$/, '')}/node_modules/.cache/quarantine-operator/node-compile-cache`;

/** The image's compile cache, filled when it is built. */
export const IMAGE_COMPILE_CACHE_DIR = '/app/.node-compile-cache';
