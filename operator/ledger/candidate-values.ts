// A candidate of attribution (attribute.ts) as an array of values rather than
// a row object: the trace's columns but the slot, in TRACE_FIELDS' order, as
// node:sqlite hands a row over (sqlite-driver.ts, eachRow). Attribution at
// 10M reads some 700,000 candidates for 100,000 lines; made into its holder
// at once, a candidate leaves no row object for the garbage collector to copy
// until the chunk is answered. No database code.
import { TRACE_FIELDS, placesIn, type Field } from './trace-packed.ts';
import { holderOf, plainInstance, usualHolder, type HolderSource } from './trace-holder.ts';
import type { Holder } from './trace.ts';

/** What attribution reads of each candidate. */
export const CANDIDATE_FIELDS: readonly Field[] = TRACE_FIELDS.filter((f) => f.name !== 'slot');

/** The candidate's select list, each column under its field's name. */
export const CANDIDATE_COLUMNS = CANDIDATE_FIELDS.map((f) => `${f.sql} AS ${f.name}`).join(', ');

const [CLOUD, KIND, VALID_FROM, VALID_TO, FROM_CERTAIN, TO_CERTAIN] = placesIn(CANDIDATE_FIELDS, ['cloud', 'kind', 'valid_from', 'valid_to', 'from_certain', 'to_certain']);

/** The places of the columns attribution sorts and sweeps by. */
export const CANDIDATE_PLACE = { cloud: CLOUD, kind: KIND, validFrom: VALID_FROM, validTo: VALID_TO, fromCertain: FROM_CERTAIN, toCertain: TO_CERTAIN } as const;

const [NETWORK, PORT, MAC, PROJECT, INSTANCE_ID, NAME, INSTANCE_PROJECT, USER_ID, HOST, DELETED_AT, USER_NAME, PROJECT_NAME, GONE_AFTER, GONE_BY] =
  placesIn(CANDIDATE_FIELDS, ['network', 'port', 'mac', 'project', 'instance_id', 'name', 'instance_project', 'user_id', 'host', 'deleted_at', 'user_name',
    'project_name', 'gone_after', 'gone_by']);

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
  const project = v[o + PROJECT] as string | null;
  const instanceProject = v[o + INSTANCE_PROJECT] as string | null;
  if (!plainInstance(v[o + GONE_AFTER], v[o + GONE_BY], v[o + USER_NAME], v[o + PROJECT_NAME])) {
    const row = candidateSource(v, o);
    return holderOf({ ...row, cloud, kind, instance_project: instanceProject === project ? project : instanceProject });
  }
  return usualHolder(cloud, kind, v[o + NETWORK] as string | null, v[o + PORT] as string | null, v[o + MAC] as string | null, project,
    v[o + VALID_FROM] as number, v[o + VALID_TO] as number | null, v[o + INSTANCE_ID] as string | null, v[o + NAME] as string | null,
    instanceProject === project ? project : instanceProject, v[o + USER_ID] as string | null, v[o + HOST] as string | null, v[o + DELETED_AT] as number | null);
}
