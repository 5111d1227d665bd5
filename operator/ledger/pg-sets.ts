// The apply path's set lookups in the form PostgreSQL runs well. Each takes
// the whole set of keys as one array parameter, so its text never changes
// (planned the same way every time, parsed in no time), and walks the index
// once per key: a LATERAL subquery per key, kept from being flattened into a
// join by OFFSET 0.
//
// The plain forms (`cloud = $1 AND col IN (…)`, or an OR of slot ranges) are
// planned from statistics: without them (a young ledger, autovacuum off or
// not yet run) PostgreSQL takes `cloud = $1` for selective, reads every row
// of the cloud through any index that starts with it and filters the keys
// from there, so each lookup costs as much as the cloud has facts. Measured
// on 20,000 notifications: the OR of 100 slot ranges took 25–60 ms per
// statement that way, half of the server's time for the whole apply.
import { PostgresAdapter, sql, type Kysely, type RawBuilder, type Selectable } from 'kysely';
import type { LedgerSchema } from './schema.ts';

export const isPostgres = (db: Kysely<LedgerSchema>): boolean => db.getExecutor().adapter instanceof PostgresAdapter;

/** The lookups the apply path makes, each answered by an index that starts with (cloud, column). */
interface Keyed {
  address_changes: 'instance_id' | 'slot';
  holder_slots: 'holder_key';
  address_intervals: 'slot';
  slot_snapshots: 'owner';
  instances: 'instance_id';
  ports: 'port_id' | 'mac';
  routers: 'router_id';
}
type Row<T extends keyof Keyed, C extends keyof Selectable<LedgerSchema[T]>> = Pick<Selectable<LedgerSchema[T]>, C>;

const columnList = (columns: readonly string[], alias?: string): RawBuilder<unknown> =>
  sql.join(columns.map((c) => sql.ref(alias === undefined ? c : `${alias}.${c}`)));

/** Rows of `table` in `cloud` whose `column` is one of `keys`, and `extra` (fixed SQL, never data) if given. */
export async function byKeys<T extends keyof Keyed, C extends keyof Selectable<LedgerSchema[T]> & string>(
  db: Kysely<LedgerSchema>, table: T, column: Keyed[T], cloud: string, keys: Iterable<string>, columns: readonly C[], extra = '',
): Promise<Array<Row<T, C>>> {
  const list = [...new Set(keys)];
  if (list.length === 0) return [];
  const r = await sql<Row<T, C>>`SELECT ${columnList(columns, 't')} FROM unnest(${list}::text[]) AS k(key)
    CROSS JOIN LATERAL (SELECT ${columnList(columns)} FROM ${sql.table(table)} WHERE cloud = ${cloud} AND ${sql.ref(column)} = k.key${sql.raw(extra === '' ? '' : ` AND ${extra}`)} OFFSET 0) AS t`.execute(db);
  return r.rows;
}

/** Rows of `table` in `cloud` whose slot is in [lo, hi) of any range (ranges must not overlap: a row is returned once per range). */
export async function inSlotRanges<T extends 'address_changes' | 'address_intervals', C extends keyof Selectable<LedgerSchema[T]> & string>(
  db: Kysely<LedgerSchema>, table: T, cloud: string, ranges: ReadonlyArray<readonly [string, string]>, columns: readonly C[], distinct = false,
): Promise<Array<Row<T, C>>> {
  if (ranges.length === 0) return [];
  const lo = ranges.map((r) => r[0]);
  const hi = ranges.map((r) => r[1]);
  const r = await sql<Row<T, C>>`SELECT ${distinct ? sql`DISTINCT ` : sql``}${columnList(columns, 't')} FROM unnest(${lo}::text[], ${hi}::text[]) AS r(lo, hi)
    CROSS JOIN LATERAL (SELECT ${columnList(columns)} FROM ${sql.table(table)} WHERE cloud = ${cloud} AND slot >= r.lo AND slot < r.hi OFFSET 0) AS t`.execute(db);
  return r.rows;
}

