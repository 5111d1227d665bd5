// Kysely ships a SQLite dialect written against better-sqlite3's interface.
// node:sqlite is built into Node 24 and needs no native addon, so this adapts
// its synchronous statements to that interface.
import { DatabaseSync, type StatementSync, type SQLInputValue } from 'node:sqlite';
import { CompiledQuery, SqliteAdapter, SqliteDialect, SqliteDriver, sql, type DatabaseConnection, type Driver, type Kysely, type SqliteDatabase, type SqliteStatement, type TransactionSettings } from 'kysely';

function toInput(values: ReadonlyArray<unknown>): SQLInputValue[] {
  return values.map((v) => {
    if (v === undefined || v === null) return null;
    if (typeof v === 'boolean') return v ? 1 : 0;
    if (v instanceof Date) return v.getTime();
    if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'string' || v instanceof Uint8Array) return v;
    throw new TypeError(`cannot bind a ${typeof v} to a SQLite parameter`);
  });
}

/**
 * Rows come from node:sqlite as arrays and are made plain objects here.
 * node:sqlite's own row objects have a null prototype, and rows from both
 * engines must stay interchangeable (deepEqual, spreading, JSON), so each was
 * copied with a spread: twice the objects, and in a large read most of the
 * time (700,000 rows of an attribution at 10M, profiled: 2.8 s copying and
 * 11.6 s of garbage collection of 29.7 s; 0.4 s and 5.6 s of 18.2 s this
 * way). Properties set in one order give every row of a statement one shape.
 */
function rowMaker(names: readonly string[]): (values: unknown[]) => Record<string, unknown> {
  if (names.includes('__proto__')) {
    // An assignment would set the prototype; a column of that name must stay a property.
    return (values) => Object.fromEntries(names.map((n, i) => [n, values[i]]));
  }
  return (values) => {
    const row: Record<string, unknown> = {};
    for (let i = 0; i < names.length; i++) row[names[i] as string] = values[i];
    return row;
  };
}

/**
 * The page size of a ledger created from now on. A page is a WAL frame, and
 * the commit of an apply batch writes each page it dirtied as a frame (two
 * write(2) calls) whatever it changed in it: most of a batch's pages are the
 * leaves of random-key indexes, one per key of a small index, so pages of
 * twice the size halve the frames of a batch and of each checkpoint (alternated
 * ingest runs in BENCHMARKS.md). A ledger keeps the page size it was created
 * with: SQLite changes it only by a VACUUM, and in WAL mode not at all.
 */
export const LEDGER_PAGE_SIZE = 8192;

/** The connection's own checkpoint threshold in bytes of WAL (see below); checkpoint-thread.ts raises it while a thread checkpoints. */
export const WAL_AUTOCHECKPOINT_BYTES = 64 * 2 ** 20;

/** A WAL size as SQLite's wal_autocheckpoint counts it, in pages of the ledger's size. */
export const walPages = (bytes: number, pageSize: number): number => Math.max(1, Math.round(bytes / pageSize));

/** A PRAGMA that answers one number (page_size, wal_autocheckpoint), read through the ledger's connection. */
export async function pragmaNumber<DB>(db: Kysely<DB>, name: 'page_size' | 'wal_autocheckpoint'): Promise<number> {
  const r = await sql.raw<Record<string, unknown>>(`PRAGMA ${name}`).execute(db);
  const value = Number(r.rows[0]?.[name]);
  if (!Number.isInteger(value) || value < 0) throw new Error(`PRAGMA ${name} answered ${String(r.rows[0]?.[name])}`);
  return value;
}

/** The page size the ledger was created with (LEDGER_PAGE_SIZE for a new one). */
export const ledgerPageSize = <DB>(db: Kysely<DB>): Promise<number> => pragmaNumber(db, 'page_size');

