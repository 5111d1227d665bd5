// Re-derives address intervals from every fact recorded so far. Applying a
// batch only records facts and notes what they touch; this module then
// recomputes each touched slot from all of its facts and the facts that bound
// or resolve it (its holders' ends and full address lists, its port's deletion,
// full fixed-IP lists and owner). Intervals are therefore a function of the set
// of facts, not of the order they arrived in.
//
// It works on the batch as a set: every touched slot is re-derived once, with
// each kind of fact read for all of them in one statement (per few hundred
// keys) and the intervals written back in multi-row statements, so a batch
// costs a bounded number of statements whatever its size.
import type { ExpressionBuilder, Transaction } from 'kysely';
import type { LedgerSchema } from './schema.ts';
import {
  clipIntervals, deriveIntervals, splitByOwner, type ChangeOp, type ChangePoint, type DerivedInterval, type HolderAttrs, type OwnerSpan,
} from '../domain/intervals.ts';

type Tx = Transaction<LedgerSchema>;

/** What a batch touched, per cloud. */
export interface Touched {
  slots: Set<string>;
  instances: Set<string>;
  ports: Set<string>;
  routers: Set<string>;
}

export function touched(): Touched {
  return { slots: new Set(), instances: new Set(), ports: new Set(), routers: new Set() };
}

const CHUNK = 500;
/** Key ranges per statement: each is an OR branch the planner answers from the index. */
const RANGE_CHUNK = 100;
function chunks<T>(xs: Iterable<T>, size = CHUNK): T[][] {
  const all = [...xs];
  const out: T[][] = [];
  for (let i = 0; i < all.length; i += size) out.push(all.slice(i, i + size));
  return out;
}

/** Slots are `fip:ID`, `port:ID|ADDR`, `mac:MAC|ADDR`, `instance:ID|ADDR`, `nova-floating:ID|ADDR`, `one-nic:ID/NIC|ADDR`, `router-gw:ID|ADDR`. */
export const portSlotRange = (portId: string): [string, string] => [`port:${portId}|`, `port:${portId}}`];
const routerSlotRange = (routerId: string): [string, string] => [`router-gw:${routerId}|`, `router-gw:${routerId}}`];
const FIP_RANGE: [string, string] = ['fip:', 'fip;'];
const isFip = (slot: string) => slot.startsWith('fip:');
const portOfSlot = (slot: string): string | undefined => (slot.startsWith('port:') ? slot.slice(5, slot.lastIndexOf('|')) : undefined);
const routerOfSlot = (slot: string): string | undefined => (slot.startsWith('router-gw:') ? slot.slice('router-gw:'.length, slot.lastIndexOf('|')) : undefined);

export function releaseOf(address: string, kind: HolderAttrs['kind'], messageId: string | null): HolderAttrs {
  return { address, kind, instanceId: null, port: null, mac: null, network: null, project: null, messageId };
}

/**
 * `cloud` and `slot` in any of the ranges, as one condition. The cloud is
 * repeated in every branch: only then does SQLite answer each branch from the
 * (cloud, slot) index instead of scanning the whole cloud.
 */
function inRanges(cloud: string, ranges: ReadonlyArray<[string, string]>) {
  return (eb: ExpressionBuilder<LedgerSchema, 'address_changes' | 'address_intervals'>) =>
    eb.or(ranges.map(([lo, hi]) => eb.and([eb('cloud', '=', cloud), eb('slot', '>=', lo), eb('slot', '<', hi)])));
}

async function slotsInRanges(trx: Tx, cloud: string, ranges: ReadonlyArray<[string, string]>, into: Set<string>): Promise<void> {
  for (const part of chunks(ranges, RANGE_CHUNK)) {
    const rows = await trx.selectFrom('address_changes').select('slot').distinct().where(inRanges(cloud, part)).execute();
    for (const r of rows) into.add(r.slot);
  }
}

