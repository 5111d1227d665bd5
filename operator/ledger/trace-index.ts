// The trace index (migration 0014): "who held address A at time T" reads only
// the holdings near T.
//
// An interval [valid_from, valid_to) holds T when valid_from <= T < valid_to.
// An index on (address, valid_from) bounds valid_from from above only, so a
// busy private address (10.0.0.5 in thousands of tenant networks, some ten
// thousand intervals) read every interval that began before T and dropped the
// ones that had ended. Here intervals are sorted into classes by length: class
// k holds the closed ones no longer than SPAN_BOUNDS[k], the last class the
// open ones and any longer (an open interval that began by T holds T). An
// interval of class k that holds T began after T - SPAN_BOUNDS[k], so each class is one index range (address, class,
// valid_from in (T - bound, T]), and what such a range reads beyond the
// holders is bounded by the few intervals of that length which began and ended
// in the window. The class is an expression of the row's own columns, so the
// index keeps itself up to date: no writer has anything to maintain.
//
// Plain strings, without the query builder: trace-direct.ts uses them too.
import { PREPARED } from './prepared.ts';

const DAY = 86_400_000;

/**
 * Upper bounds of the closed classes' lengths (ms): a day, then four times
 * longer each, up to 1,024 days. Fewer classes mean fewer index ranges per
 * question; coarser ones, more entries read in each (read in index order and
 * dropped on the index's own valid_to, which costs far less than a range): a
 * day's window of the short intervals of even the busiest address holds a
 * handful of them. Migration 0014 builds the index from these: changing them
 * needs a migration that rebuilds it (answers stay right without one, since
 * the class is computed per row, but no index serves the query any more).
 */
export const SPAN_BOUNDS: readonly number[] = Array.from({ length: 6 }, (_, k) => DAY * 4 ** k);

/** The last class (open, or longer than every bound): no lower bound on valid_from that a real time could miss (2^62 ms). */
export const UNBOUNDED = '4611686018427387904';

/** The class of an interval, as the index has it; `a` qualifies the columns ('a.' or ''). The text must stay as it is: the engines match it against the index's expression. */
export function spanClassSql(a = ''): string {
  return `(CASE ${SPAN_BOUNDS.map((b, k) => `WHEN ${a}valid_to - ${a}valid_from <= ${b} THEN ${k}`).join(' ')} ELSE ${SPAN_BOUNDS.length} END)`;
}

/** Every class with how far before T its holders of T may have begun, as rows (cls, len). */
export const SPAN_CLASSES_SQL = `VALUES ${[...SPAN_BOUNDS.map((b, k) => `(${k}, ${b})`), `(${SPAN_BOUNDS.length}, ${UNBOUNDED})`].join(', ')}`;

/** migrations.ts's OPEN_END: the end the PostgreSQL trace index gives an open interval. */
export const OPEN_END_SQL = '9223372036854775807';

/** The index's columns on each engine; on PostgreSQL the open-or-later check is one expression, so it is an index condition. */
export function traceIndexColumns(engine: 'sqlite' | 'postgres'): string {
  return `address, ${spanClassSql()}, valid_from, ${engine === 'postgres' ? `(COALESCE(valid_to, ${OPEN_END_SQL}))` : 'valid_to'}`;
}

/**
 * The interval columns a trace or an attribution reads besides the index's
 * key (migration 0017), carried in the index so that a holder's interval is
 * read from the index range itself: at 10M intervals a private address has up
 * to some 330 holders, and each one's row read at random from the table was
 * most of a question's time. On PostgreSQL valid_to is carried too (the key
 * has only its COALESCE) and so is id (SQLite's is the rowid every index
 * holds). A column the trace starts to read later must be added here by a
 * migration that rebuilds the index, or the engines go back to the table for
 * every holder (answers stay right).
 */
export const TRACE_CARRIED_COLUMNS = ['cloud', 'kind', 'slot', 'network', 'port', 'mac', 'project', 'instance_id', 'from_certain', 'to_certain'] as const;

