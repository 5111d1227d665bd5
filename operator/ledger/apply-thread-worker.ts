// The apply thread (apply-thread.ts): its own connection to the SQLite
// ledger, one batch at a time, in the order they come.
import { parentPort, workerData } from 'node:worker_threads';
import { applyBatch, type InTransaction, type Recorded } from './apply.ts';
import { openLedgerDb } from './db.ts';
import { sql } from 'kysely';

/** 256 MiB of WAL: reached only if the checkpoint thread falls behind. */
const WAL_BOUND_PAGES = 64_000;
import type { Reply } from './apply-thread.ts';

interface Data {
  url: string;
  /** Another thread checkpoints the WAL: this connection does so only past a larger bound. */
  checkpointsElsewhere: boolean;
  hook?: { module: string; init: unknown } | undefined;
}

interface Request {
  id: number;
  batch: Recorded[];
  config?: unknown;
}

type HookModule = { hook: (init: unknown, config: unknown) => InTransaction };

const port = parentPort;
if (port === null) throw new Error('apply-thread-worker.ts runs as a worker thread');
const data = workerData as Data;

/** SQLITE_BUSY and SQLITE_LOCKED: another connection of this operator holds the write lock longer than the busy timeout. */
const isBusy = (err: unknown): boolean => typeof err === 'object' && err !== null && 'errcode' in err && (err.errcode === 5 || err.errcode === 6);

async function main(p: NonNullable<typeof parentPort>): Promise<void> {
  let ledger;
  let hookModule: HookModule | undefined;
  try {
    ledger = openLedgerDb(data.url);
    if (data.checkpointsElsewhere) await sql.raw(`PRAGMA wal_autocheckpoint = ${WAL_BOUND_PAGES}`).execute(ledger.db);
    if (data.hook !== undefined) hookModule = (await import(data.hook.module)) as HookModule;
  } catch (err) {
    p.postMessage({ ready: false, error: err instanceof Error ? err.message : String(err) });
    return;
  }
  const db = ledger.db;
  let hook: InTransaction | undefined;
  let queue = Promise.resolve();
  p.on('message', (m: Request) => {
    queue = queue.then(async () => {
      if ('config' in m && hookModule !== undefined && data.hook !== undefined) hook = hookModule.hook(data.hook.init, m.config);
      let reply: Reply;
      for (let wait = 50; ; wait = Math.min(wait * 2, 2000)) {
        try {
          reply = { id: m.id, ok: true, outcomes: await applyBatch(db, m.batch, hook) };
          break;
        } catch (err) {
          // Not the batch's fault: the lock is released when the other transaction ends.
          if (isBusy(err)) {
            await new Promise((resolve) => setTimeout(resolve, wait));
            continue;
          }
          reply = { id: m.id, ok: false, error: err instanceof Error ? { name: err.name, message: err.message } : { name: 'Error', message: String(err) } };
          break;
        }
      }
      p.postMessage(reply);
    });
  });
  p.postMessage({ ready: true });
}

await main(port);
