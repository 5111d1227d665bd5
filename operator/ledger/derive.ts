// Re-derives address intervals from every fact recorded so far. Applying a
// batch only records facts and notes what they touch; this module then
// recomputes each touched slot from all of its facts and the facts that bound
// or resolve it (its holders' ends and full address lists, its port's deletion,
// full fixed-IP lists and owner). Intervals are therefore a function of the set
// of facts, not of the order they arrived in. A touched slot whose news cannot
// change it (a report that repeats what its interval holds, a full list that
// names its address) is left as it is: a running instance's periodic reports
// cost no derivation, however long its history. A floating IP, whose history
// grows for as long as the cloud runs, is replayed only from its last release
// before the earliest time the batch can change it: the same result, since
// nothing is open after a release and the intervals before it stay as they are.
//
// It works on the batch as a set: every touched slot is re-derived once, with
// each kind of fact read for all of them in one statement (per few hundred
// keys) and the intervals written back in multi-row statements, so a batch
// costs a bounded number of statements whatever its size.
import { sql, type Kysely, type Transaction } from 'kysely';
import type { LedgerSchema } from './schema.ts';
import * as pgSets from './pg-sets.ts';
import * as sqliteSets from './sqlite-sets.ts';
import { pieces } from './pieces.ts';
import {
  clipIntervals, compareChanges, deriveIntervals, splitByOwner, type ChangeOp, type ChangePoint, type DerivedInterval, type HolderAttrs, type OwnerSpan,
} from '../domain/intervals.ts';

type Tx = Transaction<LedgerSchema>;

/** What a batch touched, per cloud. */
export interface Touched {
  /** Slots given new facts, each with the earliest event time among them. */
  slots: Map<string, number>;
  instances: Set<string>;
  ports: Set<string>;
  routers: Set<string>;
  /** Instances whose end changed, with the earlier of the old and new end: what names them reads differently from then on. */
  ends: Map<string, number>;
  /** Ports whose deletion time or MAC changed, with the earliest time their floating IPs read differently (EVER for a MAC). */
  portChanges: Map<string, number>;
  /**
   * Owners given a new full list (`instance:ID`, `port:ID`), with the earliest
   * time of one. A list releases only what it leaves out: of the owner's
   * slots, only those a new list omits are derived again on its account.
   */
  lists: Map<string, number>;
}

/** "From the start": re-derive everything the slot ever had. */
export const EVER = Number.NEGATIVE_INFINITY;

export function touched(): Touched {
  return { slots: new Map(), instances: new Set(), ports: new Set(), routers: new Set(), ends: new Map(), portChanges: new Map(), lists: new Map() };
}

/** Keeps the earliest time per key. */
export function lowerTo(m: Map<string, number>, key: string, at: number): void {
  const c = m.get(key);
  if (c === undefined || at < c) m.set(key, at);
}

/** Notes a new fact of `slot` at `at`. */
export const touchSlot = (t: Touched, slot: string, at: number): void => lowerTo(t.slots, slot, at);

const CHUNK = 500;
/** Key ranges per statement: each is an OR branch the planner answers from the index. */
const RANGE_CHUNK = 100;
function chunks<T>(xs: Iterable<T>, size = CHUNK): T[][] {
  return pieces([...xs], size);
}

/**
 * PostgreSQL's advisory lock on deriving intervals (SQLite has one writer at a
 * time and needs none). A derivation takes it exclusively before it writes
 * anything (lockDerivation): two derivations of one slot at once would each
 * delete the intervals they read and insert their own, so the slot would keep
 * both. Every statement that writes instances takes it shared, by the
 * instance-copy trigger (instance-copies.ts): a derivation's new intervals get
 * their instance's columns when they are inserted, and a change of the
 * instance that commits before the derivation does cannot see them to update
 * their copies. A derivation takes it before it writes, the trigger before it
 * touches an interval: nothing either side holds by then is anything the other
 * waits for, so the two cannot deadlock.
 */
export const DERIVATION_LOCK = 0x71_6f_70_64;

/**
 * Takes the derivation lock for the rest of the transaction; call it before
 * the transaction writes anything. On SQLite there is nothing to take: every
 * transaction holds the database's one write lock from its start
 * (sqlite-driver.ts), which also keeps apart a derivation the CLI runs before
 * it answers and the operator's own.
 */
