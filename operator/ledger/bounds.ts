// How an interval's bounds read in an answer: the certain times, the
// uncertainty windows observed facts leave (ledger/observe.ts), and whether
// the asked time falls in one. No database code: the direct trace path uses it.
import type { Holder } from './trace.ts';
import { isoTime } from './iso-time.ts';

const iso = (ms: number | null): string | null => (ms === null ? null : isoTime(ms));

/** The columns of an interval's bounds, as stored. */
export interface Bounds {
  valid_from: number;
  valid_to: number | null;
  from_certain?: number | null | undefined;
  to_certain?: number | null | undefined;
}

/** An interval's bounds as the trace shows them: certain times, uncertainty windows, and whether `at` falls in one. */
export function boundsOf(b: Bounds, at?: number): Pick<Holder, 'from' | 'to' | 'fromUncertainSince' | 'toUncertainUntil' | 'uncertain'> {
  const vf = Number(b.valid_from);
  const vt = b.valid_to === null ? null : Number(b.valid_to);
  const fc = b.from_certain === null || b.from_certain === undefined ? undefined : Number(b.from_certain);
  const tc = b.to_certain === null || b.to_certain === undefined ? undefined : Number(b.to_certain);
  const uncertain = at !== undefined && ((fc !== undefined && at < fc) || (tc !== undefined && at > tc));
  return {
    from: isoTime(fc ?? vf),
    to: iso(tc ?? vt),
    ...(fc === undefined ? {} : { fromUncertainSince: vf < fc ? isoTime(vf) : null }),
    ...(tc === undefined || vt === null ? {} : { toUncertainUntil: isoTime(vt) }),
    ...(uncertain ? { uncertain: true as const } : {}),
  };
}

export function goneBetween(after: number | null | undefined, by: number | null | undefined): { goneBetween?: [string, string] } {
  return after === null || after === undefined || by === null || by === undefined ? {} : { goneBetween: [isoTime(Number(after)), isoTime(Number(by))] };
}
