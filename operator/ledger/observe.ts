// Observed facts: what a listing of the cloud's API shows, recorded beside the
// facts notifications report and derived with them (derive.ts). A holder the
// listing shows and the ledger lacks becomes a `seen` fact at the time of the
// page that showed it, bounded below by the last listing that did not; an
// interval the ledger holds open and a complete listing omits gets an `unseen`
// fact at the end of that listing. Derivation turns both into intervals whose
// uncertain part is kept apart, and an exact fact, arriving whenever, wins.
import type { Kysely } from 'kysely';
import type { LedgerSchema } from './schema.ts';
import type { HolderAttrs } from '../domain/intervals.ts';
import type {
  Drift, DriftKind, Listing, ListedFloatingIp, ListedOneVm, ListedPort, ListedRouter, ListedServer,
} from '../domain/inventory.ts';
import { storedIp } from '../domain/ip.ts';
import { lockDerivation, rederive, touchSlot, touched } from './derive.ts';
import { deriveAll } from './derive-pending.ts';
import { addHolderSlots } from './holder-slots.ts';
import type { NameSource } from '../domain/owner-names.ts';

/** One holder of one slot, as a listing shows it. */
export interface Observation {
  slot: string;
  /** Compared with the identity of an interval held in the slot (see identityOf). */
  identity: string;
  holderKey: string;
  holder: HolderAttrs;
  /** The listed resource's creation: the holding cannot have started before it. */
  createdAt?: number | undefined;
}

/** One pass over one listing. */
export interface Pass {
  cloud: string;
  listing: Listing;
  /** When the listing was started. */
  startedAt: number;
  /** When the previous complete listing of the same kind was started (nothing changed unseen before it); null for the first. */
  since: number | null;
  /** Names the facts this pass records (their message id). */
  id: string;
}

const CHUNK = 400;
const OBSERVED = (p: Pass) => `reconcile:${p.listing}:${p.id}`;

/** Slot ranges each listing covers: an open interval there that the listing omits was closed. */
export const COVERED: Record<Listing, Array<[string, string]>> = {
  ports: [['port:', 'port;']],
  floatingips: [['fip:', 'fip;']],
  routers: [['router-gw:', 'router-gw;']],
  vms: [['one-nic:', 'one-nic;']],
  // Nova's own placements of addresses (legacy payloads): compared by instance and address.
  servers: [['instance:', 'instance;'], ['mac:', 'mac;'], ['nova-floating:', 'nova-floating;']],
};

/** The holder key of an interval, as its facts name it ('' where the row cannot say: any holder). */
export function holderKeyOf(slot: string, r: { instance_id: string | null; port: string | null }): string {
  if (slot.startsWith('fip:')) return r.port ?? '';
  if (slot.startsWith('router-gw:')) return slot.slice('router-gw:'.length, slot.lastIndexOf('|'));
  return r.instance_id ?? '';
}

/** How an interval's holder is compared with a listing's, per slot family. */
export function identityOf(slot: string, r: { instance_id: string | null; port: string | null; address: string }): string {
  if (slot.startsWith('fip:')) return r.port ?? '-';
  if (slot.startsWith('router-gw:')) return '-';
  if (slot.startsWith('port:') || slot.startsWith('one-nic:')) return r.instance_id ?? '-';
  return `${r.instance_id ?? '-'}|${r.address}`;
}

const ms = (d: Date | undefined): number | undefined => (d === undefined ? undefined : d.getTime());

export function portObservations(p: ListedPort): Observation[] {
  const onInstance = p.deviceOwner?.startsWith('compute:') === true && p.deviceId !== undefined && p.deviceId !== '';
  return p.fixedIps.map((given) => {
    const address = storedIp(given);
    return {
      slot: `port:${p.id}|${address}`, identity: onInstance ? (p.deviceId as string) : '-',
      holderKey: onInstance ? (p.deviceId as string) : `device:${p.deviceId ?? ''}`,
      holder: { address, kind: 'fixed', instanceId: onInstance ? (p.deviceId as string) : null, port: p.id, mac: p.mac ?? null, network: p.networkId ?? null, project: p.project ?? null, messageId: null },
      createdAt: ms(p.createdAt),
    };
  });
}

export function floatingIpObservations(f: ListedFloatingIp): Observation[] {
  if (f.portId === null) return [];
  const address = storedIp(f.address);
  return [{
    slot: `fip:${f.id}`, identity: f.portId, holderKey: f.portId,
    holder: { address, kind: 'floating', instanceId: f.instanceId ?? null, port: f.portId, mac: null, network: f.networkId ?? null, project: f.project ?? null, messageId: null },
    createdAt: ms(f.createdAt),
  }];
}

