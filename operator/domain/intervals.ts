// Address intervals are derived, never edited in place: each slot (one
// floating IP, one address on one port, one OpenNebula NIC address) keeps the
// change points reported for it, and its intervals are recomputed from them.
// That makes the result independent of arrival order and of duplicates,
// because only event times decide.

/**
 * `seen` and `unseen` are observed facts from a listing of the cloud's API:
 * the holder held the slot at `at` (or no longer held it then; '' for whoever
 * held it), having started (or stopped) at some unknown time after `since`.
 */
export type ChangeOp = 'bind' | 'release' | 'release_any' | 'seen' | 'unseen';

/** One reported change of who holds a slot. */
export interface ChangePoint {
  at: number;
  /** Order among facts of the same time, ahead of the other tie-breakers (see address_changes.ord); 0 when absent. */
  ord?: number;
  /** Tie-breaker for equal times: arrival order. */
  seq: number;
  op: ChangeOp;
  /** Identity of the holder (e.g. the port for a floating IP, the instance for a fixed address). */
  holderKey: string;
  holder: HolderAttrs;
  /** For `seen`/`unseen`: the change happened after this time (the last listing that showed otherwise); null or absent: not known. */
  since?: number | null;
}

export interface HolderAttrs {
  address: string;
  kind: 'fixed' | 'floating' | 'nic' | 'router-gateway';
  instanceId: string | null;
  port: string | null;
  mac: string | null;
  network: string | null;
  project: string | null;
  messageId: string | null;
}

export interface DerivedInterval extends HolderAttrs {
  from: number;
  to: number | null;
  openedBy: string | null;
  closedBy: string | null;
  /** Set when the start is known only to lie in [from, certainFrom] (an observed fact); equal to from when no earlier bound is known. */
  certainFrom?: number | undefined;
  /** Set when the end is known only to lie in (certainTo, to]: held for certain until certainTo included. */
  certainTo?: number | undefined;
}

/** Later non-null attributes fill gaps left by earlier reports of the same holder. */
function merge(a: HolderAttrs, b: HolderAttrs): HolderAttrs {
  return {
    address: a.address,
    kind: a.kind,
    instanceId: a.instanceId ?? b.instanceId,
    port: a.port ?? b.port,
    mac: a.mac ?? b.mac,
    network: a.network ?? b.network,
    project: a.project ?? b.project,
    messageId: a.messageId,
  };
}

const OP_RANK: Record<ChangeOp, number> = { release_any: 0, release: 1, unseen: 2, bind: 3, seen: 4 };
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Event time first; equal times are ordered by the facts themselves (the
 * source's own sequence where it has one, then releases before binds, then
 * holder and message), never by arrival, so the same set
 * of facts derives the same intervals whatever order it arrived in.
 */
export function compareChanges(a: ChangePoint, b: ChangePoint): number {
  return a.at - b.at || (a.ord ?? 0) - (b.ord ?? 0) || OP_RANK[a.op] - OP_RANK[b.op] || cmp(a.holderKey, b.holderKey) || cmp(a.holder.messageId ?? '', b.holder.messageId ?? '') || a.seq - b.seq;
}

/**
 * Replays a slot's change points in event-time order:
 * - bind by the holder already holding it changes nothing (an update that does
 *   not touch the association opens no new interval);
 * - bind by another holder closes the current interval and opens one (a move
 *   in a single update);
 * - release closes the interval only if that holder is the current one (a late
 *   release of a previous holder cannot cut the next one short);
 * - release_any closes whatever is open (a disassociation or deletion that
 *   does not say from whom).
 * Zero-length intervals are dropped.
 */