export async function lockDerivation(trx: Kysely<LedgerSchema>): Promise<void> {
  if (pgSets.isPostgres(trx)) await sql`SELECT pg_advisory_xact_lock(${DERIVATION_LOCK})`.execute(trx);
}

/** Slots are `fip:ID`, `port:ID|ADDR`, `mac:MAC|ADDR`, `instance:ID|ADDR`, `nova-floating:ID|ADDR`, `one-nic:ID/NIC|ADDR`, `router-gw:ID|ADDR`. */
export const portSlotRange = (portId: string): [string, string] => [`port:${portId}|`, `port:${portId}}`];
const routerSlotRange = (routerId: string): [string, string] => [`router-gw:${routerId}|`, `router-gw:${routerId}}`];
const FIP_RANGE: [string, string] = ['fip:', 'fip;'];
/**
 * The floating IPs' facts (isFip), as migration 0019's partial index on
 * (cloud, instance_id) has them: a query must carry this text for either
 * engine to prove it may use that index. An equality, not a range, so that
 * no collation can order a floating IP's slot outside it.
 */
export const FIP_FACTS_SQL = `substr("slot", 1, 4) = 'fip:'`;
const isFip = (slot: string) => slot.startsWith('fip:');
const portOfSlot = (slot: string): string | undefined => (slot.startsWith('port:') ? slot.slice(5, slot.lastIndexOf('|')) : undefined);
const routerOfSlot = (slot: string): string | undefined => (slot.startsWith('router-gw:') ? slot.slice('router-gw:'.length, slot.lastIndexOf('|')) : undefined);

export function releaseOf(address: string, kind: HolderAttrs['kind'], messageId: string | null): HolderAttrs {
  return { address, kind, instanceId: null, port: null, mac: null, network: null, project: null, messageId };
}

async function slotsInRanges(trx: Tx, cloud: string, ranges: ReadonlyArray<[string, string]>, into: Set<string>): Promise<void> {
  if (pgSets.isPostgres(trx)) {
    for (const r of await pgSets.inSlotRanges(trx, 'address_changes', cloud, ranges, ['slot'], true)) into.add(r.slot);
    return;
  }
  for (const part of chunks(ranges, RANGE_CHUNK)) {
    const rows = await sqliteSets.inSlotRanges<{ slot: string }>(trx, 'address_changes', ['slot'], cloud, part, '', true);
    for (const r of rows) into.add(r.slot);
  }
}

/**
 * Re-derives what the batch touched; returns how many slots it derived.
 * Slots other than floating IPs are re-derived from all of their facts (an
 * address on a port or NIC lives as long as its port or instance), but only
 * when what is new can change them: most notifications about a running
 * instance (an update, the hourly `exists`) repeat its addresses and its
 * full list, and deriving its slots again for each would cost more the
 * longer it runs (omittedByLists, withNews). A floating IP is held by one port after
 * another for years: it is re-derived only from the time the batch can change
 * it (its new facts, or the change of an end, a port's deletion or owner),
 * starting at its last release before then (see rederiveFips).
 */
