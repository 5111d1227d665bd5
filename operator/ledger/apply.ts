// Applies decoded notifications to the ledger. Idempotent per (cloud, message
// id): a notification already recorded changes nothing. Event time decides
// everything, so late and out-of-order deliveries land where they belong.
import type { Kysely, Transaction } from 'kysely';
import type { LedgerSchema } from './schema.ts';
import type {
  DecodedNotification, FloatingIpEvent, InstanceEvent, InstanceSnapshot, OneVmEvent, PortEvent, RouterInterfaceEvent,
} from '../domain/events.ts';
import { bindIsRedundant, deriveIntervals, type ChangeOp, type ChangePoint, type HolderAttrs } from '../domain/intervals.ts';

export type ApplyOutcome = 'applied' | 'duplicate' | 'ignored';

type Tx = Transaction<LedgerSchema>;

export interface Recorded {
  notification: DecodedNotification;
  /** The body as received, kept as evidence. */
  body: string;
}

/**
 * Runs inside the transaction that applies a notification, after its effects:
 * whatever it writes commits (or not) together with them. The capture side
 * records its intents here.
 */
export type InTransaction = (trx: Kysely<LedgerSchema>, n: DecodedNotification) => Promise<unknown>;

/** Applies a batch in one transaction; outcomes are in input order. */
export async function applyBatch(db: Kysely<LedgerSchema>, batch: readonly Recorded[], inTransaction?: InTransaction): Promise<ApplyOutcome[]> {
  return db.transaction().execute(async (trx) => {
    const out: ApplyOutcome[] = [];
    for (const r of batch) {
      const outcome = await applyOne(trx, r);
      if (outcome === 'applied' && inTransaction !== undefined) await inTransaction(trx, r.notification);
      out.push(outcome);
    }
    return out;
  });
}

async function applyOne(trx: Tx, { notification: n, body }: Recorded): Promise<ApplyOutcome> {
  const inserted = await trx
    .insertInto('notifications')
    .values({
      cloud: n.cloud, source: n.source, message_id: n.messageId, id_kind: n.idKind, event_type: n.eventType,
      publisher: n.publisher ?? null, occurred_at: n.occurredAt.getTime(), received_at: n.receivedAt.getTime(),
      outcome: n.ignored ? 'ignored' : 'applied', body,
    })
    .onConflict((oc) => oc.columns(['cloud', 'message_id']).doNothing())
    .executeTakeFirst();
  if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) === 0) return 'duplicate';
  if (n.ignored) return 'ignored';
  for (const e of n.events) {
    switch (e.type) {
      case 'instance': await applyInstance(trx, n, e); break;
      case 'port': await applyPort(trx, n, e); break;
      case 'floatingip': await applyFloatingIp(trx, n, e); break;
      case 'router_interface': await applyRouterInterface(trx, n, e); break;
      case 'one_vm': await applyOneVm(trx, n, e); break;
    }
  }
  return 'applied';
}

// ---------------------------------------------------------------------------
// Address slots

interface Change {
  op: ChangeOp;
  holderKey: string;
  holder: HolderAttrs;
}

async function addChange(trx: Tx, cloud: string, slot: string, at: number, change: Change): Promise<void> {
  const rows = await trx.selectFrom('address_changes').selectAll().where('cloud', '=', cloud).where('slot', '=', slot).orderBy('at').orderBy('id').execute();
  const points: ChangePoint[] = rows.map((r) => ({
    at: r.at, seq: r.id, op: r.op as ChangeOp, holderKey: r.holder_key,
    holder: {
      address: r.address, kind: r.kind as HolderAttrs['kind'], instanceId: r.instance_id, port: r.port, mac: r.mac,
      network: r.network, project: r.project, messageId: r.message_id,
    },
  }));
  if (change.op === 'bind' && bindIsRedundant(points, change.holderKey, at)) return;
  const h = change.holder;
  const { insertId } = await trx.insertInto('address_changes').values({
    cloud, slot, at, op: change.op, holder_key: change.holderKey, address: h.address, kind: h.kind, instance_id: h.instanceId,
    port: h.port, mac: h.mac, network: h.network, project: h.project, message_id: h.messageId,
  }).executeTakeFirst();
  points.push({ at, seq: insertId === undefined ? Number.MAX_SAFE_INTEGER : Number(insertId), op: change.op, holderKey: change.holderKey, holder: h });
  await trx.deleteFrom('address_intervals').where('cloud', '=', cloud).where('slot', '=', slot).execute();
  const derived = deriveIntervals(points);
  if (derived.length > 0) {
    await trx.insertInto('address_intervals').values(derived.map((d) => ({
      cloud, slot, address: d.address, kind: d.kind, network: d.network, port: d.port, mac: d.mac, instance_id: d.instanceId,
      project: d.project, valid_from: d.from, valid_to: d.to, opened_by: d.openedBy, closed_by: d.closedBy,
    }))).execute();
  }
}