export async function rederive(trx: Tx, cloud: string, t: Touched): Promise<void> {
  const slots = new Set<string>(t.slots);
  for (const ids of chunks(t.instances)) {
    const rows = await trx.selectFrom('address_changes').select('slot').distinct().where('cloud', '=', cloud).where('holder_key', 'in', ids).execute();
    for (const r of rows) slots.add(r.slot);
    // Floating IPs whose own payload named the instance: its end bounds that attribution.
    const fips = await trx.selectFrom('address_changes').select('slot').distinct().where('cloud', '=', cloud).where('instance_id', 'in', ids)
      .where('slot', '>=', FIP_RANGE[0]).where('slot', '<', FIP_RANGE[1]).execute();
    for (const r of fips) slots.add(r.slot);
  }
  await slotsInRanges(trx, cloud, [...t.ports].map(portSlotRange), slots);
  await slotsInRanges(trx, cloud, [...t.routers].map(routerSlotRange), slots);

  // Port slots first: floating IPs take their instance from them.
  const fipSlots = new Set<string>();
  const plain: string[] = [];
  const ports = new Set<string>(t.ports);
  for (const slot of slots) {
    if (isFip(slot)) fipSlots.add(slot);
    else {
      plain.push(slot);
      const p = portOfSlot(slot);
      if (p !== undefined) ports.add(p);
    }
  }
  await rederiveSlots(trx, cloud, plain);
  for (const ids of chunks(ports)) {
    const rows = await trx.selectFrom('address_changes').select('slot').distinct().where('cloud', '=', cloud).where('holder_key', 'in', ids)
      .where('slot', '>=', FIP_RANGE[0]).where('slot', '<', FIP_RANGE[1]).execute();
    for (const r of rows) fipSlots.add(r.slot);
  }
  await rederiveFips(trx, cloud, [...fipSlots]);
}

async function loadPoints(trx: Tx, cloud: string, slots: readonly string[]): Promise<Map<string, ChangePoint[]>> {
  const out = new Map<string, ChangePoint[]>();
  for (const part of chunks(slots)) {
    const rows = await trx.selectFrom('address_changes').selectAll().where('cloud', '=', cloud).where('slot', 'in', part).execute();
    for (const r of rows) {
      let list = out.get(r.slot);
      if (list === undefined) out.set(r.slot, (list = []));
      list.push({
        at: r.at, ord: r.ord, seq: 0, op: r.op as ChangeOp, holderKey: r.holder_key, since: r.since ?? null,
        holder: {
          address: r.address, kind: r.kind as HolderAttrs['kind'], instanceId: r.instance_id, port: r.port, mac: r.mac,
          network: r.network, project: r.project, messageId: r.message_id,
        },
      });
    }
  }
  return out;
}

async function instanceEnds(trx: Tx, cloud: string, ids: Iterable<string>): Promise<Map<string, number>> {
  const ends = new Map<string, number>();
  for (const part of chunks(ids)) {
    const rows = await trx.selectFrom('instances').select(['instance_id', 'ended_at']).where('cloud', '=', cloud).where('instance_id', 'in', part).where('ended_at', 'is not', null).execute();
    for (const r of rows) if (r.ended_at !== null) ends.set(r.instance_id, r.ended_at);
  }
  return ends;
}

interface Snapshot {
  at: number;
  ord: number;
  messageId: string;
  members: Set<string>;
}

async function snapshots(trx: Tx, cloud: string, owners: Iterable<string>): Promise<Map<string, Snapshot[]>> {
  const out = new Map<string, Snapshot[]>();
  for (const part of chunks(owners)) {
    const rows = await trx.selectFrom('slot_snapshots').select(['owner', 'at', 'ord', 'message_id', 'members']).where('cloud', '=', cloud).where('owner', 'in', part).execute();
    for (const r of rows) {
      let list = out.get(r.owner);
      if (list === undefined) out.set(r.owner, (list = []));
      list.push({ at: r.at, ord: r.ord, messageId: r.message_id, members: new Set(JSON.parse(r.members) as string[]) });
    }
  }
  return out;
}

interface PortRow {
  deleted_at: number | null;
  mac: string | null;
}

async function portRows(trx: Tx, cloud: string, ids: Iterable<string>): Promise<Map<string, PortRow>> {
  const out = new Map<string, PortRow>();
  for (const part of chunks(ids)) {
    const rows = await trx.selectFrom('ports').select(['port_id', 'deleted_at', 'mac']).where('cloud', '=', cloud).where('port_id', 'in', part).execute();
    for (const r of rows) out.set(r.port_id, r);
  }
  return out;
}

const minEnd = (...xs: Array<number | undefined | null>): number | undefined => {
  const v = xs.filter((x): x is number => typeof x === 'number');
  return v.length === 0 ? undefined : Math.min(...v);
};

