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
interface Field {
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
const NAMES = TRACE_FIELDS.map((f) => f.name);

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
    const row = rows[i] as PackedRow;
    const p = row.packed.split(SEPARATOR);
    if (p.length !== COUNT) return undefined;
    let empty = 0;
    for (let k = 0; k < COUNT; k++) if (p[k] === '') empty += 1;
    if (empty !== Number(row.nulls) || p[2] === 'router-gateway') return undefined;
    // Uncertain bounds, a gone window (both ends), names: the general path.
    if (p[10] !== '' || p[11] !== '' || (p[23] !== '' && p[24] !== '') || p[17] !== '' || p[20] !== '') {
      out[i] = holderOf(fieldsOf(p), at);
    } else {
      out[i] = usualHolder(p[0] as string, p[2] as string, text(p[3]), text(p[4]), text(p[5]), text(p[6]), Number(p[7]), epochMs(p[8]), text(p[9]),
        text(p[12]), text(p[13]), text(p[14]), text(p[15]), epochMs(p[16]));
    }
  }
  return out;
}

export function unpackRow(row: PackedRow): TraceFields | undefined {
  const p = row.packed.split(SEPARATOR);
  if (p.length !== COUNT) return undefined;
  let empty = 0;
  for (let i = 0; i < COUNT; i++) if (p[i] === '') empty += 1;
  if (empty !== Number(row.nulls)) return undefined;
  return fieldsOf(p);
}

/** One object literal, the same shape every time (TRACE_FIELDS is checked against its order below). */
function fieldsOf(p: readonly string[]): TraceFields {
  return {
    cloud: text(p[0]), slot: text(p[1]), kind: text(p[2]), network: text(p[3]), port: text(p[4]), mac: text(p[5]), project: text(p[6]),
    valid_from: epochMs(p[7]), valid_to: epochMs(p[8]), instance_id: text(p[9]), from_certain: epochMs(p[10]), to_certain: epochMs(p[11]),
    name: text(p[12]), instance_project: text(p[13]), user_id: text(p[14]), host: text(p[15]), deleted_at: epochMs(p[16]),
    user_name: text(p[17]), user_name_source: text(p[18]), user_name_at: epochMs(p[19]),
    project_name: text(p[20]), project_name_source: text(p[21]), project_name_at: epochMs(p[22]), gone_after: epochMs(p[23]), gone_by: epochMs(p[24]),
  } as TraceFields;
}

const text = (v: string | undefined): string | null => (v === '' || v === undefined ? null : v);
const epochMs = (v: string | undefined): number | null => (v === '' || v === undefined ? null : Number(v));

const LITERAL_ORDER = ['cloud', 'slot', 'kind', 'network', 'port', 'mac', 'project', 'valid_from', 'valid_to', 'instance_id', 'from_certain', 'to_certain',
  'name', 'instance_project', 'user_id', 'host', 'deleted_at', 'user_name', 'user_name_source', 'user_name_at', 'project_name', 'project_name_source',
  'project_name_at', 'gone_after', 'gone_by'];
const BIGINT_ORDER = [7, 8, 10, 11, 16, 19, 22, 23, 24];
if (NAMES.join() !== LITERAL_ORDER.join() || TRACE_FIELDS.some((f, i) => f.bigint !== BIGINT_ORDER.includes(i))) {
  throw new Error(`trace-packed.ts reads the trace columns as ${LITERAL_ORDER.join()} (bigints at ${BIGINT_ORDER.join()}), but they are ${NAMES.join()}`);
}