export async function rederive(trx: Tx, cloud: string, t: Touched): Promise<number> {
  const plainSet = new Set<string>();
  /** Floating IP slot → the earliest time at which it may read differently. */
  const fipFrom = new Map<string, number>();
  /** Slots whose new facts may all repeat what their intervals say: derived only if one does not. */
  const repeats = new Map<string, number>();
  for (const [slot, at] of t.slots) {
    if (isFip(slot)) lowerTo(fipFrom, slot, at);
    else if (at !== EVER && listKind(slot) !== undefined) repeats.set(slot, at);
    else plainSet.add(slot);
  }
  // No DISTINCT and no slot range in these lookups: either lets SQLite's
  // planner prefer the (cloud, slot) index, which scans every fact of the cloud.
  // One statement per lookup on PostgreSQL: its keys go as one array.
  const size = pgSets.isPostgres(trx) ? Infinity : CHUNK;
  for (const ids of chunks(t.instances, size)) {
    const rows = await byHolder(trx, cloud, ids);
    for (const r of rows) {
      if (!isFip(r.slot)) plainSet.add(r.slot);
      else {
        // A floating IP depends on an instance only through its end.
        const end = t.ends.get(r.holder_key);
        if (end !== undefined) lowerTo(fipFrom, r.slot, end);
      }
    }
  }
  // Floating IPs whose own payload named the instance: its end bounds that attribution.
  // The condition on the slot is the index's own (FIP_FACTS_SQL): only floating IPs' facts are in it.
  for (const ids of chunks(t.ends.keys(), size)) {
    const named = pgSets.isPostgres(trx)
      ? await pgSets.byKeys(trx, 'address_changes', 'instance_id', cloud, ids, ['slot', 'instance_id'], FIP_FACTS_SQL)
      : await sqliteSets.byKeys<{ slot: string; instance_id: string | null }>(trx, 'address_changes', ['slot', 'instance_id'], cloud, 'instance_id', ids, FIP_FACTS_SQL);
    for (const r of named) if (isFip(r.slot) && r.instance_id !== null) lowerTo(fipFrom, r.slot, t.ends.get(r.instance_id) as number);
  }
  await slotsInRanges(trx, cloud, [...t.ports].map(portSlotRange), plainSet);
  await slotsInRanges(trx, cloud, [...t.routers].map(routerSlotRange), plainSet);
  for (const slot of await omittedByLists(trx, cloud, t, plainSet)) plainSet.add(slot);
  for (const slot of await withNews(trx, cloud, [...repeats].filter(([slot]) => !plainSet.has(slot)))) plainSet.add(slot);

  // Port slots first: floating IPs take their instance from them.
  const owners = await rederiveSlots(trx, cloud, [...plainSet]);
  // A floating IP depends on a port through its deletion, its MAC and who had it when.
  const portFrom = new Map<string, number>(t.portChanges);
  for (const [slot, at] of owners) {
    const p = portOfSlot(slot);
    if (p !== undefined) lowerTo(portFrom, p, at);
  }
  for (const ids of chunks(portFrom.keys(), size)) {
    const rows = await byHolder(trx, cloud, ids);
    for (const r of rows) if (isFip(r.slot)) lowerTo(fipFrom, r.slot, portFrom.get(r.holder_key) as number);
  }
  await rederiveFips(trx, cloud, fipFrom);
  return plainSet.size + fipFrom.size;
}

/**
 * The kind of address a slot's facts and its holders' lists name it by
 * (`kind|address` in an instance's list, see deriveSlot), from the slot's
 * family; undefined for families no instance or port list bounds.
 */
function listKind(slot: string): HolderAttrs['kind'] | undefined {
  if (slot.startsWith('port:') || slot.startsWith('mac:') || slot.startsWith('instance:')) return 'fixed';
  if (slot.startsWith('nova-floating:')) return 'floating';
  if (slot.startsWith('one-nic:')) return 'nic';
  return undefined;
}

const addressOfSlot = (slot: string): string => slot.slice(slot.lastIndexOf('|') + 1);

/**
 * Slots a new full list of their holder or port leaves out (the list
 * releases them, deriveSlot), among the slots of the owners in `t.lists`
 * not already derived whole. A list that names a slot's address adds no
 * change point to it, so the slot reads the same whatever else the list says.
 */
async function omittedByLists(trx: Tx, cloud: string, t: Touched, derived: ReadonlySet<string>): Promise<string[]> {
  const size = pgSets.isPostgres(trx) ? Infinity : CHUNK;
  const instanceIds: string[] = [];
  const portIds: string[] = [];
  for (const owner of t.lists.keys()) {
    if (owner.startsWith('instance:')) {
      const id = owner.slice('instance:'.length);
      if (!t.instances.has(id)) instanceIds.push(id);
    } else if (owner.startsWith('port:')) {
      const id = owner.slice('port:'.length);
      if (!t.ports.has(id)) portIds.push(id);
    }
  }
  /** Slot → the owners whose new lists bound it. */
  const bound = new Map<string, string[]>();
  const add = (slot: string, owner: string) => {
    if (derived.has(slot)) return;
    const list = bound.get(slot);
    if (list === undefined) bound.set(slot, [owner]);
    else list.push(owner);
  };
  for (const ids of chunks(instanceIds, size)) {
    // A floating IP depends on an instance only through its end; a router's gateway never.
    for (const r of await byHolder(trx, cloud, ids)) if (listKind(r.slot) !== undefined) add(r.slot, `instance:${r.holder_key}`);
  }
  const portSlots = new Set<string>();
  await slotsInRanges(trx, cloud, portIds.map(portSlotRange), portSlots);
  for (const slot of portSlots) add(slot, `port:${portOfSlot(slot) as string}`);
  if (bound.size === 0) return [];
  const owners = new Set<string>();
  for (const list of bound.values()) for (const o of list) owners.add(o);
  const lists = await listsFrom(trx, cloud, [...owners].map((o) => [o, t.lists.get(o) as number] as const));
  const out: string[] = [];
  for (const [slot, byOwners] of bound) {
    const address = addressOfSlot(slot);
    const member = `${listKind(slot) as string}|${address}`;
    // A port's list names its fixed addresses alone; an instance's, kind and address.
    const omits = byOwners.some((o) => (lists.get(o) ?? []).some((members) => !members.has(o.startsWith('port:') ? address : member)));
    if (omits) out.push(slot);
  }
  return out;
}