function releaseOf(address: string, kind: HolderAttrs['kind'], messageId: string): HolderAttrs {
  return { address, kind, instanceId: null, port: null, mac: null, network: null, project: null, messageId };
}

/** Slots whose holder at `at` matches, e.g. the fixed addresses an instance holds. */
async function openSlots(trx: Tx, cloud: string, at: number, where: { instanceId?: string; port?: string; kinds: string[] }) {
  let q = trx.selectFrom('address_intervals').select(['slot', 'address', 'kind', 'port'])
    .where('cloud', '=', cloud).where('kind', 'in', where.kinds).where('valid_from', '<=', at)
    .where((eb) => eb.or([eb('valid_to', 'is', null), eb('valid_to', '>', at)]));
  if (where.instanceId !== undefined) q = q.where('instance_id', '=', where.instanceId);
  if (where.port !== undefined) q = q.where('port', '=', where.port);
  return q.execute();
}

// ---------------------------------------------------------------------------
// Instances

interface InstanceFields {
  name?: string | undefined;
  project?: string | undefined;
  user?: string | undefined;
  host?: string | undefined;
  image?: string | undefined;
  flavor?: string | undefined;
  state?: string | undefined;
  createdAt?: Date | undefined;
  /** `null` clears (a restore after soft delete); undefined leaves as is. */
  deletedAt?: Date | null | undefined;
  deletedBy?: string | undefined;
}

async function upsertInstance(trx: Tx, cloud: string, id: string, at: number, f: InstanceFields): Promise<void> {
  const row = await trx.selectFrom('instances').selectAll().where('cloud', '=', cloud).where('instance_id', '=', id).executeTakeFirst();
  const ms = (d: Date | undefined) => (d === undefined ? undefined : d.getTime());
  if (row === undefined) {
    await trx.insertInto('instances').values({
      cloud, instance_id: id, name: f.name ?? null, project: f.project ?? null, user_id: f.user ?? null, host: f.host ?? null,
      image: f.image ?? null, flavor: f.flavor ?? null, state: f.state ?? null, created_at: ms(f.createdAt) ?? null,
      deleted_at: f.deletedAt === null ? null : ms(f.deletedAt) ?? null, deleted_by: f.deletedBy ?? null,
      first_seen_at: at, last_event_at: at,
    }).execute();
    return;
  }
  // A newer event overwrites; an older one only fills what is still unknown.
  const newer = at >= row.last_event_at;
  const pick = <T>(value: T | undefined, current: T | null): T | null => (value !== undefined && (newer || current === null) ? value : current);
  let deletedAt = row.deleted_at;
  if (f.deletedAt === null && newer) deletedAt = null;
  else if (f.deletedAt instanceof Date && (newer || deletedAt === null)) deletedAt = f.deletedAt.getTime();
  await trx.updateTable('instances').set({
    name: pick(f.name, row.name), project: pick(f.project, row.project), user_id: pick(f.user, row.user_id), host: pick(f.host, row.host),
    image: pick(f.image, row.image), flavor: pick(f.flavor, row.flavor), state: pick(f.state, row.state),
    created_at: pick(ms(f.createdAt), row.created_at), deleted_at: deletedAt,
    // The first deleter named wins: a reclaim's periodic context names nobody.
    deleted_by: row.deleted_by ?? f.deletedBy ?? null,
    first_seen_at: Math.min(row.first_seen_at, at), last_event_at: Math.max(row.last_event_at, at),
  }).where('cloud', '=', cloud).where('instance_id', '=', id).execute();
}

