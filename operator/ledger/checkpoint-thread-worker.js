// @ts-check
// The checkpoint thread (checkpoint-thread.ts): its own connection to the
// SQLite ledger, a PASSIVE checkpoint every few hundred milliseconds until told
// to stop, then a last one. PASSIVE never waits for a reader or the writer: it
// copies what it can, and the writer starts the WAL over once all is copied.
//
// JavaScript, not TypeScript: a thread that loads a .ts file starts Node's
// type stripper in its own isolate, 11 MiB of the 30 MiB this thread added to
// the operator's RSS (19 MiB as JavaScript).
import { parentPort, workerData } from 'node:worker_threads';
import { DatabaseSync } from 'node:sqlite';

const port = parentPort;
if (port === null) throw new Error('checkpoint-thread-worker.js runs as a worker thread');
const { path, everyMs } = /** @type {{ path: string; everyMs: number }} */ (workerData);

const db = new DatabaseSync(path);
db.exec('PRAGMA busy_timeout = 5000');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
let stopping = false;
/** @type {(() => void) | undefined} */
let wake;
port.on('message', () => {
  stopping = true;
  wake?.();
});
port.postMessage('ready');
while (!stopping) {
  try {
    checkpoint.all();
  } catch {
    // SQLITE_BUSY (another checkpoint running): the next round tries again.
  }
  await new Promise((resolve) => {
    wake = () => resolve(undefined);
    setTimeout(resolve, everyMs);
  });
}
try {
  checkpoint.all();
} finally {
  db.close();
  port.postMessage('stopped');
}
