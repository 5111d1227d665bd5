// A candidate of attribution (attribute.ts) as an array of values rather than
// a row object: the trace's columns but the slot, in TRACE_FIELDS' order, as
// node:sqlite hands a row over (sqlite-driver.ts, eachRow). Attribution at
// 10M reads some 700,000 candidates for 100,000 lines; made into its holder
// at once, a candidate leaves no row object for the garbage collector to copy
// until the chunk is answered. No database code.
import { TRACE_FIELDS, type Field } from './trace-packed.ts';
import { holderOf, usualHolder, type HolderSource } from './trace-holder.ts';
import type { Holder } from './trace.ts';

/** What attribution reads of each candidate. */
export const CANDIDATE_FIELDS: readonly Field[] = TRACE_FIELDS.filter((f) => f.name !== 'slot');

/** The candidate's select list, each column under its field's name. */
export const CANDIDATE_COLUMNS = CANDIDATE_FIELDS.map((f) => `${f.sql} AS ${f.name}`).join(', ');

/** Where a column sits among CANDIDATE_FIELDS. */
function candidatePlace(name: string): number {
  const i = CANDIDATE_FIELDS.findIndex((f) => f.name === name);
  if (i < 0) throw new Error(`candidate-values.ts reads a candidate column "${name}" that CANDIDATE_FIELDS does not have`);
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