const DELETING = new Set(['delete.start', 'delete.end', 'soft_delete.start', 'soft_delete.end', 'force_delete.start', 'force_delete.end']);
const GONE = new Set(['delete.end', 'force_delete.end']);

function instanceFields(e: InstanceEvent, n: DecodedNotification): InstanceFields {
  const i: InstanceSnapshot = e.instance;
  const deleter = e.actor?.user ?? (e.format === 'legacy' ? n.context.userId : undefined);
  let deletedAt: Date | null | undefined = i.deletedAt;
  if (GONE.has(e.action) || e.action === 'soft_delete.end') deletedAt = i.deletedAt ?? i.terminatedAt ?? n.occurredAt;
  if (e.action === 'restore.end') deletedAt = null;
  return {
    name: i.name, project: i.project, user: i.user, host: i.host, image: i.image, flavor: i.flavor, state: i.state,
    createdAt: i.createdAt, deletedAt, deletedBy: DELETING.has(e.action) ? deleter : undefined,
  };
}

/** The slot of an instance's fixed address: its port when known, so Nova's and Neutron's reports of it coincide. */
async function fixedSlot(trx: Tx, cloud: string, instanceId: string, a: { address: string; portId?: string | undefined; mac?: string | undefined }): Promise<{ slot: string; port: string | null }> {
  if (a.portId !== undefined) return { slot: `port:${a.portId}|${a.address}`, port: a.portId };
  if (a.mac !== undefined) {
    const p = await trx.selectFrom('ports').select('port_id').where('cloud', '=', cloud).where('mac', '=', a.mac).orderBy('last_event_at', 'desc').executeTakeFirst();
    if (p !== undefined) return { slot: `port:${p.port_id}|${a.address}`, port: p.port_id };
    return { slot: `mac:${a.mac}|${a.address}`, port: null };
  }
  return { slot: `instance:${instanceId}|${a.address}`, port: null };
}

async function linkEvent(trx: Tx, n: DecodedNotification, instanceId: string, action: string): Promise<void> {
  await trx.insertInto('instance_events').values({ cloud: n.cloud, instance_id: instanceId, message_id: n.messageId, at: n.occurredAt.getTime(), event_type: n.eventType, action })
    .onConflict((oc) => oc.columns(['cloud', 'instance_id', 'message_id']).doNothing()).execute();
}

async function applyInstance(trx: Tx, n: DecodedNotification, e: InstanceEvent): Promise<void> {
  const at = n.occurredAt.getTime();
  const id = e.instance.id;
  await upsertInstance(trx, n.cloud, id, at, instanceFields(e, n));
  await linkEvent(trx, n, id, e.action);
  const kinds = ['fixed', 'floating'];
  const current = new Set<string>();
  for (const a of e.addresses ?? []) {
    let slot: string;
    let port: string | null = null;
    if (a.kind === 'fixed') ({ slot, port } = await fixedSlot(trx, n.cloud, id, a));
    else slot = `nova-floating:${id}|${a.address}`;
    current.add(slot);
    await addChange(trx, n.cloud, slot, at, {
      op: 'bind', holderKey: id,
      holder: { address: a.address, kind: a.kind, instanceId: id, port, mac: a.mac ?? null, network: a.network ?? null, project: e.instance.project ?? null, messageId: n.messageId },
    });
  }
  const gone = GONE.has(e.action) || e.instance.state === 'deleted';
  if (e.addressesAuthoritative || gone) {
    for (const held of await openSlots(trx, n.cloud, at, { instanceId: id, kinds })) {
      // Floating IPs from Neutron belong to the port, not the instance: port events close them.
      if (held.slot.startsWith('fip:') || current.has(held.slot)) continue;
      await addChange(trx, n.cloud, held.slot, at, { op: 'release', holderKey: id, holder: releaseOf(held.address, held.kind as HolderAttrs['kind'], n.messageId) });
    }
  }
}