/** The members of each owner's full lists from its time on. */
async function listsFrom(trx: Tx, cloud: string, starts: ReadonlyArray<readonly [string, number]>): Promise<Map<string, Array<Set<string>>>> {
  const out = new Map<string, Array<Set<string>>>();
  const add = (rows: ReadonlyArray<{ owner: string; members: string }>) => {
    for (const r of rows) {
      let list = out.get(r.owner);
      if (list === undefined) out.set(r.owner, (list = []));
      list.push(new Set(JSON.parse(r.members) as string[]));
    }
  };
  if (pgSets.isPostgres(trx)) add(await pgSets.slotsFrom(trx, 'slot_snapshots', 'at', cloud, starts, ['owner', 'members']));
  else for (const part of chunks(starts, RANGE_CHUNK)) add(await sqliteSets.slotsFrom<{ owner: string; members: string }>(trx, 'slot_snapshots', 'at', ['owner', 'members'], cloud, part));
  return out;
}

type RepeatFact = { slot: string; at: number; op: string; holder_key: string; address: string; kind: string; instance_id: string | null; port: string | null; mac: string | null; network: string | null; project: string | null };
type HeldRow = { slot: string; address: string; kind: string; instance_id: string | null; port: string | null; mac: string | null; network: string | null; project: string | null; valid_from: number; valid_to: number | null; to_certain: number | null };

/**
 * Of the slots given (each with the earliest time of its new facts), those
 * whose facts from that time on do not all repeat what the slot's intervals
 * already say, and which must therefore be derived again.
 *
 * A fact repeats an interval when it is a `bind` by the interval's holder
 * strictly inside it (after its start, before its end) that names nothing
 * the interval does not already name, and the interval was not ended by an
 * observation (whose lower bound reads the time of the fact before it,
 * deriveIntervals). Replayed, such a bind finds its holder holding the slot
 * and only fills attributes that are already filled with the same values: the
 * intervals come out the same, so adding it changes nothing. Intervals on
 * disk are those of every fact but what pending rows still owe them (an
 * interval that is not is derived again when that row's pass comes), so the
 * test holds whichever of a slot's pending rows a pass takes first. Facts
 * taken away (a MAC's slot adopted by its port: EVER) are never judged here.
 *
 * A holder is an instance (its key is the instance id); a slot whose holder
 * is a device or a router is always derived.
 */
async function withNews(trx: Tx, cloud: string, slots: ReadonlyArray<readonly [string, number]>): Promise<string[]> {
  if (slots.length === 0) return [];
  const facts = new Map<string, RepeatFact[]>();
  const held = new Map<string, HeldRow[]>();
  const factColumns = ['slot', 'at', 'op', 'holder_key', 'address', 'kind', 'instance_id', 'port', 'mac', 'network', 'project'] as const;
  const heldColumns = ['slot', 'address', 'kind', 'instance_id', 'port', 'mac', 'network', 'project', 'valid_from', 'valid_to', 'to_certain'] as const;
  const group = <R extends { slot: string }>(into: Map<string, R[]>, rows: readonly R[]) => {
    for (const r of rows) {
      const list = into.get(r.slot);
      if (list === undefined) into.set(r.slot, [r]);
      else list.push(r);
    }
  };
  if (pgSets.isPostgres(trx)) {
    group(facts, await pgSets.slotsFrom(trx, 'address_changes', 'at', cloud, slots, factColumns));
    group(held, await pgSets.byKeys(trx, 'address_intervals', 'slot', cloud, slots.map(([slot]) => slot), heldColumns));
  } else {
    for (const part of chunks(slots, RANGE_CHUNK)) group(facts, await sqliteSets.slotsFrom<RepeatFact>(trx, 'address_changes', 'at', factColumns, cloud, part));
    for (const part of chunks(slots.map(([slot]) => slot))) group(held, await sqliteSets.byKeys<HeldRow>(trx, 'address_intervals', heldColumns, cloud, 'slot', part));
  }
  const same = (given: string | null, has: string | null) => given === null || given === has;
  const repeats = (f: RepeatFact, rows: readonly HeldRow[]) =>
    f.op === 'bind' && f.instance_id !== null && f.holder_key === f.instance_id &&
    rows.some((r) => r.instance_id === f.holder_key && r.to_certain === null && r.valid_from < f.at && (r.valid_to === null || f.at < r.valid_to) &&
      r.kind === f.kind && r.address === f.address && same(f.port, r.port) && same(f.mac, r.mac) && same(f.network, r.network) && same(f.project, r.project));
  const out: string[] = [];
  for (const [slot] of slots) {
    const given = facts.get(slot) ?? [];
    const rows = held.get(slot) ?? [];
    // No fact from that time on: something was taken away; derive.
    if (given.length === 0 || !given.every((f) => repeats(f, rows))) out.push(slot);
  }
  return out;
}

