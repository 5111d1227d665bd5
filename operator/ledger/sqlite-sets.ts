// The apply path's multi-row inserts on SQLite, as statement texts built once
// per shape instead of by Kysely's query builder on every call. Building and
// compiling a multi-row insert (an operation tree of one node per value,
// frozen, then walked) cost about as much CPU as SQLite's own work for the
// small tables, and it was paid for every piece of every batch; the text of a
// piece depends only on the table, the columns, the row count and the tail,
// so it is kept. Values are bound as parameters, as Kysely binds them. Inside
// a transaction (the apply path's and the derivation passes' statements) a
// text goes straight to the node:sqlite connection the transaction holds,
// without Kysely's executor (sqlite-driver.ts, heldSqliteConnection).
import { CompiledQuery, type Kysely } from 'kysely';
import type { LedgerSchema } from './schema.ts';
import { heldSqliteConnection } from './sqlite-driver.ts';

type Value = string | number | null | undefined;
export type FlatRow = { readonly [column: string]: Value };
/** A bound value: what a row's value becomes (undefined is NULL). */
type SqlValue = string | number | null;

const texts = new Map<string, string>();
// Shapes are few (tables × power-of-two piece lengths × tails); the bound only guards against a caller that varies them freely.
const MAX_TEXTS = 512;

const quote = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/**
 * The columns of a multi-row insert, as Kysely derives them: every column
 * some row gives a defined value for, in the order they first appear. A row
 * without a value for one of them gets NULL (SQLite has no DEFAULT in VALUES,
 * and Kysely writes `null` there too).
 */
function columnsOf(rows: readonly FlatRow[]): string[] {
  const first = rows[0];
  if (first === undefined) return [];
  const keys = Object.keys(first);
  // The common case: every row has the first row's keys, all defined.
  let uniform = keys.every((k) => first[k] !== undefined);
  // Compared key by key in for…in order (Object.keys' order), without an array of keys per row.
  for (let i = 1; uniform && i < rows.length; i++) {
    const r = rows[i] as FlatRow;
    let j = 0;
    for (const k in r) {
      if (k !== keys[j] || r[k] === undefined) {
        uniform = false;
        break;
      }
      j += 1;
    }
    if (j !== keys.length) uniform = false;
  }
  if (uniform) return keys;
  const seen = new Set<string>();
  for (const r of rows) for (const k of Object.keys(r)) if (r[k] !== undefined) seen.add(k);
  return [...seen];
}

/**
 * `INSERT INTO table (columns) VALUES (…), (…) tail` for the rows given, in
 * one statement (callers split rows into pieces: pieces.ts). `tail` is fixed
 * SQL (ON CONFLICT …, RETURNING …), never data. Returns the rows RETURNING
 * gives, if any.
 */
export async function insertRows<R = never>(db: Kysely<LedgerSchema>, table: keyof LedgerSchema, rows: readonly FlatRow[], tail = ''): Promise<R[]> {
  if (rows.length === 0) return [];
  const { sqlText, params } = insertStatement(table, rows, tail);
  return run<R>(db, sqlText, params);
}

function insertStatement(table: keyof LedgerSchema, rows: readonly FlatRow[], tail: string): { sqlText: string; params: SqlValue[] } {
  const columns = columnsOf(rows);
  const sqlText = text(`i\u0000${table}\u0000${columns.join(',')}\u0000${rows.length}\u0000${tail}`, () => {
    const tuple = `(${marks(columns.length)})`;
    return `insert into ${quote(table)} (${columns.map(quote).join(', ')}) values ${Array.from({ length: rows.length }, () => tuple).join(', ')}${tail === '' ? '' : ` ${tail}`}`;
  });
  const params: SqlValue[] = new Array<SqlValue>(rows.length * columns.length);
  let p = 0;
  for (const r of rows) for (const c of columns) params[p++] = r[c] ?? null;
  return { sqlText, params };
}

/**
 * insertRows without RETURNING; returns how many rows it inserted (fewer than
 * given when its tail skips some). Inside a transaction only: the count is the
 * statement's own, which only the connection the transaction holds can give.
 */
export async function insertCounted(db: Kysely<LedgerSchema>, table: keyof LedgerSchema, rows: readonly FlatRow[], tail = ''): Promise<number> {
  if (rows.length === 0) return 0;
  const held = heldSqliteConnection(db);
  if (held === undefined) throw new Error('insertCounted runs inside a transaction on SQLite');
  const { sqlText, params } = insertStatement(table, rows, tail);
  return held.executeCounted(sqlText, params);
}

/** The largest id `table` ever had (AUTOINCREMENT's sequence, or its largest row's), 0 for none. */
export async function topId(db: Kysely<LedgerSchema>, table: 'notifications'): Promise<number> {
  const t = text(`top\u0000${table}`, () =>
    `select max(coalesce((select "seq" from sqlite_sequence where "name" = '${table}'), 0), coalesce((select max("id") from ${quote(table)}), 0)) as "top"`);
  const rows = await run<{ top: number | bigint }>(db, t, []);
  return Number(rows[0]?.top ?? 0);
}