export function routerObservations(r: ListedRouter): Observation[] {
  return r.gatewayIps.map((given) => {
    const address = storedIp(given);
    return {
      slot: `router-gw:${r.id}|${address}`, identity: '-', holderKey: r.id,
      holder: { address, kind: 'router-gateway', instanceId: null, port: null, mac: null, network: r.gatewayNetworkId ?? null, project: r.project ?? null, messageId: null },
      createdAt: ms(r.createdAt),
    };
  });
}

export function oneVmObservations(vm: ListedOneVm): Observation[] {
  if (vm.done) return [];
  const id = String(vm.id);
  return vm.nics.flatMap((nic) => nic.addresses.map((given) => {
    const address = storedIp(given);
    return {
      slot: `one-nic:${id}/${nic.nicId}|${address}`, identity: id, holderKey: id,
      holder: { address, kind: 'nic' as const, instanceId: id, port: nic.target ?? null, mac: nic.mac ?? null, network: nic.network ?? null, project: vm.group ?? null, messageId: null },
      createdAt: ms(vm.createdAt),
    };
  }));
}

/** Nova's addresses as `instance|address` pairs: what its own placements are compared with. */
export function serverPairs(s: ListedServer): string[] {
  return s.addresses.map((a) => `${s.id}|${storedIp(a.address)}`);
}

const key = (slot: string, identity: string) => `${slot}\u0000${identity}`;
const pairKey = (identity: string) => `pair\u0000${identity}`;
const isPairSlot = (slot: string) => slot.startsWith('instance:') || slot.startsWith('mac:') || slot.startsWith('nova-floating:');

/**
 * Keys of what one listing showed, across its pages. One short string per
 * listed address: the listing itself is never held in memory.
 */
export class Seen {
  readonly #keys = new Set<string>();
  add(o: Observation): void {
    this.#keys.add(key(o.slot, o.identity));
  }
  addPair(pair: string): void {
    this.#keys.add(pairKey(pair));
  }
  has(slot: string, identity: string): boolean {
    return this.#keys.has(isPairSlot(slot) ? pairKey(identity) : key(slot, identity));
  }
}

function kindOf(k: string): DriftKind {
  return k === 'floating' || k === 'nic' || k === 'router-gateway' ? k : 'fixed';
}

/**
 * Records the holders a page showed at `at` that the ledger does not have
 * then, and re-derives their slots; counts them in `drift`.
 */
export async function observePage(db: Kysely<LedgerSchema>, pass: Pass, at: number, observations: readonly Observation[], seen: Seen, drift: Drift): Promise<void> {
  for (const o of observations) seen.add(o);
  // Compared with the intervals of every notification applied so far.
  await deriveAll(db, { cloud: pass.cloud });
  for (let i = 0; i < observations.length; i += CHUNK) {
    const chunk = observations.slice(i, i + CHUNK);
    await db.transaction().execute(async (trx) => {
      // Before reading what is held: a derivation running meanwhile would otherwise write the same slots (derive.ts).
      await lockDerivation(trx);
      const slots = [...new Set(chunk.map((o) => o.slot))];
      const held = await trx.selectFrom('address_intervals').select(['slot', 'instance_id', 'port', 'address']).where('cloud', '=', pass.cloud).where('slot', 'in', slots)
        .where('valid_from', '<=', at).where((eb) => eb.or([eb('valid_to', 'is', null), eb('valid_to', '>', at)])).execute();
      const agreed = new Set(held.map((r) => key(r.slot, identityOf(r.slot, r))));
      const t = touched();
      const rows = [];
      for (const o of chunk) {
        if (agreed.has(key(o.slot, o.identity))) continue;
        const bounds = [pass.since, o.createdAt].filter((x): x is number => typeof x === 'number');
        rows.push({
          cloud: pass.cloud, slot: o.slot, at, op: 'seen', holder_key: o.holderKey, address: o.holder.address, kind: o.holder.kind,
          instance_id: o.holder.instanceId, port: o.holder.port, mac: o.holder.mac, network: o.holder.network, project: o.holder.project,
          message_id: OBSERVED(pass), since: bounds.length === 0 ? null : Math.min(at, Math.max(...bounds)),
        });
        touchSlot(t, o.slot, at);
        drift[kindOf(o.holder.kind)].added += 1;
      }
      if (rows.length === 0) return;
      await trx.insertInto('address_changes').values(rows).execute();
      await addHolderSlots(trx, rows);
      await rederive(trx, pass.cloud, t);
    });
  }
}

