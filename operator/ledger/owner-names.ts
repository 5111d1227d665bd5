// The instance columns behind the owner's names (domain/owner-names.ts) and
// their reading into an answer. Free of the query builder: trace-direct.ts
// loads it on the fast path.
import { NAME_SOURCES, type NameSource, type OwnerNames } from '../domain/owner-names.ts';
import { isoTime } from './iso-time.ts';

/** The instance columns behind OwnerNames; `*_at` may come back as a string from a driver that does not parse bigint. */
export interface OwnerNameColumns {
  user_name?: string | null | undefined;
  user_name_source?: string | null | undefined;
  user_name_at?: number | string | null | undefined;
  project_name?: string | null | undefined;
  project_name_source?: string | null | undefined;
  project_name_at?: number | string | null | undefined;
}

/** The select list of those columns on the instance alias `i`, for hand-written SQL. */
export const OWNER_NAME_COLUMNS = 'i.user_name, i.user_name_source, i.user_name_at, i.project_name, i.project_name_source, i.project_name_at';

const isSource = (v: string): v is NameSource => (NAME_SOURCES as readonly string[]).includes(v);

interface OneName { name?: string; source?: NameSource; readAt?: string }

function one(name: string | null | undefined, source: string | null | undefined, at: number | string | null | undefined): OneName {
  if (name === null || name === undefined) return {};
  return {
    name,
    // A value this version does not know (a newer writer) is left out rather than guessed at.
    ...(source !== null && source !== undefined && isSource(source) ? { source } : {}),
    ...(at === null || at === undefined ? {} : { readAt: isoTime(Number(at)) }),
  };
}

export function ownerNames(r: OwnerNameColumns): OwnerNames {
  const u = one(r.user_name, r.user_name_source, r.user_name_at);
  const p = one(r.project_name, r.project_name_source, r.project_name_at);
  return {
    ...(u.name === undefined ? {} : { userName: u.name }), ...(u.source === undefined ? {} : { userNameSource: u.source }), ...(u.readAt === undefined ? {} : { userNameReadAt: u.readAt }),
    ...(p.name === undefined ? {} : { projectName: p.name }), ...(p.source === undefined ? {} : { projectNameSource: p.source }), ...(p.readAt === undefined ? {} : { projectNameReadAt: p.readAt }),
  };
}