/** Rows by id. */
export function byIds<R>(db: Kysely<LedgerSchema>, table: 'notifications', columns: readonly string[], ids: readonly number[]): Promise<R[]> {
  if (ids.length === 0) return Promise.resolve([]);
  const t = text(`id\u0000${table}\u0000${columnList(columns)}\u0000${ids.length}`, () => `select ${columnList(columns)} from ${quote(table)} where "id" in (${marks(ids.length)})`);
  return run<R>(db, t, ids);
}

/** A statement text kept per shape (`build` runs once per shape). */
function text(shape: string, build: () => string): string {
  let t = texts.get(shape);
  if (t === undefined) {
    t = build();
    if (texts.size >= MAX_TEXTS) texts.clear();
    texts.set(shape, t);
  }
  return t;
}

const marks = (n: number): string => Array.from({ length: n }, () => '?').join(', ');
const columnList = (columns: readonly string[]): string => columns.map(quote).join(', ');

async function run<R>(db: Kysely<LedgerSchema>, sqlText: string, params: readonly SqlValue[]): Promise<R[]> {
  // The caller names the columns of R in the statement, as with Kysely's sql<R>.
  const held = heldSqliteConnection(db);
  if (held !== undefined) return held.execute(sqlText, params) as R[];
  const result = await db.executeQuery<R>(CompiledQuery.raw(sqlText, [...params]));
  return result.rows;
}

/**
 * `SELECT columns FROM table WHERE cloud = ? AND column IN (keys)`, and
 * `extra` (fixed SQL) if given. Callers keep `keys` to a few lengths (pieces.ts).
 */
export function byKeys<R>(
  db: Kysely<LedgerSchema>, table: keyof LedgerSchema, columns: readonly string[], cloud: string, column: string, keys: readonly string[], extra = '',
): Promise<R[]> {
  if (keys.length === 0) return Promise.resolve([]);
  const t = text(`k\u0000${table}\u0000${columnList(columns)}\u0000${column}\u0000${keys.length}\u0000${extra}`, () =>
    `select ${columnList(columns)} from ${quote(table)} where "cloud" = ? and ${quote(column)} in (${marks(keys.length)})${extra === '' ? '' : ` and ${extra}`}`);
  return run<R>(db, t, [cloud, ...keys]);
}

/**
 * Rows whose slot lies in any of the ranges [lo, hi). The cloud is repeated
 * in every branch: only then does SQLite answer each branch from the
 * (cloud, slot) index instead of scanning the whole cloud.
 */
export function inSlotRanges<R>(
  db: Kysely<LedgerSchema>, table: 'address_changes' | 'address_intervals', columns: readonly string[], cloud: string, ranges: ReadonlyArray<readonly [string, string]>, extra = '', distinct = false,
): Promise<R[]> {
  if (ranges.length === 0) return Promise.resolve([]);
  const t = text(`r\u0000${table}\u0000${columnList(columns)}\u0000${ranges.length}\u0000${extra}\u0000${distinct}`, () =>
    `select ${distinct ? 'distinct ' : ''}${columnList(columns)} from ${quote(table)} where (${ranges.map(() => '("cloud" = ? and "slot" >= ? and "slot" < ?)').join(' or ')})${extra === '' ? '' : ` and ${extra}`}`);
  const params: SqlValue[] = [];
  for (const [lo, hi] of ranges) params.push(cloud, lo, hi);
  return run<R>(db, t, params);
}

/** The branches of a key-and-time condition: each slot (or owner) from its time on (`column` >= time). */
function slotTimes(key: 'slot' | 'owner', column: 'at' | 'valid_from', n: number): string {
  return `(${Array.from({ length: n }, () => `("cloud" = ? and ${quote(key)} = ? and ${quote(column)} >= ?)`).join(' or ')})`;
}

function slotTimeParams(cloud: string, starts: ReadonlyArray<readonly [string, number]>): SqlValue[] {
  const params: SqlValue[] = [];
  for (const [slot, from] of starts) params.push(cloud, slot, from);
  return params;
}

/** Rows of each slot given (of each owner, for full lists), from its time on. */
export function slotsFrom<R>(
  db: Kysely<LedgerSchema>, table: 'address_changes' | 'address_intervals' | 'slot_snapshots', column: 'at' | 'valid_from', columns: readonly string[], cloud: string, starts: ReadonlyArray<readonly [string, number]>,
): Promise<R[]> {
  if (starts.length === 0) return Promise.resolve([]);
  const t = text(`f\u0000${table}\u0000${column}\u0000${columnList(columns)}\u0000${starts.length}`, () =>
    `select ${columnList(columns)} from ${quote(table)} where ${slotTimes(table === 'slot_snapshots' ? 'owner' : 'slot', column, starts.length)}`);
  return run<R>(db, t, slotTimeParams(cloud, starts));
}

/** Deletes intervals by id. */
export async function deleteIntervalIds(db: Kysely<LedgerSchema>, ids: ReadonlyArray<number | string>): Promise<void> {
  if (ids.length === 0) return;
  const t = text(`di\u0000${ids.length}`, () => `delete from "address_intervals" where "id" in (${marks(ids.length)})`);
  await run(db, t, ids);
}

