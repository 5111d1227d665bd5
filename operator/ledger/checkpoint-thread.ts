// Checkpoints a SQLite ledger's WAL from a thread of its own, so that the
// operator's commits do not.
//
// A checkpoint copies the WAL's pages into the database file and syncs it.
// Done by the committing connection (wal_autocheckpoint), one apply commit in
// nine took 150–200 ms instead of 8–14 (40,000 workload notifications in
// batches of 400: 11 checkpoints, 1.8 of the 2.5 s the commits took), and
// node:sqlite is synchronous, so intake waited. Skipping checkpoints does not
// help: the WAL grows and every page read slows. While the thread runs, the
// operator's connection keeps a larger wal_autocheckpoint, as a bound should
// the thread fall behind; it gets its own back if the thread ends.
import { Worker } from 'node:worker_threads';
import { sql } from 'kysely';
import type { LedgerDb } from './db.ts';
import type { Logger } from '../log.ts';
import { ledgerPageSize, pragmaNumber, walPages } from './sqlite-driver.ts';

/** 250 MiB of WAL: reached only if the checkpoint thread falls behind. */
const BOUND_BYTES = 250 * 2 ** 20;
const EVERY_MS = 200;

/** The operator's onEnd: the end goes to its log. */
export const logEnd = (logger: Pick<Logger, 'error'>) => (err: Error): void =>
  logger.error({ err: err.message }, 'the ledger\'s checkpoint thread ended; commits checkpoint the WAL themselves again');

export interface Checkpointer {
  stop(): Promise<void>;
}

/** Starts the thread for a SQLite file; for PostgreSQL or `:memory:`, does nothing. */
export async function startCheckpointer(
  ledger: Pick<LedgerDb, 'engine' | 'file' | 'db'>,
  /** `worker`: another thread body, for tests. */
  options: { everyMs?: number; onEnd?: (err: Error) => void; worker?: URL } = {},
): Promise<Checkpointer> {
  if (ledger.engine !== 'sqlite' || ledger.file === undefined) return { stop: async () => undefined };
  const worker = new Worker(options.worker ?? new URL('./checkpoint-thread-worker.js', import.meta.url), { workerData: { path: ledger.file, everyMs: options.everyMs ?? EVERY_MS } });
  await new Promise<void>((resolve, reject) => {
    const failed = (err: Error) => reject(err);
    const exited = (code: number) => reject(new Error(`the ledger's checkpoint thread exited at start (code ${code})`));
    worker.once('message', () => {
      // Only these: the worker's own listeners keep its port running.
      worker.off('error', failed);
      worker.off('exit', exited);
      resolve();
    });
    worker.once('error', failed);
    worker.once('exit', exited);
  });
  // The connection's own threshold is given back as it was (sqlite-driver.ts set it in the ledger's pages).
  const ownPages = await pragmaNumber(ledger.db, 'wal_autocheckpoint');
  const own = () => sql.raw(`PRAGMA wal_autocheckpoint = ${ownPages}`).execute(ledger.db);
  await sql.raw(`PRAGMA wal_autocheckpoint = ${walPages(BOUND_BYTES, await ledgerPageSize(ledger.db))}`).execute(ledger.db);
  let stopping = false;
  let gone = false;
  const ended = (err: Error) => {
    if (stopping) return;
    options.onEnd?.(err);
    void own().catch(() => undefined);
  };
  worker.on('error', ended);
  worker.on('exit', (code) => {
    gone = true;
    ended(new Error(`the ledger's checkpoint thread exited (code ${code})`));
  });
  return {
    async stop() {
      stopping = true;
      // A last checkpoint, then its connection closes; a thread already gone has nothing to answer.
      if (!gone) {
        await new Promise<void>((resolve) => {
          worker.once('message', () => resolve());
          worker.once('exit', () => resolve());
          worker.postMessage('stop');
        });
      }
      await worker.terminate();
      await own().catch(() => undefined);
    },
  };
}