/**
 * After a complete listing: every interval of the listing's slots that was
 * open before the listing started and that the listing did not show gets an
 * `unseen` fact at `at` (the listing's end).
 */
export async function closeUnseen(db: Kysely<LedgerSchema>, pass: Pass, at: number, seen: Seen, drift: Drift): Promise<void> {
  await deriveAll(db, { cloud: pass.cloud });
  for (const [lo, hi] of COVERED[pass.listing]) {
    let after = -1;
    for (;;) {
      // Keyset paging by id: the scan holds one page at a time.
      const page = await db.selectFrom('address_intervals').select(['id', 'slot', 'instance_id', 'port', 'address', 'kind', 'network', 'project', 'mac'])
        .where('cloud', '=', pass.cloud).where('slot', '>=', lo).where('slot', '<', hi).where('valid_to', 'is', null)
        .where('valid_from', '<', pass.startedAt).where('id', '>', after).orderBy('id').limit(CHUNK).execute();
      if (page.length === 0) break;
      after = Number(page.at(-1)?.id ?? after);
      const gone = page.filter((r) => !seen.has(r.slot, identityOf(r.slot, r)));
      if (gone.length === 0) continue;
      await db.transaction().execute(async (trx) => {
        await lockDerivation(trx);
        const t = touched();
        const unseen = gone.map((r) => ({
          cloud: pass.cloud, slot: r.slot, at, op: 'unseen', holder_key: holderKeyOf(r.slot, r), address: r.address, kind: r.kind,
          instance_id: null, port: null, mac: null, network: null, project: null, message_id: OBSERVED(pass), since: pass.since,
        }));
        await trx.insertInto('address_changes').values(unseen).execute();
        await addHolderSlots(trx, unseen);
        for (const r of gone) {
          touchSlot(t, r.slot, at);
          drift[kindOf(r.kind)].closed += 1;
        }
        await rederive(trx, pass.cloud, t);
      });
    }
  }
}

/** Instances a listing shows that the ledger has never heard of: recorded with what the listing says (any notification overrides). */
export async function observeInstances(db: Kysely<LedgerSchema>, cloud: string, at: number, listed: ReadonlyArray<{ id: string; name?: string | undefined; project?: string | undefined; user?: string | undefined; host?: string | undefined; state?: string | undefined; createdAt?: Date | undefined; projectName?: string | undefined; userName?: string | undefined; namesFrom?: NameSource | undefined }>, drift: Drift): Promise<void> {
  if (listed.length === 0) return;
  await db.transaction().execute(async (trx) => {
    const ids = listed.map((s) => s.id);
    const known = new Set((await trx.selectFrom('instances').select('instance_id').where('cloud', '=', cloud).where('instance_id', 'in', ids).execute()).map((r) => r.instance_id));
    // Listed again after a listing that missed it: it was never gone.
    await trx.updateTable('instances').set({ gone_after: null, gone_by: null }).where('cloud', '=', cloud).where('instance_id', 'in', ids).where('gone_by', 'is not', null).where('gone_by', '<=', at).execute();
    const fresh = listed.filter((s) => !known.has(s.id));
    if (fresh.length === 0) return;
    // Event time 0: every notification about the instance is newer and overrides these fields.
    await trx.insertInto('instances').values(fresh.map((s) => ({
      cloud, instance_id: s.id, name: s.name ?? null, project: s.project ?? null, user_id: s.user ?? null, host: s.host ?? null, image: null, flavor: null,
      state: s.state ?? null, created_at: ms(s.createdAt) ?? null, deleted_at: null, deleted_by: null, first_seen_at: at, last_event_at: 0,
      user_name: s.userName ?? null, project_name: s.projectName ?? null,
      // Read when listed.
      user_name_source: s.userName === undefined ? null : s.namesFrom ?? null, user_name_at: s.userName === undefined ? null : at,
      project_name_source: s.projectName === undefined ? null : s.namesFrom ?? null, project_name_at: s.projectName === undefined ? null : at,
    }))).onConflict((oc) => oc.columns(['cloud', 'instance_id']).doNothing()).execute();
    drift.instance.added += fresh.length;
  });
}