// ---------------------------------------------------------------------------
// Neutron

async function upsertPort(trx: Tx, cloud: string, at: number, p: { id: string; deviceId?: string | undefined; deviceOwner?: string | undefined; networkId?: string | undefined; mac?: string | undefined; project?: string | undefined }, deleted: boolean): Promise<void> {
  const row = await trx.selectFrom('ports').selectAll().where('cloud', '=', cloud).where('port_id', '=', p.id).executeTakeFirst();
  if (row === undefined) {
    await trx.insertInto('ports').values({
      cloud, port_id: p.id, device_id: p.deviceId ?? null, device_owner: p.deviceOwner ?? null, network: p.networkId ?? null,
      mac: p.mac ?? null, project: p.project ?? null, deleted_at: deleted ? at : null, last_event_at: at,
    }).execute();
    return;
  }
  const newer = at >= row.last_event_at;
  await trx.updateTable('ports').set({
    device_id: newer && !deleted ? p.deviceId ?? null : row.device_id ?? p.deviceId ?? null,
    device_owner: newer && !deleted ? p.deviceOwner ?? null : row.device_owner ?? p.deviceOwner ?? null,
    network: row.network ?? p.networkId ?? null, mac: row.mac ?? p.mac ?? null, project: row.project ?? p.project ?? null,
    deleted_at: deleted ? Math.min(row.deleted_at ?? at, at) : row.deleted_at,
    last_event_at: Math.max(row.last_event_at, at),
  }).where('cloud', '=', cloud).where('port_id', '=', p.id).execute();
}

async function applyPort(trx: Tx, n: DecodedNotification, e: PortEvent): Promise<void> {
  const at = n.occurredAt.getTime();
  const p = e.port;
  const deleted = e.action === 'delete.end';
  await upsertPort(trx, n.cloud, at, p, deleted);
  if (p.deviceOwner?.startsWith('compute:') === true && p.deviceId !== undefined) await linkEvent(trx, n, p.deviceId, `port.${e.action}`);
  if (deleted) {
    // Neutron disassociates a deleted port's floating IPs without any
    // floatingip notification: this event is the only trace of it.
    for (const held of await openSlots(trx, n.cloud, at, { port: p.id, kinds: ['fixed', 'floating'] })) {
      const change: Change = held.slot.startsWith('fip:')
        ? { op: 'release', holderKey: p.id, holder: releaseOf(held.address, 'floating', n.messageId) }
        : { op: 'release_any', holderKey: '', holder: releaseOf(held.address, 'fixed', n.messageId) };
      await addChange(trx, n.cloud, held.slot, at, change);
    }
    for (const ip of p.fixedIps) {
      await addChange(trx, n.cloud, `port:${p.id}|${ip.address}`, at, { op: 'release_any', holderKey: '', holder: releaseOf(ip.address, 'fixed', n.messageId) });
    }
    return;
  }
  const onInstance = p.deviceOwner?.startsWith('compute:') === true && p.deviceId !== undefined;
  const holderKey = onInstance ? (p.deviceId as string) : `device:${p.deviceId ?? ''}`;
  const current = new Set<string>();
  for (const ip of p.fixedIps) {
    const slot = `port:${p.id}|${ip.address}`;
    current.add(slot);
    await addChange(trx, n.cloud, slot, at, {
      op: 'bind', holderKey,
      holder: { address: ip.address, kind: 'fixed', instanceId: onInstance ? (p.deviceId ?? null) : null, port: p.id, mac: p.mac ?? null, network: p.networkId ?? null, project: p.project ?? null, messageId: n.messageId },
    });
  }
  if (e.idOnly) return;
  for (const held of await openSlots(trx, n.cloud, at, { port: p.id, kinds: ['fixed'] })) {
    if (!current.has(held.slot) && held.slot.startsWith(`port:${p.id}|`)) {
      await addChange(trx, n.cloud, held.slot, at, { op: 'release_any', holderKey: '', holder: releaseOf(held.address, 'fixed', n.messageId) });
    }
  }
}

