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

/** A packed select list: `packed`, the fields as text with nulls empty; `nulls`, how many were null. */
function packedSelect(fields: readonly Field[]): string {
  return `format(E'${fields.map(() => '%s').join('\\x1f')}', ${fields.map((f) => f.sql).join(', ')}) AS packed,
      num_nulls(${fields.map((f) => f.sql).join(', ')}) AS nulls`;
}

/** The trace's columns packed. */
export const PACKED_TRACE_COLUMNS = packedSelect(TRACE_FIELDS);

/** What attribution reads of each candidate (attribute.ts): the trace's columns but the slot. */
export const CANDIDATE_FIELDS: readonly Field[] = TRACE_FIELDS.filter((f) => f.name !== 'slot');

/** The candidate's columns packed. */
export const PACKED_CANDIDATE_COLUMNS = packedSelect(CANDIDATE_FIELDS);

/** The candidate's columns plain, each under its field's name. */
export const CANDIDATE_COLUMNS = CANDIDATE_FIELDS.map((f) => `${f.sql} AS ${f.name}`).join(', ');

export interface PackedRow {
  packed: string;
  nulls: number;
}

/** A trace row as the plain columns give it (with a driver that reads bigints as numbers). */
export type TraceFields = HolderSource & { slot: string; cloud: string; kind: string };

const COUNT = TRACE_FIELDS.length;

/** Where a column sits in a packed row, from TRACE_COLUMNS itself. */
function place(name: string): number {
  const i = TRACE_FIELDS.findIndex((f) => f.name === name);
  if (i < 0) throw new Error(`trace-packed.ts reads a trace column "${name}" that TRACE_COLUMNS does not have`);
  return i;
}
const places = <const N extends readonly string[]>(names: N) => names.map(place) as { [K in keyof N]: number };
const [CLOUD, KIND, NETWORK, PORT, MAC, PROJECT, VALID_FROM, VALID_TO, INSTANCE_ID, FROM_CERTAIN, TO_CERTAIN, NAME, INSTANCE_PROJECT, USER_ID, HOST,
  DELETED_AT, USER_NAME, PROJECT_NAME, GONE_AFTER, GONE_BY] = places(['cloud', 'kind', 'network', 'port', 'mac', 'project', 'valid_from', 'valid_to', 'instance_id',
  'from_certain', 'to_certain', 'name', 'instance_project', 'user_id', 'host', 'deleted_at', 'user_name', 'project_name', 'gone_after', 'gone_by']);

/** A packed row's parts, or undefined where they cannot be told apart exactly (see above). */
function parts(row: PackedRow, count = COUNT): string[] | undefined {
  const p = row.packed.split(SEPARATOR);
  if (p.length !== count) return undefined;
  let empty = 0;
  for (let i = 0; i < count; i++) if (p[i] === '') empty += 1;
  return empty === Number(row.nulls) ? p : undefined;
}

/** A value as a driver returns it: text, a number (bigints as epoch ms), or null. */
export type Value = string | number | null;

/**
 * A packed candidate row (PACKED_CANDIDATE_COLUMNS) as the values of
 * CANDIDATE_FIELDS in their order, as node:sqlite would return them, or
 * undefined where it cannot be told apart exactly (see above).
 */
export function candidateValues(row: PackedRow): Value[] | undefined {
  const p: Value[] | undefined = parts(row, CANDIDATE_FIELDS.length);
  if (p === undefined) return undefined;
  for (let i = 0; i < p.length; i++) {
    const v = p[i] as string;
    p[i] = v === '' ? null : (CANDIDATE_FIELDS[i] as Field).bigint ? Number(v) : v;
  }
  return p;
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

/** Where a column sits among CANDIDATE_FIELDS. */
function candidatePlace(name: string): number {
  const i = CANDIDATE_FIELDS.findIndex((f) => f.name === name);
  if (i < 0) throw new Error(`trace-packed.ts reads a candidate column "${name}" that CANDIDATE_FIELDS does not have`);
  return i;
}

/** The places of the columns attribution sorts and sweeps by. */
export const CANDIDATE_PLACE = {
  cloud: candidatePlace('cloud'), kind: candidatePlace('kind'), validFrom: candidatePlace('valid_from'), validTo: candidatePlace('valid_to'),
  fromCertain: candidatePlace('from_certain'), toCertain: candidatePlace('to_certain'),
} as const;

const candidatePlaces = <const N extends readonly string[]>(names: N) => names.map(candidatePlace) as { [K in keyof N]: number };
const [C_NETWORK, C_PORT, C_MAC, C_PROJECT, C_INSTANCE_ID, C_NAME, C_INSTANCE_PROJECT, C_USER_ID, C_HOST, C_DELETED_AT, C_USER_NAME, C_PROJECT_NAME,
  C_GONE_AFTER, C_GONE_BY] = candidatePlaces(['network', 'port', 'mac', 'project', 'instance_id', 'name', 'instance_project', 'user_id', 'host', 'deleted_at',
  'user_name', 'project_name', 'gone_after', 'gone_by']);

/** The row of a candidate's values (CANDIDATE_FIELDS' from v[o] on), by name, as holderOf reads it. */
export function candidateSource(v: readonly unknown[], o: number): HolderSource {
  const row: Record<string, unknown> = {};
  for (let i = 0; i < CANDIDATE_FIELDS.length; i++) row[(CANDIDATE_FIELDS[i] as Field).name] = v[o + i];
  return row as unknown as HolderSource;
}

/**
 * The holder a candidate's values (CANDIDATE_FIELDS' from v[o] on) make, whose bounds are certain, so that
 * it reads the same at every instant: the usual one without a row object, the others by holderOf. The
 * cloud and kind are given, as the caller keeps one string of each; so is the interval's project for the
 * instance's where the two are equal.
 */
export function certainCandidateHolder(v: readonly unknown[], o: number, cloud: string, kind: string): Holder {
  const project = v[o + C_PROJECT] as string | null;
  const instanceProject = v[o + C_INSTANCE_PROJECT] as string | null;
  if ((v[o + C_GONE_AFTER] !== null && v[o + C_GONE_BY] !== null) || v[o + C_USER_NAME] !== null || v[o + C_PROJECT_NAME] !== null) {
    const row = candidateSource(v, o);
    return holderOf({ ...row, cloud, kind, instance_project: instanceProject === project ? project : instanceProject });
  }
  const deletedAt = v[o + C_DELETED_AT] as number | null;
  return usualHolder(cloud, kind, v[o + C_NETWORK] as string | null, v[o + C_PORT] as string | null, v[o + C_MAC] as string | null, project,
    v[o + CANDIDATE_PLACE.validFrom] as number, v[o + CANDIDATE_PLACE.validTo] as number | null, v[o + C_INSTANCE_ID] as string | null,
    v[o + C_NAME] as string | null, instanceProject === project ? project : instanceProject, v[o + C_USER_ID] as string | null, v[o + C_HOST] as string | null,
    deletedAt);
}