/**
 * Instances the ledger thinks alive (no end reported, not already found gone)
 * that a complete listing started at `startedAt` omits: gone somewhere between
 * the previous listing (or their last event) and `at`.
 */
export async function closeUnlisted(db: Kysely<LedgerSchema>, pass: Pass, at: number, listed: ReadonlySet<string>, drift: Drift): Promise<void> {
  let after = '';
  for (;;) {
    const page = await db.selectFrom('instances').select(['instance_id', 'last_event_at', 'first_seen_at']).where('cloud', '=', pass.cloud)
      .where('ended_at', 'is', null).where('gone_by', 'is', null).where('first_seen_at', '<', pass.startedAt)
      .where('instance_id', '>', after).orderBy('instance_id').limit(CHUNK).execute();
    if (page.length === 0) return;
    after = page.at(-1)?.instance_id ?? after;
    const gone = page.filter((r) => !listed.has(r.instance_id));
    for (const r of gone) {
      const goneAfter = Math.min(at, Math.max(pass.since ?? 0, r.last_event_at, r.first_seen_at));
      await db.updateTable('instances').set({ gone_after: goneAfter, gone_by: at }).where('cloud', '=', pass.cloud).where('instance_id', '=', r.instance_id).execute();
    }
    drift.instance.closed += gone.length;
  }
}

/** Ports and routers a listing shows that the ledger lacks: their owner links floating IPs and gateways to holders. */
export async function observePorts(db: Kysely<LedgerSchema>, cloud: string, ports: readonly ListedPort[]): Promise<void> {
  if (ports.length === 0) return;
  await db.insertInto('ports').values(ports.map((p) => ({
    cloud, port_id: p.id, device_id: p.deviceId === '' ? null : p.deviceId ?? null, device_owner: p.deviceOwner === '' ? null : p.deviceOwner ?? null,
    network: p.networkId ?? null, mac: p.mac ?? null, project: p.project ?? null, deleted_at: null, last_event_at: 0,
  }))).onConflict((oc) => oc.columns(['cloud', 'port_id']).doNothing()).execute();
}

export async function observeRouters(db: Kysely<LedgerSchema>, cloud: string, routers: readonly ListedRouter[]): Promise<void> {
  if (routers.length === 0) return;
  await db.insertInto('routers').values(routers.map((r) => ({ cloud, router_id: r.id, name: r.name ?? null, project: r.project ?? null, deleted_at: null, last_event_at: 0 })))
    .onConflict((oc) => oc.columns(['cloud', 'router_id']).doNothing()).execute();
}

/** The start of the last complete listing of this kind, the lower bound of what changed unseen since. */
export async function lastPassStart(db: Kysely<LedgerSchema>, cloud: string, listing: Listing): Promise<number | null> {
  const row = await db.selectFrom('reconcile_passes').select((eb) => eb.fn.max<number>('started_at').as('t')).where('cloud', '=', cloud).where('listing', '=', listing).where('outcome', '=', 'ok').executeTakeFirst();
  return row?.t === null || row?.t === undefined ? null : Number(row.t);
}

export async function recordPass(db: Kysely<LedgerSchema>, p: { cloud: string; listing: Listing; startedAt: number; finishedAt: number; outcome: 'ok' | 'failed'; error?: string | undefined; drift: Drift }): Promise<void> {
  await db.insertInto('reconcile_passes').values({
    cloud: p.cloud, listing: p.listing, started_at: p.startedAt, finished_at: p.finishedAt, outcome: p.outcome, error: p.error ?? null, drift: JSON.stringify(p.drift),
  }).execute();
}

export interface PassSummary {
  listing: string;
  startedAt: number;
  finishedAt: number;
  outcome: string;
  error: string | null;
  drift: Drift;
}

/** The latest pass of each listing of a cloud (for its status). */
export async function latestPasses(db: Kysely<LedgerSchema>, cloud: string): Promise<PassSummary[]> {
  const rows = await db.selectFrom('reconcile_passes as p').selectAll('p').where('p.cloud', '=', cloud)
    .where('p.id', 'in', (eb) => eb.selectFrom('reconcile_passes').select((e) => e.fn.max<number>('id').as('id')).where('cloud', '=', cloud).groupBy('listing')).orderBy('p.listing').execute();
  return rows.map((r) => ({ listing: r.listing, startedAt: Number(r.started_at), finishedAt: Number(r.finished_at), outcome: r.outcome, error: r.error, drift: JSON.parse(r.drift) as Drift }));
}