/** Rows of `table` in `cloud` of each slot given (of each owner, for full lists), from its time on (`column` >= its time). */
export async function slotsFrom<T extends 'address_changes' | 'address_intervals' | 'slot_snapshots', C extends keyof Selectable<LedgerSchema[T]> & string>(
  db: Kysely<LedgerSchema>, table: T, column: T extends 'address_intervals' ? 'valid_from' : 'at', cloud: string, starts: ReadonlyArray<readonly [string, number]>, columns: readonly C[],
): Promise<Array<Row<T, C>>> {
  if (starts.length === 0) return [];
  const key = table === 'slot_snapshots' ? 'owner' : 'slot';
  const r = await sql<Row<T, C>>`SELECT ${columnList(columns, 't')} FROM ${slotTimes(starts)}
    CROSS JOIN LATERAL (SELECT ${columnList(columns)} FROM ${sql.table(table)} WHERE cloud = ${cloud} AND ${sql.ref(key)} = s.slot AND ${sql.ref(column)} >= s.t OFFSET 0) AS t`.execute(db);
  return r.rows;
}

/** `unnest(…) AS s(slot, t)`: slots and times as two array parameters. */
function slotTimes(starts: ReadonlyArray<readonly [string, number]>): RawBuilder<unknown> {
  return sql`unnest(${starts.map((s) => s[0])}::text[], ${starts.map((s) => s[1])}::bigint[]) AS s(slot, t)`;
}

/** Deletes intervals by id, in one statement. */
export async function deleteIntervalIds(db: Kysely<LedgerSchema>, ids: ReadonlyArray<number | string>): Promise<void> {
  if (ids.length === 0) return;
  await sql`DELETE FROM address_intervals WHERE id = ANY(${ids.map(String)}::bigint[])`.execute(db);
}

/** For each slot, the time of its latest `release_any` fact before the time given; slots without one are left out. */
export async function lastReleases(db: Kysely<LedgerSchema>, cloud: string, before: ReadonlyArray<readonly [string, number]>): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (before.length === 0) return out;
  // One scalar subquery per slot: each walks the (cloud, slot, at) index backwards from its time.
  const r = await sql<{ slot: string; t: number | string | null }>`SELECT s.slot, (SELECT at FROM address_changes
    WHERE cloud = ${cloud} AND slot = s.slot AND at < s.t AND op = 'release_any' ORDER BY at DESC LIMIT 1) AS t FROM ${slotTimes(before)}`.execute(db);
  for (const row of r.rows) if (row.t !== null) out.set(row.slot, Number(row.t));
  return out;
}

/**
 * PostgreSQL types of the columns the apply path inserts in bulk: the rows go
 * as one array per column, so the statement's text is the same whatever the
 * number of rows, and it needs no limit on parameters.
 */
const INSERTED = {
  notifications: {
    cloud: 'text', source: 'text', message_id: 'text', id_kind: 'text', event_type: 'text', publisher: 'text', occurred_at: 'int8',
    received_at: 'int8', outcome: 'text', body_sha256: 'text',
  },
  notification_bodies: { notification_id: 'int8', received_at: 'int8', body: 'text' },
  address_changes: {
    cloud: 'text', slot: 'text', at: 'int8', op: 'text', holder_key: 'text', address: 'text', kind: 'text', instance_id: 'text', port: 'text',
    mac: 'text', network: 'text', project: 'text', message_id: 'text', ord: 'int4',
  },
  slot_snapshots: { cloud: 'text', owner: 'text', at: 'int8', message_id: 'text', members: 'text', ord: 'int4' },
  holder_slots: { cloud: 'text', holder_key: 'text', slot: 'text' },
  instance_events: { cloud: 'text', instance_id: 'text', message_id: 'text', at: 'int8', event_type: 'text', action: 'text' },
  address_intervals: {
    cloud: 'text', slot: 'text', address: 'text', kind: 'text', network: 'text', port: 'text', mac: 'text', instance_id: 'text', project: 'text',
    valid_from: 'int8', valid_to: 'int8', opened_by: 'text', closed_by: 'text', from_certain: 'int8', to_certain: 'int8',
  },
  instances: {
    cloud: 'text', instance_id: 'text', name: 'text', project: 'text', user_id: 'text', host: 'text', image: 'text', flavor: 'text', state: 'text',
    created_at: 'int8', deleted_at: 'int8', deleted_by: 'text', first_seen_at: 'int8', last_event_at: 'int8', ended_at: 'int8', user_name: 'text',
    project_name: 'text', user_name_source: 'text', user_name_at: 'int8', project_name_source: 'text', project_name_at: 'int8',
  },
  ports: {
    cloud: 'text', port_id: 'text', device_id: 'text', device_owner: 'text', network: 'text', mac: 'text', project: 'text', deleted_at: 'int8', last_event_at: 'int8',
  },
  routers: { cloud: 'text', router_id: 'text', name: 'text', project: 'text', deleted_at: 'int8', last_event_at: 'int8' },
} as const satisfies { [T in keyof LedgerSchema]?: { [C in keyof LedgerSchema[T]]?: 'text' | 'int8' | 'int4' } };

