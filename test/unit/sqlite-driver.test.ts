// The node:sqlite driver's direct read (sqlite-driver.ts): rows as arrays of
// values, on the connection behind a Kysely ledger, and only once Kysely has
// given that connection to the reader, so that another caller's open
// transaction is never read half-done; and the page size of a new ledger.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Kysely, sql } from 'kysely';
import { DatabaseSync } from 'node:sqlite';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { LEDGER_PAGE_SIZE, NodeSqliteDatabase, NodeSqliteDialect, WAL_AUTOCHECKPOINT_BYTES, ledgerPageSize, onSqliteConnection, pragmaNumber, walPages } from '../../operator/ledger/sqlite-driver.ts';
import { startCheckpointer } from '../../operator/ledger/checkpoint-thread.ts';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import type { LedgerSchema } from '../../operator/ledger/schema.ts';
import { appendAudit } from '../../operator/ledger/audit.ts';
import { writerHolding } from '../support/sqlite-writer.ts';

interface Db {
  t: { n: number; s: string | null };
}

function open(): Kysely<Db> {
  return new Kysely<Db>({ dialect: new NodeSqliteDialect(new NodeSqliteDatabase(':memory:')) });
}

test('eachRow hands each row over as its values, in the select list\'s order', async () => {
  const db = open();
  await sql`CREATE TABLE t (n INTEGER NOT NULL, s TEXT)`.execute(db);
  await db.insertInto('t').values([{ n: 1, s: 'a' }, { n: 2, s: null }, { n: 3, s: '__proto__' }]).execute();
  const rows = await onSqliteConnection(db, (c) => {
    const out: unknown[][] = [];
    c.eachRow('SELECT s, n FROM t WHERE n >= ? ORDER BY n', [2], (v) => out.push([...v]));
    return out;
  });
  assert.deepEqual(rows, [[null, 2], ['__proto__', 3]]);
  await db.destroy();
});

test('the connection is found from the ledger and from its transactions; not from another dialect', async () => {
  const db = open();
  await sql`CREATE TABLE t (n INTEGER NOT NULL, s TEXT)`.execute(db);
  await db.transaction().execute(async (trx) => {
    await trx.insertInto('t').values({ n: 7, s: 'mine' }).execute();
    // Inside the caller's transaction, its own uncommitted row is read.
    const seen = await onSqliteConnection<Db, unknown[]>(trx, (c) => {
      const out: unknown[] = [];
      c.eachRow('SELECT n FROM t', [], (v) => out.push(v[0]));
      return out;
    });
    assert.deepEqual(seen, [7]);
  });
  const other = new Kysely<Db>({ dialect: new (await import('kysely')).SqliteDialect({ database: new NodeSqliteDatabase(':memory:') }) });
  assert.equal(await onSqliteConnection(other, () => 'read'), undefined);
  await other.destroy();
  await db.destroy();
});

test('a read outside a transaction waits for another caller\'s transaction to end, and never sees its rows', async () => {
  const db = open();
  await sql`CREATE TABLE t (n INTEGER NOT NULL, s TEXT)`.execute(db);
  let release = () => {};
  const held = new Promise<void>((resolve) => { release = resolve; });
  let inserted = () => {};
  const insertedYet = new Promise<void>((resolve) => { inserted = resolve; });
  const writer = db.transaction().execute(async (trx) => {
    await trx.insertInto('t').values({ n: 1, s: 'undone' }).execute();
    inserted();
    await held;
    throw new Error('rolled back');
  }).catch((err: unknown) => err);
  await insertedYet;
  let done = false;
  const reader = onSqliteConnection(db, (c) => {
    const out: unknown[] = [];
    c.eachRow('SELECT n FROM t', [], (v) => out.push(v[0]));
    done = true;
    return out;
  });
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(done, false, 'the read ran inside the other caller\'s transaction');
  release();
  assert.match(String(await writer), /rolled back/);
  assert.deepEqual(await reader, []);
  await db.destroy();
});

test('a new ledger file gets the larger page; one created with 4 KiB pages keeps them, with its WAL thresholds in its own pages', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qop-page-'));
  const threshold = (db: Kysely<LedgerSchema>) => pragmaNumber(db, 'wal_autocheckpoint');
  try {
    const fresh = openLedgerDb(`sqlite:${join(dir, 'new.db')}`);
    await migrateToLatest(fresh);
    assert.equal(LEDGER_PAGE_SIZE, 8192);
    assert.equal(await ledgerPageSize(fresh.db), LEDGER_PAGE_SIZE);
    assert.equal(await threshold(fresh.db), WAL_AUTOCHECKPOINT_BYTES / LEDGER_PAGE_SIZE);
    await fresh.close();

    // A ledger of an earlier release: 4 KiB pages, already in WAL mode.
    const oldPath = join(dir, 'old.db');
    const raw = new DatabaseSync(oldPath);
    raw.exec('PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE kept (n INTEGER)');
    raw.close();
    const old = openLedgerDb(`sqlite:${oldPath}`);
    await migrateToLatest(old);
    assert.equal(await ledgerPageSize(old.db), 4096);
    assert.equal(await threshold(old.db), walPages(WAL_AUTOCHECKPOINT_BYTES, 4096));
    const checkpointer = await startCheckpointer(old);
    // While the thread runs, the bound is 250 MiB in the ledger's own pages.
    assert.equal(await threshold(old.db), walPages(250 * 2 ** 20, 4096));
    await checkpointer.stop();
    assert.equal(await threshold(old.db), walPages(WAL_AUTOCHECKPOINT_BYTES, 4096));
    await old.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a transaction that reads and then writes waits for another process\'s commit instead of failing on a stale snapshot; a read-only one does not wait', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qop-sqlite-immediate-'));
  const file = join(dir, 'ledger.db');
  const ledger = openLedgerDb(`sqlite:${file}`);
  try {
    await migrateToLatest(ledger);
    // An audit record reads the chain's head, then appends: begun deferred, it read under the other
    // process's lock and failed with "database is locked" once that process had committed.
    const writer = await writerHolding(file, 300);
    const appended = await appendAudit(ledger.db, { actor: 'cli/test', action: 'test.append', subject: 'x', details: {} });
    await writer.done;
    assert.equal(appended.action, 'test.append');
    const seen = await ledger.db.selectFrom('audit').select('action').where('action', '=', 'test.append').execute();
    assert.equal(seen.length, 1);

    // Said to be read-only, a transaction reads the last committed state without waiting for the lock.
    const long = await writerHolding(file, 3_000);
    const n = await ledger.db.transaction().setAccessMode('read only').execute((trx) => trx.selectFrom('audit').select('seq').execute());
    assert.equal(long.exited(), false, 'the read-only transaction ended while the other process still held the lock');
    assert.ok(n.length >= 1);
    await long.done;
  } finally {
    await ledger.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
