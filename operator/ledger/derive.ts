// Re-derives address intervals from every fact recorded so far. Applying a
// batch only records facts and notes what they touch; this module then
// recomputes each touched slot from all of its facts and the facts that bound
// or resolve it (its holders' ends and full address lists, its port's deletion,
// full fixed-IP lists and owner). Intervals are therefore a function of the set
// of facts, not of the order they arrived in.
import type { Transaction } from 'kysely';
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
function chunks<T>(xs: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += CHUNK) out.push(xs.slice(i, i + CHUNK));
  return out;
}

/** Slots are `fip:ID`, `port:ID|ADDR`, `mac:MAC|ADDR`, `instance:ID|ADDR`, `nova-floating:ID|ADDR`, `one-nic:ID/NIC|ADDR`, `router-gw:ID|ADDR`. */
export const portSlotRange = (portId: string): [string, string] => [`port:${portId}|`, `port:${portId}}`];
const FIP_RANGE: [string, string] = ['fip:', 'fip;'];
const isFip = (slot: string) => slot.startsWith('fip:');
const portOfSlot = (slot: string): string | undefined => (slot.startsWith('port:') ? slot.slice(5, slot.lastIndexOf('|')) : undefined);

export function releaseOf(address: string, kind: HolderAttrs['kind'], messageId: string | null): HolderAttrs {
  return { address, kind, instanceId: null, port: null, mac: null, network: null, project: null, messageId };
}

export async function rederive(trx: Tx, cloud: string, t: Touched): Promise<void> {
  const slots = new Set<string>(t.slots);
  const instances = [...t.instances];
  for (const ids of chunks(instances)) {
    const rows = await trx.selectFrom('address_changes').select('slot').distinct().where('cloud', '=', cloud).where('holder_key', 'in', ids).execute();
    for (const r of rows) slots.add(r.slot);
    // Floating IPs whose own payload named the instance: its end bounds that attribution.
    const fips = await trx.selectFrom('address_changes').select('slot').distinct().where('cloud', '=', cloud).where('instance_id', 'in', ids)
      .where('slot', '>=', FIP_RANGE[0]).where('slot', '<', FIP_RANGE[1]).execute();
    for (const r of fips) slots.add(r.slot);
  }
  const ports = new Set<string>(t.ports);
  for (const p of t.ports) {
    const [lo, hi] = portSlotRange(p);
    const rows = await trx.selectFrom('address_changes').select('slot').distinct().where('cloud', '=', cloud).where('slot', '>=', lo).where('slot', '<', hi).execute();
    for (const r of rows) slots.add(r.slot);
  }
  for (const r of t.routers) {
    const rows = await trx.selectFrom('address_changes').select('slot').distinct().where('cloud', '=', cloud)
      .where('slot', '>=', `router-gw:${r}|`).where('slot', '<', `router-gw:${r}}`).execute();
    for (const row of rows) slots.add(row.slot);
  }
  // Port slots first: floating IPs take their instance from them.
  const fipSlots = new Set<string>();
  for (const slot of [...slots].sort()) {
    if (isFip(slot)) { fipSlots.add(slot); continue; }
    await rederiveSlot(trx, cloud, slot);
    const p = portOfSlot(slot);
    if (p !== undefined) ports.add(p);
  }
  for (const ids of chunks([...ports])) {
    const rows = await trx.selectFrom('address_changes').select('slot').distinct().where('cloud', '=', cloud).where('holder_key', 'in', ids)
      .where('slot', '>=', FIP_RANGE[0]).where('slot', '<', FIP_RANGE[1]).execute();
    for (const r of rows) fipSlots.add(r.slot);
  }
  for (const slot of [...fipSlots].sort()) await rederiveFip(trx, cloud, slot);
}

async function loadPoints(trx: Tx, cloud: string, slot: string): Promise<ChangePoint[]> {
  const rows = await trx.selectFrom('address_changes').selectAll().where('cloud', '=', cloud).where('slot', '=', slot).execute();
  return rows.map((r) => ({
    at: r.at, seq: 0, op: r.op as ChangeOp, holderKey: r.holder_key,
    holder: {
      address: r.address, kind: r.kind as HolderAttrs['kind'], instanceId: r.instance_id, port: r.port, mac: r.mac,
      network: r.network, project: r.project, messageId: r.message_id,
    },
  }));
}

async function instanceEnds(trx: Tx, cloud: string, ids: readonly string[]): Promise<Map<string, number>> {
  const ends = new Map<string, number>();
  if (ids.length === 0) return ends;
  const rows = await trx.selectFrom('instances').select(['instance_id', 'ended_at']).where('cloud', '=', cloud).where('instance_id', 'in', ids).where('ended_at', 'is not', null).execute();
  for (const r of rows) if (r.ended_at !== null) ends.set(r.instance_id, r.ended_at);
  return ends;
}

async function snapshots(trx: Tx, cloud: string, owners: readonly string[]) {
  if (owners.length === 0) return [];
  const rows = await trx.selectFrom('slot_snapshots').select(['owner', 'at', 'message_id', 'members']).where('cloud', '=', cloud).where('owner', 'in', owners).execute();
  return rows.map((r) => ({ owner: r.owner, at: r.at, messageId: r.message_id, members: new Set(JSON.parse(r.members) as string[]) }));
}

