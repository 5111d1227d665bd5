// What a derivation pass derives again (derive.ts, rederive): a running
// instance is reported over and over (updates, Nova's hourly `exists`), each
// time with the same addresses and the same full list. Those reports add
// facts but change no interval, and deriving the instance's slots again for
// each would read its whole history every time: work that grows for as long
// as the instance runs. A pass derives a slot only when something new can
// change it: a fact that says more than its interval, a list that leaves its
// address out, an end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Kysely } from 'kysely';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import type { LedgerSchema } from '../../operator/ledger/schema.ts';
import { applyBatch } from '../../operator/ledger/apply.ts';
import { derivePass } from '../../operator/ledger/derive-pending.ts';
import { closeUnseen, Seen } from '../../operator/ledger/observe.ts';
import { emptyDrift } from '../../operator/domain/inventory.ts';
import { traceAddress } from '../../operator/ledger/trace.ts';
import { prepare } from '../../operator/intake/pipeline.ts';
import { neutronFloatingIp, neutronPort, neutronPortMessage, novaInstance, type NeutronPortView, type VmSpec } from '../sim/openstack-messages.ts';

const CLOUD = 'c';
const T = Date.parse('2026-05-04T08:00:00Z');
const H = 3_600_000;
const V = '6f0c2a55-6d8f-4f3c-9a57-2f0a3f1e0c01';
const P1 = '0b6f9a40-1111-4c43-8f55-000000000001';
const P2 = '0b6f9a40-2222-4c43-8f55-000000000002';
const A1 = '10.0.0.5';
const A2 = '10.0.1.9';

const port1 = { portId: P1, address: A1, mac: 'fa:16:3e:00:00:01', network: 'private' };
const port2 = { portId: P2, address: A2, mac: 'fa:16:3e:00:00:02', network: 'backend' };
const vm = (ports: VmSpec['ports']): VmSpec => ({ id: V, name: 'web', project: 'physics', user: 'bob', host: 'kvm-1', createdAt: new Date(T), ports });

type Sent = { body: string; exchange: 'nova' | 'neutron' };
const nova = (body: string): Sent => ({ body, exchange: 'nova' });
const neutron = (body: string): Sent => ({ body, exchange: 'neutron' });
/** Received a second after the event it reports (oslo's stamp is the event's time). */
const receivedAt = (body: string): Date => new Date(Date.parse(`${/"timestamp": ?"([^"]+)"/.exec((JSON.parse(body) as { 'oslo.message': string })['oslo.message'])?.[1] ?? ''}Z`) + 1_000);

async function ledger(): Promise<Kysely<LedgerSchema>> {
  const l = openLedgerDb('sqlite::memory:');
  await migrateToLatest(l);
  return l.db;
}

/** Applies the messages as one intake batch and runs the pass after it; returns how many slots the pass derived. */
async function batch(db: Kysely<LedgerSchema>, messages: readonly Sent[]): Promise<number> {
  const recorded = messages.map((m) => {
    const p = prepare(m.body, {
      cloud: CLOUD, exchange: m.exchange, routingKey: m.exchange === 'nova' ? 'versioned_notifications.info' : 'notifications.info', receivedAt: receivedAt(m.body),
    });
    if (!p.ok) throw new Error(p.error.message);
    return p.recorded;
  });
  await applyBatch(db, recorded, undefined, { deferDerivation: { at: 0 } });
  const pass = await derivePass(db, { cloud: CLOUD });
  assert.equal(pass.rows, 1);
  return pass.slots;
}

async function holderOf(db: Kysely<LedgerSchema>, address: string, at: number): Promise<string[]> {
  return (await traceAddress(db, address, new Date(at), CLOUD)).holders.map((h) => `${h.instance?.id ?? '-'} ${h.mac ?? '-'}`);
}

test('an instance reported every hour: its slots are derived once, whatever how long it runs, and its end still bounds them', async () => {
  const db = await ledger();
  const created = await batch(db, [
    neutron(neutronPort({ ...port1, project: 'physics', instanceId: V }, 'create.end', new Date(T + 1_000))),
    nova(novaInstance(vm([port1]), 'create.end', new Date(T + 2_000))),
  ]);
  assert.ok(created >= 1, 'the new port slot is derived');
  for (let hour = 1; hour <= 30; hour += 1) {
    const slots = await batch(db, [nova(novaInstance(vm([port1]), hour % 2 === 0 ? 'exists' : 'update', new Date(T + hour * H)))]);
    assert.equal(slots, 0, `hour ${hour}: a report that repeats the instance's addresses and list derives nothing`);
  }
  assert.deepEqual(await holderOf(db, A1, T + 20 * H), [`${V} ${port1.mac}`]);
  const deleted = await batch(db, [nova(novaInstance(vm([port1]), 'delete.end', new Date(T + 31 * H), { state: 'deleted', deletedAt: new Date(T + 31 * H) }))]);
  assert.ok(deleted >= 1, 'the end bounds the slot: derived');
  assert.deepEqual(await holderOf(db, A1, T + 30 * H), [`${V} ${port1.mac}`]);
  assert.deepEqual(await holderOf(db, A1, T + 32 * H), [], 'nobody holds the address after the deletion');
});

