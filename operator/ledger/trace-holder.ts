// One holder of a trace answer from its row: traceAddress and the direct path
// (trace-direct.ts) build it the same way. No database code.
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

/** An interval and its instance as the trace reads them; bigints may come as strings from a driver that does not parse them. */
export interface HolderSource extends Omit<IntervalColumns, 'valid_from' | 'valid_to'>, OwnerNameColumns {
  valid_from: number | string;
  valid_to: number | string | null;
  name?: string | null | undefined;
  instance_project?: string | null | undefined;
  user_id?: string | null | undefined;
  host?: string | null | undefined;
  deleted_at?: number | string | null | undefined;
  from_certain?: number | string | null | undefined;
  to_certain?: number | string | null | undefined;
  gone_after?: number | string | null | undefined;
  gone_by?: number | string | null | undefined;
}

const num = (v: number | string | null | undefined): number | null => (v === null || v === undefined ? null : Number(v));

const timeOrNull = (v: number | string | null | undefined): string | null => (v === null || v === undefined ? null : isoTime(Number(v)));

function instanceOf(r: HolderSource, id: string): NonNullable<Holder['instance']> {
  const gone = r.gone_after !== null && r.gone_after !== undefined && r.gone_by !== null && r.gone_by !== undefined;
  const named = (r.user_name !== null && r.user_name !== undefined) || (r.project_name !== null && r.project_name !== undefined);
  if (!gone && !named) {
    return { id, name: r.name ?? null, project: r.instance_project ?? r.project, user: r.user_id ?? null, host: r.host ?? null, deletedAt: timeOrNull(r.deleted_at) };
  }
  return {
    id, name: r.name ?? null, project: r.instance_project ?? r.project, user: r.user_id ?? null,
    ...ownerNames(r),
    host: r.host ?? null, deletedAt: timeOrNull(r.deleted_at), ...goneBetween(num(r.gone_after), num(r.gone_by)),
  };
}

export function holderOf(r: HolderSource, at: number): Holder {
  const instance = r.instance_id === null ? null : instanceOf(r, r.instance_id);
  const fromCertain = num(r.from_certain);
  const toCertain = num(r.to_certain);
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