async function applyFloatingIp(trx: Tx, n: DecodedNotification, e: FloatingIpEvent): Promise<void> {
  if (e.action === 'update.start') return;
  const at = n.occurredAt.getTime();
  const f = e.floatingIp;
  const slot = `fip:${f.id}`;
  const address = f.address ?? '';
  if (e.action === 'delete.end' || f.portId === null) {
    await addChange(trx, n.cloud, slot, at, { op: 'release_any', holderKey: '', holder: releaseOf(address, 'floating', n.messageId) });
    return;
  }
  if (f.portId === undefined || f.address === undefined) return;
  const port = await trx.selectFrom('ports').selectAll().where('cloud', '=', n.cloud).where('port_id', '=', f.portId).executeTakeFirst();
  const instanceId = f.instanceId ?? (port?.device_owner?.startsWith('compute:') === true ? port.device_id : null) ?? null;
  await addChange(trx, n.cloud, slot, at, {
    op: 'bind', holderKey: f.portId,
    holder: { address: f.address, kind: 'floating', instanceId, port: f.portId, mac: port?.mac ?? null, network: f.networkId ?? null, project: f.project ?? null, messageId: n.messageId },
  });
  // The port may already be known as deleted (its delete.end arrived first): the association ended then.
  if (port?.deleted_at !== null && port?.deleted_at !== undefined && port.deleted_at > at) {
    await addChange(trx, n.cloud, slot, port.deleted_at, { op: 'release', holderKey: f.portId, holder: releaseOf(f.address, 'floating', n.messageId) });
  }
}

async function applyRouterInterface(trx: Tx, n: DecodedNotification, e: RouterInterfaceEvent): Promise<void> {
  const at = n.occurredAt.getTime();
  await upsertPort(trx, n.cloud, at, { id: e.portId, deviceId: e.routerId, deviceOwner: 'network:router_interface', networkId: e.networkId, project: e.project }, e.action === 'delete');
}

// ---------------------------------------------------------------------------
// OpenNebula

const ONE_DONE = 6;

async function applyOneVm(trx: Tx, n: DecodedNotification, e: OneVmEvent): Promise<void> {
  const at = n.occurredAt.getTime();
  const vm = e.vm;
  const id = String(vm.id);
  const done = vm.state.code === ONE_DONE;
  const stateName = vm.state.name === 'ACTIVE' ? `ACTIVE/${vm.lcmState.name ?? vm.lcmState.code}` : vm.state.name ?? String(vm.state.code);
  const actor = vm.historyAction?.uid;
  await linkEvent(trx, n, id, stateName);
  await upsertInstance(trx, n.cloud, id, at, {
    name: vm.name, project: vm.gname, user: vm.uname, host: vm.host, state: stateName, createdAt: vm.stime,
    deletedAt: done ? (vm.etime ?? n.occurredAt) : undefined,
    deletedBy: done && actor !== undefined ? String(actor) : undefined,
  });
  const current = new Set<string>();
  if (!done) {
    for (const nic of vm.nics) {
      for (const address of [nic.ip, nic.ip6, nic.ip6Global, nic.ip6Ula]) {
        if (address === undefined) continue;
        const slot = `one-nic:${id}/${nic.nicId}|${address}`;
        current.add(slot);
        await addChange(trx, n.cloud, slot, at, {
          op: 'bind', holderKey: id,
          holder: { address, kind: 'nic', instanceId: id, port: nic.target ?? null, mac: nic.mac ?? null, network: nic.network ?? (nic.networkId === undefined ? null : String(nic.networkId)), project: vm.gname, messageId: n.messageId },
        });
      }
    }
  }
  // Every state event lists all NICs, so one missing now was detached; DONE releases all.
  for (const held of await openSlots(trx, n.cloud, at, { instanceId: id, kinds: ['nic'] })) {
    if (current.has(held.slot)) continue;
    await addChange(trx, n.cloud, held.slot, at, { op: 'release', holderKey: id, holder: releaseOf(held.address, 'nic', n.messageId) });
  }
}
