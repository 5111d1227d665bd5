// Applies batches to a SQLite ledger in a worker thread of its own.
//
// node:sqlite is synchronous: applied on the intake's thread, a batch holds
// the event loop for its whole transaction, and delivery, decoding, acks and
// every other request wait. In a thread of its own, with its own connection
// to the same file (WAL: the operator's other connection keeps reading and
// writing), the next batch is received and decoded while one commits, on
// another core. PostgreSQL needs none of this: its driver waits without
// holding the thread.
import { Worker } from 'node:worker_threads';
import type { ApplyOutcome, Recorded } from './apply.ts';
import { parseDbUrl } from './db.ts';

/** A module the thread loads to act inside each apply's transaction (see apply-thread-worker.ts). */
export interface ThreadHook {
  /** Module URL; its `hook(init, config)` returns the InTransaction to run. */
  module: string;
  /** Given once, at start (structured-cloneable). */
  init: unknown;
  /** Its configuration now (structured-cloneable); sent again with the next batch whenever another object is returned. */
  config: () => unknown;
}

/** What the thread sends back for one batch. */
export type Reply = { id: number; ok: true; outcomes: ApplyOutcome[] } | { id: number; ok: false; error: { name: string; message: string } };

export class ApplyThreadError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** How often the checkpoint thread copies the WAL back (a batch of 400 commits every 50–90 ms). */
const CHECKPOINT_EVERY_MS = 200;

/** Resolves on the worker's first message, unless `failure` finds an error in it; rejects if the worker fails first. */
function started<M>(worker: Worker, failure: (m: M) => string | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    const onExit = (code: number) => reject(new ApplyThreadError('ApplyThreadExited', `a ledger thread exited at start (code ${code})`));
    worker.once('message', (m: M) => {
      worker.off('error', onError);
      worker.off('exit', onExit);
      const error = failure(m);
      if (error === undefined) resolve();
      else reject(new ApplyThreadError('ApplyThreadStartError', error));
    });
    worker.once('error', onError);
    worker.once('exit', onExit);
  });
}

export class ApplyThread {
  readonly #worker: Worker;
  readonly #waiting = new Map<number, { resolve: (o: ApplyOutcome[]) => void; reject: (e: Error) => void }>();
  readonly #hook: ThreadHook | undefined;
  readonly #checkpointer: Worker | undefined;
  #sentConfig: unknown = undefined;
  #next = 0;
  #failed: Error | undefined;

  private constructor(worker: Worker, hook: ThreadHook | undefined, checkpointer: Worker | undefined) {
    this.#worker = worker;
    this.#hook = hook;
    this.#checkpointer = checkpointer;
    worker.on('message', (m: Reply) => {
      const w = this.#waiting.get(m.id);
      if (w === undefined) return;
      this.#waiting.delete(m.id);
      if (m.ok) w.resolve(m.outcomes);
      else w.reject(new ApplyThreadError(m.error.name, m.error.message));
    });
    const fail = (err: Error) => {
      this.#failed = err;
      for (const w of this.#waiting.values()) w.reject(err);
      this.#waiting.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new ApplyThreadError('ApplyThreadExited', `the ledger's apply thread exited (code ${code})`)));
  }

  /**
   * Starts the thread on the ledger at `url` and waits until its connection
   * is open. For a SQLite file, a second thread checkpoints its WAL.
   */
  static async start(url: string, hook?: ThreadHook, options: { checkpointEveryMs?: number } = {}): Promise<ApplyThread> {
    const target = parseDbUrl(url);
    const file = target.engine === 'sqlite' && target.path !== ':memory:' ? target.path : undefined;
    const worker = new Worker(new URL('./apply-thread-worker.ts', import.meta.url), {
      workerData: { url, hook: hook === undefined ? undefined : { module: hook.module, init: hook.init }, checkpointsElsewhere: file !== undefined },
    });
    try {
      await started(worker, (m: { ready: true } | { ready: false; error: string }) => (m.ready ? undefined : m.error));
    } catch (err) {
      await worker.terminate();
      throw err;
    }
    let checkpointer: Worker | undefined;
    if (file !== undefined) {
      checkpointer = new Worker(new URL('./checkpoint-thread-worker.ts', import.meta.url), { workerData: { path: file, everyMs: options.checkpointEveryMs ?? CHECKPOINT_EVERY_MS } });
      try {
        await started(checkpointer, () => undefined);
      } catch (err) {
        await Promise.all([worker.terminate(), checkpointer.terminate()]);
        throw err;
      }
    }
    return new ApplyThread(worker, hook, checkpointer);
  }

  /** The thread has ended (an error it did not catch, or its exit): every apply is refused. */
  get ended(): boolean {
    return this.#failed !== undefined;
  }

  /** Applies one batch in one transaction, as applyBatch does; outcomes in input order. */
  apply(batch: readonly Recorded[]): Promise<ApplyOutcome[]> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    const id = this.#next++;
    const config = this.#hook?.config();
    const changed = this.#hook !== undefined && config !== this.#sentConfig;
    if (changed) this.#sentConfig = config;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      this.#worker.postMessage({ id, batch, ...(changed ? { config } : {}) });
    });
  }

  async close(): Promise<void> {
    this.#worker.removeAllListeners('exit');
    await this.#worker.terminate();
    const c = this.#checkpointer;
    if (c === undefined) return;
    // A last checkpoint, then its connection closes.
    await new Promise<void>((resolve) => {
      c.once('message', () => resolve());
      c.once('exit', () => resolve());
      c.postMessage('stop');
    });
    await c.terminate();
  }
}

/** How a ledger's batches are applied: in a thread for a SQLite file, on this thread otherwise. */
export interface LedgerApplier {
  /** Undefined: apply on this thread (applyBatch with the caller's InTransaction). */
  readonly apply: ((batch: readonly Recorded[]) => Promise<ApplyOutcome[]>) | undefined;
  close(): Promise<void>;
}

export async function ledgerApplier(ledger: { engine: string; file?: string | undefined }, hook?: ThreadHook): Promise<LedgerApplier> {
  if (ledger.engine !== 'sqlite' || ledger.file === undefined) return { apply: undefined, close: async () => undefined };
  const url = `sqlite:${ledger.file}`;
  let thread = await ApplyThread.start(url, hook);
  let replacing: Promise<ApplyThread> | undefined;
  // A thread that ended fails the batch it held (which the intake retries and,
  // should that batch end it every time, dead-letters); the batches after it
  // get a new thread instead of the same refusal.
  const current = async (): Promise<ApplyThread> => {
    if (!thread.ended) return thread;
    replacing ??= (async () => {
      await thread.close();
      thread = await ApplyThread.start(url, hook);
      return thread;
    })().finally(() => {
      replacing = undefined;
    });
    return replacing;
  };
  return {
    apply: async (batch) => (await current()).apply(batch),
    close: async () => {
      await replacing?.catch(() => undefined);
      await thread.close();
    },
  };
}