class Statement implements SqliteStatement {
  readonly reader: boolean;
  readonly #stmt: StatementSync;
  readonly #row: (values: unknown[]) => Record<string, unknown>;
  /** Open iterators: while one runs, re-executing the statement would reset it under the reader. */
  iterating = 0;
  constructor(stmt: StatementSync) {
    this.#stmt = stmt;
    const columns = stmt.columns();
    this.reader = columns.length > 0;
    stmt.setReturnArrays(true);
    this.#row = rowMaker(columns.map((c) => c.name));
  }
  all(parameters: ReadonlyArray<unknown>): unknown[] {
    return this.#rows(toInput(parameters));
  }
  #rows(values: readonly SQLInputValue[]): unknown[] {
    // Row by row rather than node:sqlite's all(): each array is garbage as soon as its object is made, instead
    // of living, with all the others, through every collection until the last row is read (a 700,000-row
    // attribution at 10M: 12.0 s against 13.6 s).
    const out: unknown[] = [];
    for (const row of this.#stmt.iterate(...values)) out.push(this.#row(row as unknown as unknown[]));
    return out;
  }
  /**
   * Runs the statement with values already of node:sqlite's own types (no
   * conversion, no copy); returns its rows, none for a statement without
   * columns.
   */
  execute(values: readonly SQLInputValue[]): unknown[] {
    if (this.reader) return this.#rows(values);
    this.#stmt.run(...values);
    return [];
  }
  /** Runs a statement without rows with values of node:sqlite's own types; returns the rows it changed. */
  runValues(values: readonly SQLInputValue[]): number | bigint {
    return this.#stmt.run(...values).changes;
  }
  run(parameters: ReadonlyArray<unknown>): { changes: number | bigint; lastInsertRowid: number | bigint } {
    const r = this.#stmt.run(...toInput(parameters));
    return { changes: r.changes, lastInsertRowid: r.lastInsertRowid };
  }
  iterate(parameters: ReadonlyArray<unknown>): IterableIterator<unknown> {
    const rows = this.#stmt.iterate(...toInput(parameters));
    const make = this.#row;
    this.iterating += 1;
    const done = () => {
      this.iterating -= 1;
    };
    return (function* () {
      try {
        for (const row of rows) yield make(row as unknown as unknown[]);
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
    // 1000 pages (4 MiB of 4 KiB pages) would fsync twice about every second
    // at full rate; 64 MiB checkpoints less often and copies hot index pages
    // once instead of many times, at the price of a larger WAL file. An apply
    // batch of 200 dirties about 1,700 pages (random-key indexes): with the
    // default 2 MiB page cache they spill to the WAL before the commit and
    // are read back with pread; 16 MiB holds a batch's pages.
    // temp_store = MEMORY: inside a transaction every statement that may
    // abort (any NOT NULL column makes an insert one) copies each page it
    // first touches to a statement journal, to undo that statement alone.
    // A multi-row insert of an apply batch touches hundreds of index pages,
    // and past 64 KiB the journal went to a temporary file: a write(2) per
    // page, about as many as the commit's own WAL writes (profiled: 6.8% of
    // an in-process apply's CPU, the commit's WAL frames 6.1%). The journal
    // is dropped when the statement ends and never holds committed data, so
    // nothing about durability changes; what moves to memory besides it are
    // temporary tables and the transient indexes of DISTINCT, GROUP BY and IN
    // (the sorter of ORDER BY keeps its own temporary files).
    // page_size first: it applies only to a database not yet written, and journal_mode writes the header.
    this.#db.exec(`PRAGMA page_size = ${LEDGER_PAGE_SIZE}; PRAGMA journal_mode = WAL;`);
    const { page_size: pageSize } = this.#db.prepare('PRAGMA page_size').get() as { page_size: number };
    this.#db.exec(`PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = ${walPages(WAL_AUTOCHECKPOINT_BYTES, pageSize)}; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY;`);
  }
  #direct = 0;
  /** Statements run by execute(), not through Kysely: what a Kysely plugin that counts statements does not see. */
  get directStatements(): number {
    return this.#direct;
  }
  /** Runs `sql` (prepared once, kept) with values of node:sqlite's own types, without Kysely: see heldSqliteConnection. */
  execute(sql: string, values: readonly SQLInputValue[]): unknown[] {
    this.#direct += 1;
    return this.prepare(sql).execute(values);
  }
  /** execute() for a statement without rows: returns how many rows it changed. */
  executeCounted(sql: string, values: readonly SQLInputValue[]): number {
    this.#direct += 1;
    return Number(this.prepare(sql).runValues(values));
  }
  prepare(sql: string): Statement {
    const cached = this.#statements.get(sql);
    if (cached !== undefined && cached.iterating === 0) return cached;
    const stmt = new Statement(this.#db.prepare(sql));
    if (cached === undefined) {
      if (this.#statements.size >= STATEMENT_CACHE_SIZE) this.#statements.delete(this.#statements.keys().next().value as string);
      this.#statements.set(sql, stmt);
    }
    return stmt;
  }
  /**
   * Runs a query and hands each row to `each` as node:sqlite's array of
   * values, which the caller must not keep: no row object is made. For a
   * large read whose rows are turned into something else at once
   * (attribute.ts: 700,000 candidates at 10M), the objects all() builds
   * would live until the last row and be copied by every collection.
   */
  eachRow(sql: string, parameters: ReadonlyArray<unknown>, each: (values: readonly unknown[]) => void): void {
    const stmt = this.#db.prepare(sql);
    stmt.setReturnArrays(true);
    for (const values of stmt.iterate(...toInput(parameters))) each(values as unknown as unknown[]);
  }
  close(): void {
    this.#statements.clear();
    this.#db.close();
  }
}

// The node:sqlite connection behind a Kysely ledger, by the adapter its
// dialect made: a Kysely instance and its transactions share that adapter.
const connections = new WeakMap<object, NodeSqliteDatabase>();

/**
 * Transactions that take the database's write lock when they begin (BEGIN
 * IMMEDIATE), unless they say they only read. SQLite's default (BEGIN,
 * deferred) reads from a snapshot and takes the lock at its first write; if
 * another process (the operator, the CLI) committed in between, that write
 * fails at once with SQLITE_BUSY_SNAPSHOT ("database is locked"), without the
 * busy timeout's wait, since the transaction read what is no longer current.
 * Every transaction of the ledger on SQLite writes (a hold, an audit record
 * after reading the chain's head, a derivation after reading what is
 * pending); taking the lock first makes a concurrent writer a wait instead.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection, settings?: TransactionSettings): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(settings?.accessMode === 'read only' ? 'begin' : 'begin immediate'));
  }
}

/** Kysely's SQLite dialect on a NodeSqliteDatabase, which onSqliteConnection finds again; its transactions begin immediate (above). */
export class NodeSqliteDialect extends SqliteDialect {
  readonly #database: NodeSqliteDatabase;
  constructor(database: NodeSqliteDatabase) {
    super({ database });
    this.#database = database;
  }
  override createDriver(): Driver {
    return new ImmediateSqliteDriver({ database: this.#database });
  }
  override createAdapter(): SqliteAdapter {
    const adapter = new SqliteAdapter();
    connections.set(adapter, this.#database);
    return adapter;
  }
}

/**
 * The node:sqlite connection that a transaction on it holds, for statements
 * that skip Kysely's executor: a prepared text and plain values go straight
 * to node:sqlite, without the query object, the parameters' copy and
 * conversion and the promises of a connection handed over per statement
 * (the apply path's SQLite statements, sqlite-sets.ts: about 3% of an
 * ingest's CPU). Undefined outside a transaction, where the connection is
 * Kysely's to hand over (onSqliteConnection), and on another engine.
 */
export function heldSqliteConnection<DB>(trx: Kysely<DB>): NodeSqliteDatabase | undefined {
  return trx.isTransaction ? connections.get(trx.getExecutor().adapter) : undefined;
}

/** Statements run on `db`'s SQLite connection without Kysely (heldSqliteConnection); 0 on another engine. */
export function directStatementCount<DB>(db: Kysely<DB>): number {
  return connections.get(db.getExecutor().adapter)?.directStatements ?? 0;
}

/**
 * Runs `read` on the node:sqlite connection behind `db` (undefined when `db`
 * is not on one), once Kysely has given that connection to this caller:
 * outside a transaction, a transaction that another caller has open on it
 * ends first, so the read never sees its uncommitted rows; inside one, the
 * caller's own transaction holds the connection already.
 */
export async function onSqliteConnection<DB, T>(db: Kysely<DB>, read: (connection: NodeSqliteDatabase) => T): Promise<T | undefined> {
  const connection = connections.get(db.getExecutor().adapter);
  if (connection === undefined) return undefined;
  if (db.isTransaction) return read(connection);
  return db.connection().execute(async () => read(connection));
}