/** The instances columns a trace read from the instances_trace index (migration 0017), and which migration 0018 copies onto the interval instead; migration 0020 drops that index. */
export const INSTANCE_CARRIED_COLUMNS = ['name', 'project', 'user_id', 'host', 'deleted_at', 'user_name', 'user_name_source', 'user_name_at',
  'project_name', 'project_name_source', 'project_name_at', 'gone_after', 'gone_by'] as const;

/** The carried instance columns that are bigints (epoch ms); the others are text. */
export const INSTANCE_BIGINT_COLUMNS: readonly string[] = ['deleted_at', 'user_name_at', 'project_name_at', 'gone_after', 'gone_by'];

/** An instance column's copy on address_intervals (migration 0018, instance-copies.ts). */
export const copyOf = <C extends string>(column: C): `instance_${C}` => `instance_${column}`;

/**
 * Migration 0018's trace index: 0017's, carrying the copies of the holder's
 * instance columns too, so that a holder is one index entry and no probe
 * into instances (instance-copies.ts).
 */
export function traceCopyingIndexSql(engine: 'sqlite' | 'postgres'): string {
  const key = traceIndexColumns(engine);
  const carried = [...TRACE_CARRIED_COLUMNS, ...INSTANCE_CARRIED_COLUMNS.map(copyOf)].join(', ');
  return engine === 'postgres'
    ? `CREATE INDEX address_intervals_trace ON address_intervals (${key}) INCLUDE (valid_to, id, ${carried})`
    : `CREATE INDEX address_intervals_trace ON address_intervals (${key}, ${carried})`;
}

/** Migration 0017's trace index: 0014's key, then the carried columns (INCLUDE on PostgreSQL, trailing key columns on SQLite, which has no INCLUDE). */
export function traceCoveringIndexSql(engine: 'sqlite' | 'postgres'): string {
  const key = traceIndexColumns(engine);
  return engine === 'postgres'
    ? `CREATE INDEX address_intervals_trace ON address_intervals (${key}) INCLUDE (valid_to, id, ${TRACE_CARRIED_COLUMNS.join(', ')})`
    : `CREATE INDEX address_intervals_trace ON address_intervals (${key}, ${TRACE_CARRIED_COLUMNS.join(', ')})`;
}

/**
 * Migration 0017's instances index: the primary key's columns, then the
 * carried ones of those the table has (`has`): a ledger that takes 0005, which
 * adds the names, after 0017 gets an index that carries fewer columns, and
 * its traces read the rest from the table (right, only slower).
 */
export function instancesCoveringIndexSql(engine: 'sqlite' | 'postgres', has: (column: string) => boolean): string {
  const carried = INSTANCE_CARRIED_COLUMNS.filter(has).join(', ');
  if (carried === '') return 'CREATE INDEX instances_trace ON instances (cloud, instance_id)';
  return engine === 'postgres'
    ? `CREATE INDEX instances_trace ON instances (cloud, instance_id) INCLUDE (${carried})`
    : `CREATE INDEX instances_trace ON instances (cloud, instance_id, ${carried})`;
}

/**
 * The holders of one address at one time, each engine in the form its trace
 * index answers: one index range per class. Parameters: the address, then
 * the time (`t`) as often as `?` / `$2` appears, then the cloud if `withCloud`.
 * The select list is the caller's; the interval is `a` (its instance's
 * columns are its copies, instance-copies.ts), the classes `c`.
 */