/** The slots in which one of `ids` holds facts, each once per holder (holder-slots.ts). */
async function byHolder(trx: Tx, cloud: string, ids: readonly string[]): Promise<Array<{ slot: string; holder_key: string }>> {
  if (pgSets.isPostgres(trx)) return pgSets.byKeys(trx, 'holder_slots', 'holder_key', cloud, ids, ['slot', 'holder_key']);
  return sqliteSets.byKeys(trx, 'holder_slots', ['slot', 'holder_key'], cloud, 'holder_key', ids);
}

type ChangeRow = { slot: string; at: number; ord: number; op: string; holder_key: string; since: number | null; address: string; kind: string; instance_id: string | null; port: string | null; mac: string | null; network: string | null; project: string | null; message_id: string | null };

function pointOf(r: ChangeRow): ChangePoint {
  return {
    at: r.at, ord: r.ord, seq: 0, op: r.op as ChangeOp, holderKey: r.holder_key, since: r.since ?? null,
    holder: {
      address: r.address, kind: r.kind as HolderAttrs['kind'], instanceId: r.instance_id, port: r.port, mac: r.mac,
      network: r.network, project: r.project, messageId: r.message_id,
    },
  };
}

const CHANGE_COLUMNS = ['slot', 'at', 'ord', 'op', 'holder_key', 'since', 'address', 'kind', 'instance_id', 'port', 'mac', 'network', 'project', 'message_id'] as const;

/** The facts of each slot; of a slot in `starts`, only those at or after its start. */
async function loadPoints(trx: Tx, cloud: string, slots: readonly string[], starts: ReadonlyMap<string, number> = new Map()): Promise<Map<string, ChangePoint[]>> {
  const out = new Map<string, ChangePoint[]>();
  const add = (rows: readonly ChangeRow[]) => {
    for (const r of rows) {
      let list = out.get(r.slot);
      if (list === undefined) out.set(r.slot, (list = []));
      list.push(pointOf(r));
    }
  };
  if (pgSets.isPostgres(trx)) {
    add(await pgSets.byKeys(trx, 'address_changes', 'slot', cloud, slots.filter((s) => !starts.has(s)), CHANGE_COLUMNS));
    add(await pgSets.slotsFrom(trx, 'address_changes', 'at', cloud, slots.filter((s) => starts.has(s)).map((s) => [s, starts.get(s) as number] as const), CHANGE_COLUMNS));
    return out;
  }
  for (const part of chunks(slots.filter((s) => !starts.has(s)))) {
    add(await sqliteSets.byKeys<ChangeRow>(trx, 'address_changes', CHANGE_COLUMNS, cloud, 'slot', part));
  }
  for (const part of chunks(slots.filter((s) => starts.has(s)).map((s) => [s, starts.get(s) as number] as const), RANGE_CHUNK)) {
    add(await sqliteSets.slotsFrom<ChangeRow>(trx, 'address_changes', 'at', CHANGE_COLUMNS, cloud, part));
  }
  return out;
}

/**
 * For each slot, the time of its latest `release_any` fact before the time
 * given: nothing is open just after it, so what the slot had before it does
 * not depend on any fact at or after it. Slots without one are left out.
 */
