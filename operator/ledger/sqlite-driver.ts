// Kysely ships a SQLite dialect written against better-sqlite3's interface.
// node:sqlite is built into Node 24 and needs no native addon, so this adapts
// its synchronous statements to that interface.
import { DatabaseSync, type StatementSync, type SQLInputValue } from 'node:sqlite';
import type { SqliteDatabase, SqliteStatement } from 'kysely';

function toInput(values: ReadonlyArray<unknown>): SQLInputValue[] {
  return values.map((v) => {
    if (v === undefined || v === null) return null;
    if (typeof v === 'boolean') return v ? 1 : 0;
    if (v instanceof Date) return v.getTime();
    if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'string' || v instanceof Uint8Array) return v;
    throw new TypeError(`cannot bind a ${typeof v} to a SQLite parameter`);
  });
}

class Statement implements SqliteStatement {
  readonly reader: boolean;
  readonly #stmt: StatementSync;
  /** Open iterators: while one runs, re-executing the statement would reset it under the reader. */
  iterating = 0;
  constructor(stmt: StatementSync) {
    this.#stmt = stmt;
    this.reader = stmt.columns().length > 0;
  }
  all(parameters: ReadonlyArray<unknown>): unknown[] {
    // node:sqlite rows have a null prototype; plain objects keep rows from
    // both engines interchangeable (deepEqual, spreading, JSON).
    return this.#stmt.all(...toInput(parameters)).map((row) => ({ ...row }));
  }
  run(parameters: ReadonlyArray<unknown>): { changes: number | bigint; lastInsertRowid: number | bigint } {
    const r = this.#stmt.run(...toInput(parameters));
    return { changes: r.changes, lastInsertRowid: r.lastInsertRowid };
  }
  iterate(parameters: ReadonlyArray<unknown>): IterableIterator<unknown> {
    const rows = this.#stmt.iterate(...toInput(parameters));
    this.iterating += 1;
    const done = () => {
      this.iterating -= 1;
    };
    return (function* () {
      try {
        for (const row of rows) yield { ...(row as object) };
      } finally {
        done();
      }
    })();
  }
}

// Kysely prepares every query anew; compiling the SQL again costs more than
// running it for the ledger's small statements, so prepared statements are
// kept per SQL text. The bound only matters for generated texts (multi-row
// inserts of varying length); the ledger's queries are a few dozen shapes.
const STATEMENT_CACHE_SIZE = 256;

export class NodeSqliteDatabase implements SqliteDatabase {
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, Statement>();
  constructor(path: string) {
    this.#db = new DatabaseSync(path);
    // WAL lets the CLI read while the operator writes; busy_timeout turns a
    // concurrent writer into a short wait instead of SQLITE_BUSY. Intake
    // writes a few KiB per notification, so the default checkpoint every
    // 1000 pages (4 MiB) would fsync twice about every second at full rate;
    // 16000 pages (64 MiB) checkpoints less often and copies hot index pages
    // once instead of many times, at the price of a larger WAL file. An apply
    // batch of 200 dirties about 1,700 pages (random-key indexes): with the
    // default 2 MiB page cache they spill to the WAL before the commit and
    // are read back with pread; 16 MiB holds a batch's pages.
    this.#db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 16000; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA cache_size = -16384;');
  }
  prepare(sql: string): SqliteStatement {
    const cached = this.#statements.get(sql);
    if (cached !== undefined && cached.iterating === 0) return cached;
    const stmt = new Statement(this.#db.prepare(sql));
    if (cached === undefined) {
      if (this.#statements.size >= STATEMENT_CACHE_SIZE) this.#statements.delete(this.#statements.keys().next().value as string);
      this.#statements.set(sql, stmt);
    }
    return stmt;
  }
  close(): void {
    this.#statements.clear();
    this.#db.close();
  }
}
