// librbd calls run on libuv's thread pool: koffi's async calls are N-API
// async work. The pool has 4 threads unless UV_THREADPOOL_SIZE says otherwise,
// and a librbd call holds its thread while it waits on the cluster (an image
// open is several round trips), so with 4 threads a burst of deletions queues
// its snapshots behind other captures' opens and closes while the cloud
// removes the disks. The size is read once, when the pool first starts, so
// the process entry point must reserve it before anything uses the pool.

/**
 * Threads for calls that wait on the network, not on a core: one for each
 * capture and adoption that may run at once, and the rest of the process's
 * file and DNS work besides.
 */
export const LIBRBD_WORKER_THREADS = 128;

/**
 * With librbd, a capture costs the cluster's time and one waiting thread, so
 * a burst of deletions is captured all at once: its snapshots are taken
 * before the cloud's deletes come, instead of the later ones queueing behind
 * the earlier captures' clones. The CLI keeps the reconcilers' defaults
 * (16 and 4), which bound its `rbd` processes.
 */
export const LIBRBD_CAPTURE_CONCURRENCY = 64;
export const LIBRBD_ADOPT_CONCURRENCY = 32;

/**
 * Sets UV_THREADPOOL_SIZE for this process unless the environment already
 * chose a size (an operator's explicit setting wins). Returns the size in
 * force once the pool starts.
 */
export function reserveWorkerThreads(env: NodeJS.ProcessEnv = process.env): number {
  const chosen = Number(env['UV_THREADPOOL_SIZE']);
  if (Number.isSafeInteger(chosen) && chosen > 0) return chosen;
  env['UV_THREADPOOL_SIZE'] = String(LIBRBD_WORKER_THREADS);
  return LIBRBD_WORKER_THREADS;
}
