// One holder of an answer from its interval row and the copies of its
// instance's columns on it: traceAddress, the direct path (trace-direct.ts)
// and attribution build it the same way. No database code.
//
// A busy private address at 10M intervals has up to some 330 holders, and
// building them was a good part of such an answer's time: each holder made
// three Dates and a dozen small objects to spread. The usual holder (certain
// bounds, no names, not gone) is written as one object literal here, its
// times by isoTime; the others take the general path. Both give the same
// properties in the same order, so the JSON is unchanged.
import type { Holder } from './trace.ts';
import { boundsOf, goneBetween } from './bounds.ts';
import { isoTime } from './iso-time.ts';
import { ownerNames, type OwnerNameColumns } from './owner-names.ts';
import type { IntervalColumns } from './trace-index.ts';

/** The interval's side of a holder; bigints may come as strings from a driver that does not parse them. */
export interface IntervalSource extends Omit<IntervalColumns, 'valid_from' | 'valid_to'> {
  valid_from: number | string;
  valid_to: number | string | null;
  from_certain?: number | string | null | undefined;
  to_certain?: number | string | null | undefined;
}

/** The instance's side of a holder (a column absent or null reads as null). */
export interface InstanceSource extends OwnerNameColumns {
  name?: string | null | undefined;
  instance_project?: string | null | undefined;
  user_id?: string | null | undefined;
  host?: string | null | undefined;
  deleted_at?: number | string | null | undefined;
  gone_after?: number | string | null | undefined;
  gone_by?: number | string | null | undefined;
}

/** An interval and the copies of its instance's columns in one row (instance-copies.ts), as the trace and attribution read them. */
export type HolderSource = IntervalSource & InstanceSource;

const num = (v: number | string | null | undefined): number | null => (v === null || v === undefined ? null : Number(v));

const timeOrNull = (v: number | string | null | undefined): string | null => (v === null || v === undefined ? null : isoTime(Number(v)));

function instanceOf(i: InstanceSource, id: string, project: string | null): NonNullable<Holder['instance']> {
  const gone = i.gone_after !== null && i.gone_after !== undefined && i.gone_by !== null && i.gone_by !== undefined;
  const named = (i.user_name !== null && i.user_name !== undefined) || (i.project_name !== null && i.project_name !== undefined);
  if (!gone && !named) {
    return { id, name: i.name ?? null, project: i.instance_project ?? project, user: i.user_id ?? null, host: i.host ?? null, deletedAt: timeOrNull(i.deleted_at) };
  }
  return {
    id, name: i.name ?? null, project: i.instance_project ?? project, user: i.user_id ?? null,
    ...ownerNames(i),
    host: i.host ?? null, deletedAt: timeOrNull(i.deleted_at), ...goneBetween(num(i.gone_after), num(i.gone_by)),
  };
}

/**
 * The usual holder: certain bounds, and an instance (if any) without names
 * or a gone window. Its columns one by one, so that a caller that holds them
 * apart (trace-packed.ts) builds no row object first; holderOf builds the
 * same holders through it.
 */
export function usualHolder(cloud: string, kind: string, network: string | null, port: string | null, mac: string | null, project: string | null,
  validFrom: number, validTo: number | null, instanceId: string | null, name: string | null, instanceProject: string | null, userId: string | null,
  host: string | null, deletedAt: number | null): Holder {
  return {
    cloud, kind, network, port, mac, project, from: isoTime(validFrom), to: validTo === null ? null : isoTime(validTo),
    instance: instanceId === null ? null : {
      id: instanceId, name, project: instanceProject ?? project, user: userId, host, deletedAt: deletedAt === null ? null : isoTime(deletedAt),
    },
  };
}

const given = (v: unknown): boolean => v !== null && v !== undefined;

/** Whether an instance's copies make the usual holder's instance: no owner names, no gone window (both ends). Absent reads as null. */
export const plainInstance = (goneAfter: unknown, goneBy: unknown, userName: unknown, projectName: unknown): boolean =>
  !(given(goneAfter) && given(goneBy)) && !given(userName) && !given(projectName);

/** The holder an interval row with its instance's copies makes at `at` (without `at`, no uncertainty flag). */
export function holderOf(r: HolderSource, at?: number): Holder {
  const fromCertain = num(r.from_certain);
  const toCertain = num(r.to_certain);
  if (fromCertain === null && toCertain === null && plainInstance(r.gone_after, r.gone_by, r.user_name, r.project_name)) {
    return usualHolder(r.cloud, r.kind, r.network, r.port, r.mac, r.project, Number(r.valid_from), num(r.valid_to), r.instance_id,
      r.name ?? null, r.instance_project ?? null, r.user_id ?? null, r.host ?? null, num(r.deleted_at));
  }
  const instance = r.instance_id === null ? null : instanceOf(r, r.instance_id, r.project);
  if (fromCertain === null && toCertain === null) {
    return {
      cloud: r.cloud, kind: r.kind, network: r.network, port: r.port, mac: r.mac, project: r.project,
      from: isoTime(Number(r.valid_from)), to: timeOrNull(r.valid_to), instance,
    };
  }
  return {
    cloud: r.cloud, kind: r.kind, network: r.network, port: r.port, mac: r.mac, project: r.project,
    ...boundsOf({ valid_from: Number(r.valid_from), valid_to: num(r.valid_to), from_certain: fromCertain, to_certain: toCertain }, at),
    instance,
  };
}