export function holdersAtSql(engine: 'sqlite' | 'postgres', columns: string, withCloud: boolean): { text: string; order: Array<'address' | 't' | 'cloud'> } {
  if (engine === 'postgres') {
    // LATERAL, kept from being flattened by OFFSET 0: one index range per class, whatever the statistics say.
    return {
      text: `SELECT ${columns}
    FROM (${SPAN_CLASSES_SQL}) AS c(cls, len)
    CROSS JOIN LATERAL (SELECT * FROM address_intervals AS a
      WHERE a.address = $1 AND ${spanClassSql('a.')} = c.cls AND a.valid_from > $2::bigint - c.len AND a.valid_from <= $2::bigint
        AND COALESCE(a.valid_to, ${OPEN_END_SQL}) > $2::bigint${withCloud ? ' AND a.cloud = $3' : ''} OFFSET 0) AS a
    ORDER BY a.cloud, a.kind, a.valid_from, a.id`,
      order: withCloud ? ['address', 't', 'cloud'] : ['address', 't'],
    };
  }
  // CROSS JOIN: SQLite loops over the classes and looks each up in the index.
  return {
    text: `WITH c(cls, len) AS (${SPAN_CLASSES_SQL})
    SELECT ${columns}
    FROM c CROSS JOIN address_intervals AS a
    WHERE a.address = ? AND ${spanClassSql('a.')} = c.cls AND a.valid_from > ? - c.len AND a.valid_from <= ?
      AND (a.valid_to IS NULL OR a.valid_to > ?)${withCloud ? ' AND a.cloud = ?' : ''}
    ORDER BY a.cloud, a.kind, a.valid_from, a.id`,
    order: withCloud ? ['address', 't', 't', 't', 'cloud'] : ['address', 't', 't', 't'],
  };
}

/** An address interval's own columns, as the trace index carries them. */
export interface IntervalColumns {
  cloud: string;
  kind: string;
  network: string | null;
  port: string | null;
  mac: string | null;
  project: string | null;
  valid_from: number;
  valid_to: number | null;
  instance_id: string | null;
}

/** The columns every holder query returns: the interval and the instance it names. */
export interface HolderRowBase extends IntervalColumns {
  name: string | null;
  instance_project: string | null;
  user_id: string | null;
  host: string | null;
  deleted_at: number | null;
}

/**
 * The copies of the instance's columns on the interval `a`, each under the
 * name the holder builder reads (trace-holder.ts's InstanceSource): the
 * instance's own, but `instance_project` for its project (the interval has
 * one of its own).
 */
export const INSTANCE_COPY_SELECT = INSTANCE_CARRIED_COLUMNS
  .map((c) => (c === 'project' ? `a.${copyOf(c)}` : `a.${copyOf(c)} AS ${c}`)).join(', ');

/** The select list of the trace: the interval `a` and the copies of its instance's columns. */
export const TRACE_COLUMNS = `a.cloud, a.slot, a.kind, a.network, a.port, a.mac, a.project, a.valid_from, a.valid_to, a.instance_id,
      a.from_certain, a.to_certain, ${INSTANCE_COPY_SELECT}`;

/**
 * The trace query and its parameters, for each engine (traceQuery sends the
 * same). On PostgreSQL a named prepared statement (prepared.ts). `columns`:
 * the select list, TRACE_COLUMNS unless given (trace-packed.ts packs them).
 */
export function traceStatement(engine: 'sqlite' | 'postgres', address: string, t: number, cloud: string | undefined, columns: string = TRACE_COLUMNS): { text: string; parameters: Array<string | number> } {
  const { text, order } = traceText(engine, cloud !== undefined, columns);
  return { text, parameters: order.map((p) => (p === 'address' ? address : p === 't' ? t : (cloud as string))) };
}

// Built once per form: the same string each time, so that the statement caches keyed by it (db.ts's prepared names, the SQLite driver's statements) find it by a hash already computed.
const traceTexts = new Map<string, Map<string, { text: string; order: Array<'address' | 't' | 'cloud'> }>>();

function traceText(engine: 'sqlite' | 'postgres', withCloud: boolean, columns: string): { text: string; order: Array<'address' | 't' | 'cloud'> } {
  const key = `${engine}|${withCloud}`;
  let forms = traceTexts.get(columns);
  if (forms === undefined) {
    forms = new Map();
    traceTexts.set(columns, forms);
  }
  let q = forms.get(key);
  if (q === undefined) {
    const { text: body, order } = holdersAtSql(engine, columns, withCloud);
    q = { text: engine === 'postgres' ? `${PREPARED}${body}` : body, order };
    forms.set(key, q);
  }
  return q;
}
