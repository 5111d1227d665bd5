// Address intervals are derived, never edited in place: each slot (one
// floating IP, one address on one port, one OpenNebula NIC address) keeps the
// change points reported for it, and its intervals are recomputed from them.
// That makes the result independent of arrival order and of duplicates,
// because only event times decide.

export type ChangeOp = 'bind' | 'release' | 'release_any';

/** One reported change of who holds a slot. */
export interface ChangePoint {
  at: number;
  /** Tie-breaker for equal times: arrival order. */
  seq: number;
  op: ChangeOp;
  /** Identity of the holder (e.g. the port for a floating IP, the instance for a fixed address). */
  holderKey: string;
  holder: HolderAttrs;
}

export interface HolderAttrs {
  address: string;
  kind: 'fixed' | 'floating' | 'nic';
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

export function compareChanges(a: ChangePoint, b: ChangePoint): number {
  return a.at - b.at || a.seq - b.seq;
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
  let cur: { key: string; attrs: HolderAttrs; from: number; openedBy: string | null } | undefined;
  const close = (to: number, by: string | null) => {
    if (cur !== undefined && to > cur.from) out.push({ ...cur.attrs, from: cur.from, to, openedBy: cur.openedBy, closedBy: by });
    cur = undefined;
  };
  for (const p of sorted) {
    if (p.op === 'bind') {
      if (cur !== undefined && cur.key === p.holderKey) {
        cur.attrs = merge(cur.attrs, p.holder);
        continue;
      }
      close(p.at, p.holder.messageId);
      cur = { key: p.holderKey, attrs: p.holder, from: p.at, openedBy: p.holder.messageId };
    } else if (p.op === 'release') {
      if (cur !== undefined && cur.key === p.holderKey) close(p.at, p.holder.messageId);
    } else if (cur !== undefined) {
      close(p.at, p.holder.messageId);
    }
  }
  if (cur !== undefined) out.push({ ...cur.attrs, from: cur.from, to: null, openedBy: cur.openedBy, closedBy: null });
  return out;
}

/** Whether adding a bind at `at` would change the derived intervals: not when the same holder already holds from an earlier point on. */
export function bindIsRedundant(points: readonly ChangePoint[], holderKey: string, at: number): boolean {
  const last = [...points].sort(compareChanges).at(-1);
  return last !== undefined && last.op === 'bind' && last.holderKey === holderKey && last.at <= at;
}
