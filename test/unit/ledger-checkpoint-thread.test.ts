// The SQLite ledger's checkpoint thread (operator/ledger/checkpoint-thread.ts)
// copies the WAL into the database file while the operator's connection
// commits, that connection's own threshold raised meanwhile and given back
// when the thread stops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import { applyBatch } from '../../operator/ledger/apply.ts';
import { startCheckpointer } from '../../operator/ledger/checkpoint-thread.ts';
import { LEDGER_PAGE_SIZE, WAL_AUTOCHECKPOINT_BYTES, pragmaNumber, walPages } from '../../operator/ledger/sqlite-driver.ts';
import { decodeHistory, generateHistory } from '../support/histories.ts';

/** A new ledger's own threshold, in its pages. */
const WAL_AUTOCHECKPOINT_PAGES = walPages(WAL_AUTOCHECKPOINT_BYTES, LEDGER_PAGE_SIZE);

const threshold = (db: Parameters<typeof applyBatch>[0]) => pragmaNumber(db, 'wal_autocheckpoint');

test('a second thread copies the WAL into the database file while this connection commits, and gives the threshold back', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qop-checkpoint-'));
  const file = join(dir, 'ledger.db');
  const ledger = openLedgerDb(`sqlite:${file}`);
  try {
    await migrateToLatest(ledger);
    await sql`PRAGMA wal_checkpoint(TRUNCATE)`.execute(ledger.db);
    const before = statSync(file).size;
    const checkpointer = await startCheckpointer(ledger, { everyMs: 10 });
    try {
      assert.ok((await threshold(ledger.db)) > WAL_AUTOCHECKPOINT_PAGES, 'the connection leaves checkpoints to the thread');
      for (let seed = 1; seed <= 3; seed++) {
        const recorded = decodeHistory(generateHistory(seed), `c${seed}`);
        for (let i = 0; i < recorded.length; i += 20) await applyBatch(ledger.db, recorded.slice(i, i + 20));
      }
      // Far below the connection's raised threshold: only the thread writes the file.
      for (let i = 0; i < 200 && statSync(file).size <= before; i++) await sleep(25);
      assert.ok(statSync(file).size > before, `the database file stayed at ${before} bytes`);
    } finally {
      await checkpointer.stop();
    }
    assert.equal(await threshold(ledger.db), WAL_AUTOCHECKPOINT_PAGES);
  } finally {
    await ledger.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a thread that ends is reported, the connection checkpoints itself again, and stopping still returns', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qop-checkpoint-'));
  const ledger = openLedgerDb(`sqlite:${join(dir, 'ledger.db')}`);
  try {
    await migrateToLatest(ledger);
    const ends: string[] = [];
    // A thread body that says it is ready and then ends, as a fatal error would end the real one.
    const checkpointer = await startCheckpointer(ledger, { onEnd: (err) => ends.push(err.message), worker: new URL('../support/checkpoint-thread-ends.js', import.meta.url) });
    for (let i = 0; i < 200 && ends.length === 0; i++) await sleep(10);
    assert.deepEqual(ends, ['the ledger\'s checkpoint thread exited (code 3)']);
    for (let i = 0; i < 200 && (await threshold(ledger.db)) !== WAL_AUTOCHECKPOINT_PAGES; i++) await sleep(10);
    assert.equal(await threshold(ledger.db), WAL_AUTOCHECKPOINT_PAGES);
    await checkpointer.stop();
  } finally {
    await ledger.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('PostgreSQL and an in-memory SQLite ledger get no thread', async () => {
  const memory = openLedgerDb('sqlite::memory:');
  try {
    await (await startCheckpointer(memory)).stop();
    assert.equal(await threshold(memory.db), WAL_AUTOCHECKPOINT_PAGES);
  } finally {
    await memory.close();
  }
});