export function deriveIntervals(points: readonly ChangePoint[]): DerivedInterval[] {
  const sorted = [...points].sort(compareChanges);
  const out: DerivedInterval[] = [];
  let cur: { key: string; attrs: HolderAttrs; from: number; openedBy: string | null; certainFrom?: number | undefined } | undefined;
  // The time of the latest fact replayed: an observed change happened after it.
  let last = Number.NEGATIVE_INFINITY;
  const close = (to: number, by: string | null, certainTo?: number) => {
    if (cur !== undefined && to > cur.from) {
      out.push({ ...cur.attrs, from: cur.from, to, openedBy: cur.openedBy, closedBy: by, certainFrom: cur.certainFrom, ...(certainTo === undefined ? {} : { certainTo }) });
    }
    cur = undefined;
  };
  /** The earliest time an observed change at `p` can have happened. */
  const lowerBound = (p: ChangePoint): number => Math.min(p.at, Math.max(p.since ?? Number.NEGATIVE_INFINITY, last, cur?.from ?? Number.NEGATIVE_INFINITY));
  for (const p of sorted) {
    if (p.op === 'bind') {
      if (cur !== undefined && cur.key === p.holderKey) {
        cur.attrs = merge(cur.attrs, p.holder);
      } else {
        close(p.at, p.holder.messageId);
        cur = { key: p.holderKey, attrs: p.holder, from: p.at, openedBy: p.holder.messageId };
      }
    } else if (p.op === 'seen') {
      // Agreeing with what the facts already say changes nothing: an exact start stays exact.
      if (cur !== undefined && cur.key === p.holderKey) {
        cur.attrs = merge(cur.attrs, p.holder);
      } else {
        let from = lowerBound(p);
        if (!Number.isFinite(from)) from = p.at;
        close(p.at, p.holder.messageId, from);
        cur = { key: p.holderKey, attrs: p.holder, from, openedBy: p.holder.messageId, certainFrom: p.at };
      }
    } else if (p.op === 'unseen') {
      // Only the holder the listing missed: one a notification bound meanwhile stays.
      if (cur !== undefined && (p.holderKey === '' || cur.key === p.holderKey)) close(p.at, p.holder.messageId, lowerBound(p));
    } else if (p.op === 'release') {
      if (cur !== undefined && cur.key === p.holderKey) close(p.at, p.holder.messageId);
    } else if (cur !== undefined) {
      close(p.at, p.holder.messageId);
    }
    last = Math.max(last, p.at);
  }
  if (cur !== undefined) out.push({ ...cur.attrs, from: cur.from, to: null, openedBy: cur.openedBy, closedBy: null, certainFrom: cur.certainFrom });
  return out;
}

/**
 * Cuts intervals at a terminal fact: after `end(interval)` the holder holds
 * nothing, whatever later reports say (an instance's deletion, a port's
 * deletion). Intervals starting at or after their end are dropped.
 */
export function clipIntervals(intervals: readonly DerivedInterval[], end: (i: DerivedInterval) => number | undefined, closedBy: (i: DerivedInterval) => string | null): DerivedInterval[] {
  const out: DerivedInterval[] = [];
  for (const i of intervals) {
    const e = end(i);
    if (e === undefined || (i.to !== null && i.to <= e)) { out.push(i); continue; }
    // A terminal fact is exact: it replaces an uncertain end.
    if (e > i.from) out.push({ ...i, to: e, closedBy: closedBy(i), certainTo: undefined, certainFrom: i.certainFrom === undefined ? undefined : Math.min(i.certainFrom, e) });
  }
  return out;
}

/** Who a port belonged to over a span of time. */
export interface OwnerSpan {
  from: number;
  to: number | null;
  instanceId: string;
}

/**
 * Splits an interval held through a port (a floating IP) at the changes of
 * the port's owner, so each piece names the instance that had the port then;
 * pieces where no owner is known name the `fallback` owner (what the floating
 * IP's own payload said), or none.
 */
export function splitByOwner(interval: DerivedInterval, owners: readonly OwnerSpan[], fallback: readonly OwnerSpan[] = []): DerivedInterval[] {
  const end = (t: number | null) => (t === null ? Number.POSITIVE_INFINITY : t);
  const cuts = new Set<number>([interval.from]);
  for (const o of [...owners, ...fallback]) {
    if (o.from > interval.from && o.from < end(interval.to)) cuts.add(o.from);
    if (o.to !== null && o.to > interval.from && o.to < end(interval.to)) cuts.add(o.to);
  }
  const points = [...cuts].sort((a, b) => a - b);
  const pieces: DerivedInterval[] = [];
  points.forEach((from, k) => {
    const to = k + 1 < points.length ? (points[k + 1] as number) : interval.to;
    const at = (spans: readonly OwnerSpan[]) => spans.filter((o) => o.from <= from && end(o.to) > from).map((o) => o.instanceId).sort()[0];
    const owner = at(owners) ?? at(fallback) ?? null;
    const last = pieces.at(-1);
    const ends = to === interval.to;
    if (last !== undefined && last.instanceId === owner) { last.to = to; last.closedBy = ends ? interval.closedBy : null; last.certainTo = ends ? interval.certainTo : undefined; return; }
    pieces.push({
      ...interval, from, to, instanceId: owner, openedBy: k === 0 ? interval.openedBy : null, closedBy: ends ? interval.closedBy : null,
      certainFrom: k === 0 ? interval.certainFrom : undefined, certainTo: ends ? interval.certainTo : undefined,
    });
  });
  return pieces;
}
