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