async function lastReleases(trx: Tx, cloud: string, before: ReadonlyArray<readonly [string, number]>): Promise<Map<string, number>> {
  if (pgSets.isPostgres(trx)) return pgSets.lastReleases(trx, cloud, before);
  const out = new Map<string, number>();
  for (const part of chunks(before, RANGE_CHUNK)) {
    // One scalar subquery per slot: each walks the (cloud, slot, at) index backwards from its time.
    const q = sql.join(part.map(([slot, t]) => sql`SELECT ${slot} AS slot, (SELECT at FROM address_changes WHERE cloud = ${cloud} AND slot = ${slot} AND at < ${t} AND op = 'release_any' ORDER BY at DESC LIMIT 1) AS t`), sql` UNION ALL `);
    const r = await sql<{ slot: string; t: number | string | null }>`${q}`.execute(trx);
    for (const row of r.rows) if (row.t !== null) out.set(row.slot, Number(row.t));
  }
  return out;
}

async function instanceEnds(trx: Tx, cloud: string, ids: Iterable<string>): Promise<Map<string, number>> {
  const ends = new Map<string, number>();
  if (pgSets.isPostgres(trx)) {
    for (const r of await pgSets.byKeys(trx, 'instances', 'instance_id', cloud, ids, ['instance_id', 'ended_at'])) if (r.ended_at !== null) ends.set(r.instance_id, r.ended_at);
    return ends;
  }
  for (const part of chunks(ids)) {
    const rows = await sqliteSets.byKeys<{ instance_id: string; ended_at: number | null }>(trx, 'instances', ['instance_id', 'ended_at'], cloud, 'instance_id', part, '"ended_at" is not null');
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
  for (const part of chunks(owners, pgSets.isPostgres(trx) ? Infinity : CHUNK)) {
    const rows = pgSets.isPostgres(trx)
      ? await pgSets.byKeys(trx, 'slot_snapshots', 'owner', cloud, part, ['owner', 'at', 'ord', 'message_id', 'members'])
      : await sqliteSets.byKeys<{ owner: string; at: number; ord: number; message_id: string; members: string }>(trx, 'slot_snapshots', ['owner', 'at', 'ord', 'message_id', 'members'], cloud, 'owner', part);
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
  for (const part of chunks(ids, pgSets.isPostgres(trx) ? Infinity : CHUNK)) {
    const rows = pgSets.isPostgres(trx)
      ? await pgSets.byKeys(trx, 'ports', 'port_id', cloud, part, ['port_id', 'deleted_at', 'mac'])
      : await sqliteSets.byKeys<{ port_id: string; deleted_at: number | null; mac: string | null }>(trx, 'ports', ['port_id', 'deleted_at', 'mac'], cloud, 'port_id', part);
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

/**
 * Slots derived at once. A slot's intervals depend on its own facts and on
 * rows the derivation does not write (instances, ports, snapshots; a floating
 * IP also on its ports' intervals, written before), never on another slot of
 * the same kind being derived: slots go a piece at a time, so that what a
 * pass holds (every fact of every slot it derives, and their intervals) is
 * bounded by the piece, not by how much the batches since the last pass
 * touched. On SQLite a piece is one statement per lookup (CHUNK, as pieces()
 * rounds it), so the statements are as many as with every slot at once.
 */
const SLOTS_AT_ONCE = CHUNK;

/** Re-derives slots from all their facts; returns, for each slot whose holders changed, the earliest time they did. */
async function rederiveSlots(trx: Tx, cloud: string, slots: readonly string[]): Promise<Map<string, number>> {
  const owners = new Map<string, number>();
  for (const part of chunks(slots, SLOTS_AT_ONCE)) for (const [slot, at] of await rederiveSlotPiece(trx, cloud, part)) owners.set(slot, at);
  return owners;
}

async function rederiveSlotPiece(trx: Tx, cloud: string, slots: readonly string[]): Promise<Map<string, number>> {
  if (slots.length === 0) return new Map();
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
  return writeIntervals(trx, cloud, derived);
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

/**
 * Re-derives floating IP slots from the time given for each. A slot's facts
 * replay in time order, and a `release_any` leaves nothing open, so the
 * intervals before the slot's last `release_any` before that time (all ended
 * by it) stay as they are; only the facts from that release on are read and
 * only the intervals starting there are replaced. Without such a release the
 * whole slot is re-derived.
 */
async function rederiveFips(trx: Tx, cloud: string, from: ReadonlyMap<string, number>): Promise<void> {
  for (const part of chunks(from, SLOTS_AT_ONCE)) await rederiveFipPiece(trx, cloud, new Map(part));
}

async function rederiveFipPiece(trx: Tx, cloud: string, from: ReadonlyMap<string, number>): Promise<void> {
  if (from.size === 0) return;
  const slots = [...from.keys()];
  const starts = await lastReleases(trx, cloud, [...from].filter(([, at]) => at !== EVER));
  const points = await loadPoints(trx, cloud, slots, starts);
  // The replay may start at the release only if it comes first among the facts of its time
  // (a fact of the same time ordered ahead of it, by `ord`, would be replayed without what preceded it).
  const whole = [...starts].filter(([slot, t]) => {
    const first = (points.get(slot) ?? []).reduce<ChangePoint | undefined>((a, p) => (a === undefined || compareChanges(p, a) < 0 ? p : a), undefined);
    return first === undefined || first.at !== t || first.op !== 'release_any';
  }).map(([slot]) => slot);
  if (whole.length > 0) {
    for (const slot of whole) {
      starts.delete(slot);
      points.delete(slot);
    }
    for (const [slot, list] of await loadPoints(trx, cloud, whole)) points.set(slot, list);
  }
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
  for (const part of chunks(portIds, pgSets.isPostgres(trx) ? Infinity : RANGE_CHUNK)) {
    const rows = pgSets.isPostgres(trx)
      ? await pgSets.inSlotRanges(trx, 'address_intervals', cloud, part.map(portSlotRange), ['slot', 'instance_id', 'valid_from', 'valid_to'])
      : await sqliteSets.inSlotRanges<{ slot: string; instance_id: string | null; valid_from: number; valid_to: number | null }>(trx, 'address_intervals', ['slot', 'instance_id', 'valid_from', 'valid_to'], cloud, part.map(portSlotRange), '"instance_id" is not null');
    for (const r of rows) {
      if (r.instance_id === null) continue;
      const p = portOfSlot(r.slot) as string;
      let list = owners.get(p);
      if (list === undefined) owners.set(p, (list = []));
      list.push({ from: r.valid_from, to: r.valid_to, instanceId: r.instance_id as string });
    }
  }
  const ends = await instanceEnds(trx, cloud, named);
  const derived = new Map<string, DerivedInterval[]>();
  for (const slot of slots) derived.set(slot, deriveFip(raw.get(slot) ?? [], portRow, owners, ends));
  await writeIntervals(trx, cloud, derived, starts);
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

type IntervalRow = { id: number | string; slot: string; address: string; kind: string; network: string | null; port: string | null; mac: string | null; instance_id: string | null; project: string | null; valid_from: number; valid_to: number | null; opened_by: string | null; closed_by: string | null; from_certain: number | null; to_certain: number | null };

/** Intervals per statement: 13 parameters each stays far below either engine's limit. */
const ROWS = 400;

/**
 * Replaces the intervals of every slot given (of a slot in `starts`, only those
 * starting at or after its start) with the derived ones; unchanged slots are
 * left alone, and of a changed slot only the rows that differ are deleted and
 * inserted. Returns, for each slot whose holders changed, the earliest time
 * they did: the start of the earliest (instance, from, to) span that is new or
 * gone.
 */
async function writeIntervals(trx: Tx, cloud: string, derived: ReadonlyMap<string, readonly DerivedInterval[]>, starts: ReadonlyMap<string, number> = new Map()): Promise<Map<string, number>> {
  const slots = [...derived.keys()];
  const whole = slots.filter((s) => !starts.has(s));
  const tails = slots.filter((s) => starts.has(s)).map((s) => [s, starts.get(s) as number] as const);
  // Most slots a batch touches gain one fact and keep their earlier intervals: compare first, write only what differs.
  const current = new Map<string, Array<{ key: string; id: number | string }>>();
  const spans = new Map<string, string[]>();
  const columns = ['id', 'slot', 'address', 'kind', 'network', 'port', 'mac', 'instance_id', 'project', 'valid_from', 'valid_to', 'opened_by', 'closed_by', 'from_certain', 'to_certain'] as const;
  const add = (rows: readonly IntervalRow[]) => {
    for (const r of rows) {
      let list = current.get(r.slot);
      if (list === undefined) current.set(r.slot, (list = []));
      list.push({ key: rowKey(r.address, r.kind, r.network, r.port, r.mac, r.instance_id, r.project, r.valid_from, r.valid_to, r.opened_by, r.closed_by, r.from_certain, r.to_certain), id: r.id });
      if (r.instance_id !== null) {
        let l = spans.get(r.slot);
        if (l === undefined) spans.set(r.slot, (l = []));
        l.push(spanKey(r.valid_from, r.valid_to, r.instance_id));
      }
    }
  };
  if (pgSets.isPostgres(trx)) {
    add(await pgSets.byKeys(trx, 'address_intervals', 'slot', cloud, whole, columns));
    add(await pgSets.slotsFrom(trx, 'address_intervals', 'valid_from', cloud, tails, columns));
  } else {
    for (const part of chunks(whole)) add(await sqliteSets.byKeys<IntervalRow>(trx, 'address_intervals', columns, cloud, 'slot', part));
    for (const part of chunks(tails, RANGE_CHUNK)) add(await sqliteSets.slotsFrom<IntervalRow>(trx, 'address_intervals', 'valid_from', columns, cloud, part));
  }
  const owners = new Map<string, number>();
  // A changed slot's rows: those no derived interval matches go, the derived ones no row matches come.
  // Rows that stay keep their copies of the instance's columns, which the triggers keep current (instance-copies.ts).
  const gone: Array<number | string> = [];
  const rows: Array<Record<string, string | number | null>> = [];
  for (const slot of slots) {
    const ds = derived.get(slot) ?? [];
    const have = current.get(slot) ?? [];
    const wanted = new Map<string, DerivedInterval[]>();
    for (const d of ds) {
      const k = rowKey(d.address, d.kind, d.network, d.port, d.mac, d.instanceId, d.project, d.from, d.to, d.openedBy, d.closedBy, d.certainFrom ?? null, d.certainTo ?? null);
      const list = wanted.get(k);
      if (list === undefined) wanted.set(k, [d]);
      else list.push(d);
    }
    let kept = 0;
    for (const h of have) {
      const match = wanted.get(h.key);
      if (match !== undefined && match.length > 0) {
        match.pop();
        kept += 1;
      } else gone.push(h.id);
    }
    if (kept === have.length && kept === ds.length) continue;
    const earliest = spanChange(spans.get(slot) ?? [], ds.filter((d) => d.instanceId !== null).map((d) => spanKey(d.from, d.to, d.instanceId as string)));
    if (earliest !== undefined) owners.set(slot, earliest);
    for (const list of wanted.values()) {
      for (const d of list) {
        rows.push({
          cloud, slot, address: d.address, kind: d.kind, network: d.network, port: d.port, mac: d.mac, instance_id: d.instanceId,
          project: d.project, valid_from: d.from, valid_to: d.to, opened_by: d.openedBy, closed_by: d.closedBy,
          from_certain: d.certainFrom ?? null, to_certain: d.certainTo ?? null,
        });
      }
    }
  }
  if (pgSets.isPostgres(trx)) {
    await pgSets.deleteIntervalIds(trx, gone);
    await pgSets.insertRows(trx, 'address_intervals', rows);
  } else {
    for (const part of chunks(gone)) await sqliteSets.deleteIntervalIds(trx, part);
    for (const part of chunks(rows, ROWS)) await sqliteSets.insertRows(trx, 'address_intervals', part);
  }
  return owners;
}

const spanKey = (from: number, to: number | null, instanceId: string): string => `${from}|${to ?? ''}|${instanceId}`;

/** The earliest start among spans in one list and not the other (as multisets); undefined when they are the same. */
function spanChange(before: readonly string[], after: readonly string[]): number | undefined {
  const count = new Map<string, number>();
  for (const k of before) count.set(k, (count.get(k) ?? 0) + 1);
  for (const k of after) count.set(k, (count.get(k) ?? 0) - 1);
  let earliest: number | undefined;
  for (const [k, n] of count) {
    if (n === 0) continue;
    const from = Number(k.slice(0, k.indexOf('|')));
    if (earliest === undefined || from < earliest) earliest = from;
  }
  return earliest;
}

const rowKey = (...xs: ReadonlyArray<string | number | null>): string => JSON.stringify(xs);