test("a full list that leaves an address out derives that address's slot alone, and releases it", async () => {
  const db = await ledger();
  await batch(db, [
    neutron(neutronPort({ ...port1, project: 'physics', instanceId: V }, 'create.end', new Date(T + 1_000))),
    neutron(neutronPort({ ...port2, project: 'physics', instanceId: V }, 'create.end', new Date(T + 1_000))),
    nova(novaInstance(vm([port1, port2]), 'create.end', new Date(T + 2_000))),
  ]);
  // The second interface detached: Nova's next list names the first alone.
  const slots = await batch(db, [nova(novaInstance(vm([port1]), 'update', new Date(T + H)))]);
  assert.equal(slots, 1, 'only the slot the list leaves out');
  assert.deepEqual(await holderOf(db, A2, T + H / 2), [`${V} ${port2.mac}`]);
  assert.deepEqual(await holderOf(db, A2, T + 2 * H), [], 'released by the list');
  assert.deepEqual(await holderOf(db, A1, T + 2 * H), [`${V} ${port1.mac}`]);
});

test("a port's list that leaves a fixed address out derives that slot alone, and releases it", async () => {
  const db = await ledger();
  const view = (fixedIps: string[], at: number): NeutronPortView => ({
    id: P1, name: 'eth0', networkId: 'private', project: 'physics', mac: port1.mac, fixedIps: fixedIps.map((address) => ({ address, subnetId: 'subnet-1' })),
    deviceId: V, deviceOwner: 'compute:nova', bindingHost: 'kvm-1', status: 'ACTIVE', createdAt: new Date(T), updatedAt: new Date(at), revision: 1,
  });
  const opts = { publisher: 'network.controller', context: { userId: 'nova-service', projectId: 'service' } };
  await batch(db, [neutron(neutronPortMessage(view([A1, A2], T), 'create.end', new Date(T + 1_000), opts))]);
  // The second fixed address removed from the port: Neutron's next report lists the first alone.
  const slots = await batch(db, [neutron(neutronPortMessage(view([A1], T + H), 'update.end', new Date(T + H), opts))]);
  assert.equal(slots, 1, 'only the slot the list leaves out');
  assert.deepEqual(await holderOf(db, A2, T + H / 2), [`${V} ${port1.mac}`]);
  assert.deepEqual(await holderOf(db, A2, T + 2 * H), [], 'released by the list');
  assert.deepEqual(await holderOf(db, A1, T + 2 * H), [`${V} ${port1.mac}`]);
});

test('a report inside an interval that says more than it (a MAC, a network) is derived, in either order of arrival', async () => {
  // The floating IP's port_details name the instance on the port's fixed address, without its MAC or network;
  // Neutron's own report of the port, an hour later, names them.
  const fip = neutron(neutronFloatingIp({ id: 'f-1', address: '198.51.100.20', network: 'public', project: 'physics' }, 'update.end', new Date(T), { portId: P1, fixedAddress: A1, instanceId: V }));
  const portReport = neutron(neutronPort({ ...port1, project: 'physics', instanceId: V }, 'update.end', new Date(T + H)));
  for (const order of [[fip, portReport], [portReport, fip]]) {
    const db = await ledger();
    await batch(db, [order[0] as Sent]);
    const slots = await batch(db, [order[1] as Sent]);
    assert.ok(slots >= 1);
    const rows = await db.selectFrom('address_intervals').select(['mac', 'network', 'valid_from']).where('slot', '=', `port:${P1}|${A1}`).execute();
    assert.deepEqual(rows, [{ mac: port1.mac, network: 'private', valid_from: T }]);
  }
});

test('a report inside an interval that a listing ended is derived: it moves the last time the holding is certain', async () => {
  const db = await ledger();
  await batch(db, [
    neutron(neutronPort({ ...port1, project: 'physics', instanceId: V }, 'create.end', new Date(T + 1_000))),
    nova(novaInstance(vm([port1]), 'create.end', new Date(T + 2_000))),
  ]);
  // A listing of the ports, two hours on, no longer shows it: held until some time after the last report.
  await closeUnseen(db, { cloud: CLOUD, listing: 'ports', startedAt: T + 2 * H, since: null, id: 'p1' }, T + 2 * H, new Seen(), emptyDrift());
  const before = await traceAddress(db, A1, new Date(T + H / 2), CLOUD);
  assert.equal(before.holders[0]?.to, new Date(T + 2_000).toISOString());
  // Nova's report of the hour in between arrives late: held for certain until then.
  await batch(db, [nova(novaInstance(vm([port1]), 'update', new Date(T + H)))]);
  const after = await traceAddress(db, A1, new Date(T + H / 2), CLOUD);
  assert.equal(after.holders[0]?.to, new Date(T + H).toISOString());
});