type Inserted = typeof INSERTED;

/** A string JSON cannot carry to PostgreSQL: a lone surrogate, which JSON.stringify writes as an escape and PostgreSQL refuses as text. */
const LONE_SURROGATE_ESCAPE = /\\u[dD][89a-fA-F][0-9a-fA-F]{2}/;

/**
 * `INSERT INTO table (columns) SELECT … FROM json_to_recordset($1)`, then
 * `tail` (ON CONFLICT, RETURNING): the rows go as one JSON text, which the
 * driver sends as it is and the server parses in one pass. An array
 * parameter per column (`unnest`) cost about a quarter more per batch: the
 * driver escapes every element into an array literal and the server parses
 * each literal apart. The columns are those of the first row: every row must
 * name the same ones (a missing value is NULL, not the column's default).
 */
export async function insertRows<T extends keyof Inserted, R = never>(
  db: Kysely<LedgerSchema>, table: T, rows: ReadonlyArray<{ readonly [C in keyof Inserted[T]]?: string | number | null | undefined }>, tail: RawBuilder<unknown> = sql``,
): Promise<R[]> {
  const first = rows[0];
  if (first === undefined) return [];
  const types: Readonly<Record<string, string>> = INSERTED[table];
  const columns = Object.keys(first).filter((c) => types[c] !== undefined);
  if (columns.length !== Object.keys(first).length) throw new TypeError(`insertRows: ${table} has no bulk column among ${Object.keys(first).join(', ')}`);
  const value = (r: unknown, c: string) => (r as Readonly<Record<string, string | number | null | undefined>>)[c] ?? null;
  for (const r of rows) {
    for (const c of columns) {
      const v = value(r, c);
      // JSON would write null for these, where the column's parser refuses them.
      if (typeof v === 'number' && !Number.isFinite(v)) throw new TypeError(`insertRows: ${table}.${c} is ${v}`);
    }
  }
  const json = JSON.stringify(rows);
  if (LONE_SURROGATE_ESCAPE.test(json)) {
    // As text parameters, such a string is sent as UTF-8 with U+FFFD in its place (as SQLite stores it).
    const arrays = columns.map((c) => sql`${rows.map((r) => value(r, c))}::${sql.raw(types[c] as string)}[]`);
    const r = await sql<R>`INSERT INTO ${sql.table(table)} (${sql.join(columns.map((c) => sql.ref(c)))}) SELECT * FROM unnest(${sql.join(arrays)}) ${tail}`.execute(db);
    return r.rows;
  }
  const shape = sql.join(columns.map((c) => sql`${sql.ref(c)} ${sql.raw(types[c] as string)}`));
  const r = await sql<R>`INSERT INTO ${sql.table(table)} (${sql.join(columns.map((c) => sql.ref(c)))})
    SELECT ${sql.join(columns.map((c) => sql.ref(`x.${c}`)))} FROM json_to_recordset(${json}::json) AS x(${shape}) ${tail}`.execute(db);
  return r.rows;
}

/**
 * Notification bodies as one bytea parameter, their UTF-8 bytes end to end,
 * cut apart by the server by offset and length and read back as text
 * (convert_from checks the UTF-8). A bytea goes over the wire as it is; each
 * body as a text parameter of its own (`ARRAY[$3, $4, …]`) cost about a
 * fifth more per batch of 800, and one text[] literal (JSON full of quotes,
 * escaped element by element by the driver, parsed character by character by
 * the server) more again.
 */
export async function insertBodies(db: Kysely<LedgerSchema>, rows: ReadonlyArray<{ notification_id: number; received_at: number; body: string }>): Promise<void> {
  if (rows.length === 0) return;
  const bytes = rows.map((r) => Buffer.from(r.body, 'utf8'));
  const offsets: number[] = [];
  let at = 1;
  for (const b of bytes) {
    offsets.push(at);
    at += b.length;
  }
  await sql`INSERT INTO notification_bodies (notification_id, received_at, body)
    SELECT r.id, r.at, convert_from(substring(${Buffer.concat(bytes, at - 1)}::bytea FROM r.off FOR r.len), 'UTF8')
    FROM unnest(${rows.map((r) => r.notification_id)}::int8[], ${rows.map((r) => r.received_at)}::int8[], ${offsets}::int4[], ${bytes.map((b) => b.length)}::int4[]) AS r(id, at, off, len)`.execute(db);
}