/** The holders of a slot whose own full address lists and ends bound it. */
function instanceHolders(points: readonly ChangePoint[]): string[] {
  // An observed holder (op seen) is bounded as a reported one is.
  return [...new Set(points.filter((p) => (p.op === 'bind' || p.op === 'seen') && p.holder.instanceId !== null).map((p) => p.holderKey))];
}

async function rederiveSlots(trx: Tx, cloud: string, slots: readonly string[]): Promise<void> {
  if (slots.length === 0) return;
  const points = await loadPoints(trx, cloud, slots);
  const owners = new Set<string>();
  const holders = new Set<string>();
  const ports = new Set<string>();
  for (const slot of slots) {
    for (const h of instanceHolders(points.get(slot) ?? [])) {
      holders.add(h);
      owners.add(`instance:${h}`);
    }
    const r = routerOfSlot(slot);
    if (r !== undefined) owners.add(`router:${r}`);
    const p = portOfSlot(slot);
    if (p !== undefined) {
      ports.add(p);
      owners.add(`port:${p}`);
    }
  }
  const lists = await snapshots(trx, cloud, owners);
  const ends = await instanceEnds(trx, cloud, holders);
  const portRow = await portRows(trx, cloud, ports);
  const derived = new Map<string, DerivedInterval[]>();
  for (const slot of slots) derived.set(slot, deriveSlot(slot, points.get(slot) ?? [], lists, ends, portRow));
  await writeIntervals(trx, cloud, derived);
}

/** One slot's intervals from its facts and the facts that bound it (pure). */
function deriveSlot(slot: string, given: readonly ChangePoint[], lists: ReadonlyMap<string, Snapshot[]>, ends: ReadonlyMap<string, number>, portRow: ReadonlyMap<string, PortRow>): DerivedInterval[] {
  // An observed holder (op seen) places a slot as a reported one does.
  const bind = given.find((p) => p.op === 'bind' || p.op === 'seen');
  if (bind === undefined) return [];
  const points = [...given];
  const { address, kind } = bind.holder;
  // A full address list of a holder that omits this address released it then.
  for (const h of instanceHolders(given)) {
    for (const s of lists.get(`instance:${h}`) ?? []) {
      if (!s.members.has(`${kind}|${address}`)) points.push({ at: s.at, ord: s.ord, seq: 0, op: 'release', holderKey: h, holder: releaseOf(address, kind, s.messageId) });
    }
  }
  // A router's full gateway list (a deletion is an empty one) that omits this address released it.
  const router = routerOfSlot(slot);
  if (router !== undefined) {
    for (const s of lists.get(`router:${router}`) ?? []) {
      if (!s.members.has(address)) points.push({ at: s.at, seq: 0, op: 'release_any', holderKey: '', holder: releaseOf(address, kind, s.messageId) });
    }
  }
  const port = portOfSlot(slot);
  let portDeleted: number | undefined;
  if (port !== undefined) {
    // A port's full fixed-IP list that omits this address: released, whoever held it.
    for (const s of lists.get(`port:${port}`) ?? []) {
      if (!s.members.has(address)) points.push({ at: s.at, seq: 0, op: 'release_any', holderKey: '', holder: releaseOf(address, kind, s.messageId) });
    }
    portDeleted = portRow.get(port)?.deleted_at ?? undefined;
  }
  return clipIntervals(deriveIntervals(points), (i) => minEnd(i.instanceId === null ? undefined : ends.get(i.instanceId), portDeleted), () => null);
}

async function rederiveFips(trx: Tx, cloud: string, slots: readonly string[]): Promise<void> {
  if (slots.length === 0) return;
  const points = await loadPoints(trx, cloud, slots);
  const raw = new Map<string, DerivedInterval[]>();
  const portIds = new Set<string>();
  const named = new Set<string>();
  for (const slot of slots) {
    const r = deriveIntervals(points.get(slot) ?? []);
    raw.set(slot, r);
    for (const i of r) {
      if (i.port !== null) portIds.add(i.port);
      if (i.instanceId !== null) named.add(i.instanceId);
    }
  }
  const portRow = await portRows(trx, cloud, portIds);
  // Who had each port when: the port slots' intervals, re-derived above where the batch touched them.
  const owners = new Map<string, OwnerSpan[]>();
  for (const part of chunks(portIds, RANGE_CHUNK)) {
    const rows = await trx.selectFrom('address_intervals').select(['slot', 'instance_id', 'valid_from', 'valid_to']).where(inRanges(cloud, part.map(portSlotRange))).where('instance_id', 'is not', null).execute();
    for (const r of rows) {
      const p = portOfSlot(r.slot) as string;
      let list = owners.get(p);
      if (list === undefined) owners.set(p, (list = []));
      list.push({ from: r.valid_from, to: r.valid_to, instanceId: r.instance_id as string });
    }
  }
  const ends = await instanceEnds(trx, cloud, named);
  const derived = new Map<string, DerivedInterval[]>();
  for (const slot of slots) derived.set(slot, deriveFip(raw.get(slot) ?? [], portRow, owners, ends));
  await writeIntervals(trx, cloud, derived);
}

