// The apply path's multi-row inserts on SQLite, as statement texts built once
// per shape instead of by Kysely's query builder on every call. Building and
// compiling a multi-row insert (an operation tree of one node per value,
// frozen, then walked) cost about as much CPU as SQLite's own work for the
// small tables, and it was paid for every piece of every batch; the text of a
// piece depends only on the table, the columns, the row count and the tail,
// so it is kept. Values are bound as parameters, as Kysely binds them.
import { CompiledQuery, type Kysely } from 'kysely';
import type { LedgerSchema } from './schema.ts';

type Value = string | number | null | undefined;
export type FlatRow = { readonly [column: string]: Value };

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
  for (let i = 1; uniform && i < rows.length; i++) {
    const r = rows[i] as FlatRow;
    const ks = Object.keys(r);
    uniform = ks.length === keys.length && ks.every((k, j) => k === keys[j] && r[k] !== undefined);
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
  const columns = columnsOf(rows);
  const shape = `${table}\u0000${columns.join(',')}\u0000${rows.length}\u0000${tail}`;
  let text = texts.get(shape);
  if (text === undefined) {
    const tuple = `(${columns.map(() => '?').join(', ')})`;
    text = `insert into ${quote(table)} (${columns.map(quote).join(', ')}) values ${Array.from({ length: rows.length }, () => tuple).join(', ')}${tail === '' ? '' : ` ${tail}`}`;
    if (texts.size >= MAX_TEXTS) texts.clear();
    texts.set(shape, text);
  }
  const params: Value[] = new Array<Value>(rows.length * columns.length);
  let p = 0;
  for (const r of rows) for (const c of columns) params[p++] = r[c] ?? null;
  // The caller's RETURNING names the columns of R, as with Kysely's sql<R>.
  const result = await db.executeQuery<R>(CompiledQuery.raw(text, params));
  return result.rows;
}
