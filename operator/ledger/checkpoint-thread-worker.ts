// Checkpoints the SQLite ledger's WAL from a thread and a connection of its
// own (started by apply-thread.ts), so that the apply thread's commits do not.
//
// A checkpoint copies the WAL's pages into the database file and syncs it:
// done by the committing connection (wal_autocheckpoint), one commit in nine
// took 150–200 ms instead of 8–14 (40,000 workload notifications in batches
// of 400: 11 checkpoints, 1.8 of the 2.5 s the commits took). PASSIVE never
// waits for a reader or the writer: it copies what it can, and the writer
// starts the WAL over once everything is copied. The apply thread keeps
// a larger wal_autocheckpoint as a bound, should this thread fall behind.
import { parentPort, workerData } from 'node:worker_threads';
import { DatabaseSync } from 'node:sqlite';

const port = parentPort;
if (port === null) throw new Error('checkpoint-thread-worker.ts runs as a worker thread');
const { path, everyMs } = workerData as { path: string; everyMs: number };

const db = new DatabaseSync(path);
db.exec('PRAGMA busy_timeout = 5000');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
let stopping = false;
let wake: (() => void) | undefined;
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
  await new Promise<void>((resolve) => {
    wake = resolve;
    setTimeout(resolve, everyMs);
  });
}
try {
  checkpoint.all();
} finally {
  db.close();
  port.postMessage('stopped');
}