/** A floating IP's intervals, bounded by its ports' deletion and split by who had the port (pure). */
function deriveFip(raw: readonly DerivedInterval[], portRow: ReadonlyMap<string, PortRow>, owners: ReadonlyMap<string, OwnerSpan[]>, ends: ReadonlyMap<string, number>): DerivedInterval[] {
  // A port's deletion disassociates its floating IPs without any floatingip notification.
  const clipped = clipIntervals(raw, (i) => (i.port === null ? undefined : portRow.get(i.port)?.deleted_at ?? undefined), () => null);
  const derived: DerivedInterval[] = [];
  for (const i of clipped) {
    const fallback: OwnerSpan[] = i.instanceId === null ? [] : [{ from: Number.MIN_SAFE_INTEGER, to: ends.get(i.instanceId) ?? null, instanceId: i.instanceId }];
    const mac = i.port === null ? null : portRow.get(i.port)?.mac ?? null;
    for (const piece of splitByOwner(i, i.port === null ? [] : owners.get(i.port) ?? [], fallback)) derived.push({ ...piece, mac: piece.mac ?? mac });
  }
  return derived;
}

/** Intervals per statement: 13 parameters each stays far below either engine's limit. */
const ROWS = 400;

/** Replaces the intervals of every slot given; unchanged slots are left alone. */
async function writeIntervals(trx: Tx, cloud: string, derived: ReadonlyMap<string, readonly DerivedInterval[]>): Promise<void> {
  const slots = [...derived.keys()];
  // Most slots a batch touches gain one fact and keep their earlier intervals: compare first, write only what differs.
  const current = new Map<string, string[]>();
  for (const part of chunks(slots)) {
    const rows = await trx.selectFrom('address_intervals').select(['slot', 'address', 'kind', 'network', 'port', 'mac', 'instance_id', 'project', 'valid_from', 'valid_to', 'opened_by', 'closed_by', 'from_certain', 'to_certain'])
      .where('cloud', '=', cloud).where('slot', 'in', part).execute();
    for (const r of rows) {
      let list = current.get(r.slot);
      if (list === undefined) current.set(r.slot, (list = []));
      list.push(rowKey(r.address, r.kind, r.network, r.port, r.mac, r.instance_id, r.project, r.valid_from, r.valid_to, r.opened_by, r.closed_by, r.from_certain, r.to_certain));
    }
  }
  const changed = slots.filter((slot) => {
    const want = (derived.get(slot) ?? []).map((d) => rowKey(d.address, d.kind, d.network, d.port, d.mac, d.instanceId, d.project, d.from, d.to, d.openedBy, d.closedBy, d.certainFrom ?? null, d.certainTo ?? null)).sort();
    const have = (current.get(slot) ?? []).sort();
    return want.length !== have.length || want.some((w, i) => w !== have[i]);
  });
  for (const part of chunks(changed.filter((s) => current.has(s)))) await trx.deleteFrom('address_intervals').where('cloud', '=', cloud).where('slot', 'in', part).execute();
  const rows = changed.flatMap((slot) => (derived.get(slot) ?? []).map((d) => ({
    cloud, slot, address: d.address, kind: d.kind, network: d.network, port: d.port, mac: d.mac, instance_id: d.instanceId,
    project: d.project, valid_from: d.from, valid_to: d.to, opened_by: d.openedBy, closed_by: d.closedBy,
    from_certain: d.certainFrom ?? null, to_certain: d.certainTo ?? null,
  })));
  for (const part of chunks(rows, ROWS)) await trx.insertInto('address_intervals').values(part).execute();
}

const rowKey = (...xs: ReadonlyArray<string | number | null>): string => JSON.stringify(xs);