const minEnd = (...xs: Array<number | undefined | null>): number | undefined => {
  const v = xs.filter((x): x is number => typeof x === 'number');
  return v.length === 0 ? undefined : Math.min(...v);
};

async function rederiveSlot(trx: Tx, cloud: string, slot: string): Promise<void> {
  const points = await loadPoints(trx, cloud, slot);
  let derived: DerivedInterval[] = [];
  const bind = points.find((p) => p.op === 'bind');
  if (bind !== undefined) {
    const { address, kind } = bind.holder;
    const holders = [...new Set(points.filter((p) => p.op === 'bind' && p.holder.instanceId !== null).map((p) => p.holderKey))];
    // A full address list of a holder that omits this address released it then.
    for (const s of await snapshots(trx, cloud, holders.map((h) => `instance:${h}`))) {
      if (!s.members.has(`${kind}|${address}`)) points.push({ at: s.at, seq: 0, op: 'release', holderKey: s.owner.slice('instance:'.length), holder: releaseOf(address, kind, s.messageId) });
    }
    // A router's full gateway list (a deletion is an empty one) that omits this address released it.
    if (slot.startsWith('router-gw:')) {
      for (const s of await snapshots(trx, cloud, [`router:${slot.slice('router-gw:'.length, slot.lastIndexOf('|'))}`])) {
        if (!s.members.has(address)) points.push({ at: s.at, seq: 0, op: 'release_any', holderKey: '', holder: releaseOf(address, kind, s.messageId) });
      }
    }
    const port = portOfSlot(slot);
    let portDeleted: number | undefined;
    if (port !== undefined) {
      // A port's full fixed-IP list that omits this address: released, whoever held it.
      for (const s of await snapshots(trx, cloud, [`port:${port}`])) {
        if (!s.members.has(address)) points.push({ at: s.at, seq: 0, op: 'release_any', holderKey: '', holder: releaseOf(address, kind, s.messageId) });
      }
      const row = await trx.selectFrom('ports').select('deleted_at').where('cloud', '=', cloud).where('port_id', '=', port).executeTakeFirst();
      portDeleted = row?.deleted_at ?? undefined;
    }
    const ends = await instanceEnds(trx, cloud, holders);
    derived = clipIntervals(deriveIntervals(points), (i) => minEnd(i.instanceId === null ? undefined : ends.get(i.instanceId), portDeleted), () => null);
  }
  await writeIntervals(trx, cloud, slot, derived);
}

async function rederiveFip(trx: Tx, cloud: string, slot: string): Promise<void> {
  const points = await loadPoints(trx, cloud, slot);
  const raw = deriveIntervals(points);
  const portIds = [...new Set(raw.map((i) => i.port).filter((p): p is string => p !== null))];
  const portRows = portIds.length === 0 ? [] : await trx.selectFrom('ports').select(['port_id', 'deleted_at', 'mac']).where('cloud', '=', cloud).where('port_id', 'in', portIds).execute();
  const portRow = new Map(portRows.map((r) => [r.port_id, r]));
  // A port's deletion disassociates its floating IPs without any floatingip notification.
  const clipped = clipIntervals(raw, (i) => (i.port === null ? undefined : portRow.get(i.port)?.deleted_at ?? undefined), () => null);
  const owners = new Map<string, OwnerSpan[]>();
  for (const p of portIds) {
    const [lo, hi] = portSlotRange(p);
    const rows = await trx.selectFrom('address_intervals').select(['instance_id', 'valid_from', 'valid_to']).where('cloud', '=', cloud)
      .where('slot', '>=', lo).where('slot', '<', hi).where('instance_id', 'is not', null).execute();
    owners.set(p, rows.map((r) => ({ from: r.valid_from, to: r.valid_to, instanceId: r.instance_id as string })));
  }
  const named = [...new Set(clipped.map((i) => i.instanceId).filter((x): x is string => x !== null))];
  const ends = await instanceEnds(trx, cloud, named);
  const derived: DerivedInterval[] = [];
  for (const i of clipped) {
    const fallback: OwnerSpan[] = i.instanceId === null ? [] : [{ from: Number.MIN_SAFE_INTEGER, to: ends.get(i.instanceId) ?? null, instanceId: i.instanceId }];
    const mac = i.port === null ? null : portRow.get(i.port)?.mac ?? null;
    for (const piece of splitByOwner(i, i.port === null ? [] : owners.get(i.port) ?? [], fallback)) derived.push({ ...piece, mac: piece.mac ?? mac });
  }
  await writeIntervals(trx, cloud, slot, derived);
}

async function writeIntervals(trx: Tx, cloud: string, slot: string, derived: readonly DerivedInterval[]): Promise<void> {
  await trx.deleteFrom('address_intervals').where('cloud', '=', cloud).where('slot', '=', slot).execute();
  if (derived.length === 0) return;
  await trx.insertInto('address_intervals').values(derived.map((d) => ({
    cloud, slot, address: d.address, kind: d.kind, network: d.network, port: d.port, mac: d.mac, instance_id: d.instanceId,
    project: d.project, valid_from: d.from, valid_to: d.to, opened_by: d.openedBy, closed_by: d.closedBy,
  }))).execute();
}
