// On PostgreSQL the trace's holder rows come packed: the 25 columns of each in
// one text (format() with a separator) and its count of nulls, split apart
// here. A busy private address at 10M intervals has up to some 330 holders,
// and node-postgres decoding 25 fields a row (one string each, then an object
// of 25 properties) cost more client time than the server spent answering;
// one field a row and a split costs a third of that, and the server formats
// the columns as text either way. SQLite returns values, not text: it keeps
// the plain columns.
//
// The packing is checked on every row rather than trusted: a value holding
// the separator gives too many parts, an empty text where a null is expected
// gives more empty parts than nulls. Either makes unpackRows return
// undefined, and the caller asks again with the plain columns (trace.ts,
// trace-direct.ts). No database code.
import { INSTANCE_BIGINT_COLUMNS, TRACE_COLUMNS } from './trace-index.ts';
import { holderOf, usualHolder, type HolderSource } from './trace-holder.ts';
import type { Holder } from './trace.ts';

/** The unit separator: no identifier or name the clouds give is expected to hold it (and one that does is detected). */
const SEPARATOR = '\x1f';

/** A column of TRACE_COLUMNS: its SQL, the name the holder builder reads it by, and whether it is a bigint (epoch ms). */
export interface Field {
  sql: string;
  name: string;
  bigint: boolean;
}

const BIGINTS: ReadonlySet<string> = new Set(['valid_from', 'valid_to', 'from_certain', 'to_certain', ...INSTANCE_BIGINT_COLUMNS]);

/** TRACE_COLUMNS itself, read apart, so that the packed and the plain rows cannot drift. */
export const TRACE_FIELDS: readonly Field[] = TRACE_COLUMNS.split(',').map((c) => {
  const m = /^(a\.\w+)(?: AS (\w+))?$/.exec(c.trim());
  if (m === null) throw new Error(`unexpected trace column "${c.trim()}"`);
  const sql = m[1] as string;
  const name = m[2] ?? sql.slice('a.'.length);
  return { sql, name, bigint: BIGINTS.has(name) };
});

/** The packed select list: `packed`, the columns as text with nulls empty; `nulls`, how many were null. */
export const PACKED_TRACE_COLUMNS = `format(E'${TRACE_FIELDS.map(() => '%s').join('\\x1f')}', ${TRACE_FIELDS.map((f) => f.sql).join(', ')}) AS packed,
      num_nulls(${TRACE_FIELDS.map((f) => f.sql).join(', ')}) AS nulls`;

export interface PackedRow {
  packed: string;
  nulls: number;
}

/** A trace row as the plain columns give it (with a driver that reads bigints as numbers). */
export type TraceFields = HolderSource & { slot: string; cloud: string; kind: string };

const COUNT = TRACE_FIELDS.length;

/** Where the named columns sit among `fields` (checked when the module loads: a name missing is a programming error). */
export function placesIn<const N extends readonly string[]>(fields: readonly Field[], names: N): { [K in keyof N]: number } {
  return names.map((name) => {
    const i = fields.findIndex((f) => f.name === name);
    if (i < 0) throw new Error(`a column "${name}" that the select list (${fields.map((f) => f.name).join(', ')}) does not have`);
    return i;
  }) as { [K in keyof N]: number };
}

// Where each column sits in a packed row, from TRACE_COLUMNS itself.
const [CLOUD, KIND, NETWORK, PORT, MAC, PROJECT, VALID_FROM, VALID_TO, INSTANCE_ID, FROM_CERTAIN, TO_CERTAIN, NAME, INSTANCE_PROJECT, USER_ID, HOST,
  DELETED_AT, USER_NAME, PROJECT_NAME, GONE_AFTER, GONE_BY] = placesIn(TRACE_FIELDS, ['cloud', 'kind', 'network', 'port', 'mac', 'project', 'valid_from', 'valid_to', 'instance_id',
  'from_certain', 'to_certain', 'name', 'instance_project', 'user_id', 'host', 'deleted_at', 'user_name', 'project_name', 'gone_after', 'gone_by']);

/** A packed row's parts, or undefined where they cannot be told apart exactly (see above). */
function parts(row: PackedRow): string[] | undefined {
  const p = row.packed.split(SEPARATOR);
  if (p.length !== COUNT) return undefined;
  let empty = 0;
  for (let i = 0; i < COUNT; i++) if (p[i] === '') empty += 1;
  return empty === Number(row.nulls) ? p : undefined;
}

/** The rows unpacked, or undefined when any of them cannot be told apart exactly (see above). */
export function unpackRows(rows: readonly PackedRow[]): TraceFields[] | undefined {
  const out = new Array<TraceFields>(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const r = unpackRow(rows[i] as PackedRow);
    if (r === undefined) return undefined;
    out[i] = r;
  }
  return out;
}

/**
 * The holders at `at` straight from the packed rows, without a row object
 * each: the usual ones by usualHolder, the others by holderOf on the
 * unpacked row. Undefined where unpackRows would refuse, or where a holder
 * is a router's SNAT address (its caller needs the rows: trace.ts).
 */
export function packedHolders(rows: readonly PackedRow[], at: number): Holder[] | undefined {
  const out = new Array<Holder>(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const p = parts(rows[i] as PackedRow);
    if (p === undefined || p[KIND] === 'router-gateway') return undefined;
    // Uncertain bounds, a gone window (both ends), names: the general path.
    if (p[FROM_CERTAIN] !== '' || p[TO_CERTAIN] !== '' || (p[GONE_AFTER] !== '' && p[GONE_BY] !== '') || p[USER_NAME] !== '' || p[PROJECT_NAME] !== '') {
      out[i] = holderOf(fieldsOf(p), at);
    } else {
      out[i] = usualHolder(p[CLOUD] as string, p[KIND] as string, text(p[NETWORK]), text(p[PORT]), text(p[MAC]), text(p[PROJECT]), Number(p[VALID_FROM]),
        epochMs(p[VALID_TO]), text(p[INSTANCE_ID]), text(p[NAME]), text(p[INSTANCE_PROJECT]), text(p[USER_ID]), text(p[HOST]), epochMs(p[DELETED_AT]));
    }
  }
  return out;
}

export function unpackRow(row: PackedRow): TraceFields | undefined {
  const p = parts(row);
  return p === undefined ? undefined : fieldsOf(p);
}

/** The plain row: every column by its name, bigints as numbers, empty parts as nulls. */
function fieldsOf(p: readonly string[]): TraceFields {
  const row: Record<string, string | number | null> = {};
  for (let i = 0; i < COUNT; i++) {
    const f = TRACE_FIELDS[i] as Field;
    row[f.name] = f.bigint ? epochMs(p[i]) : text(p[i]);
  }
  return row as unknown as TraceFields;
}

const text = (v: string | undefined): string | null => (v === '' || v === undefined ? null : v);
const epochMs = (v: string | undefined): number | null => (v === '' || v === undefined ? null : Number(v));
