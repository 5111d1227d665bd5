// Reconciliation against a listing the test controls, run on each ledger
// engine (test/unit/reconcile.test.ts on SQLite, the integration test on
// PostgreSQL): what the ledger lacks becomes an observed fact with an honest
// uncertainty window, what it still holds and the API no longer lists is
// closed with one, a late exact notification replaces the bound, and a ledger
// that agrees shows no drift.
import assert from 'node:assert/strict';
import type { Kysely } from 'kysely';
import type { LedgerSchema } from '../../operator/ledger/schema.ts';
import { latestPasses } from '../../operator/ledger/observe.ts';
import { reconciledStatus } from '../../operator/reconcile/condition.ts';
import { traceAddress } from '../../operator/ledger/trace.ts';
import { instanceHistory } from '../../operator/ledger/instance-history.ts';
import { FakeClock } from '../../operator/kube/runtime/clock.ts';
import { CloudReconcile } from '../../operator/reconcile/cloud-reconcile.ts';
import { driftTotal, type ListedFloatingIp, type ListedOneVm, type ListedPort, type ListedRouter, type ListedServer, type OpenNebulaInventory, type OpenStackInventory } from '../../operator/domain/inventory.ts';
import { silentLogger } from '../../operator/log.ts';
import { at, fipEvent, fixed, instanceEvent, nic, notification, oneVmEvent, portEvent } from './events.ts';
import type { DecodedNotification } from '../../operator/domain/events.ts';

/** A cloud's API as plain arrays the test edits between passes, served two items a page. */
class FakeOpenStack implements OpenStackInventory {
  readonly type = 'openstack' as const;
  serversList: ListedServer[] = [];
  portsList: ListedPort[] = [];
  fipsList: ListedFloatingIp[] = [];
  routersList: ListedRouter[] = [];
  failPorts = false;
  async *#pages<T>(xs: readonly T[]): AsyncGenerator<T[]> {
    for (let i = 0; i < xs.length; i += 2) yield xs.slice(i, i + 2);
  }
  servers() { return this.#pages(this.serversList); }
  async *ports() {
    if (this.failPorts) { yield this.portsList.slice(0, 1); throw new Error('HTTP 503'); }
    yield* this.#pages(this.portsList);
  }
  floatingIps() { return this.#pages(this.fipsList); }
  routers() { return this.#pages(this.routersList); }
}

const server = (id: string, addresses: string[] = []): ListedServer => ({ id, project: 'proj-a', user: 'alice', name: `vm-${id}`, state: 'active', addresses: addresses.map((address) => ({ address, kind: 'fixed' as const })) });
const port = (id: string, device: string, address: string): ListedPort => ({ id, deviceId: device, deviceOwner: 'compute:nova', networkId: 'net-1', project: 'proj-a', fixedIps: [address] });

type Apply = (ns: DecodedNotification[]) => Promise<unknown>;

const labels = (t: Awaited<ReturnType<typeof traceAddress>>) => t.holders.map((h) => `${h.kind}:${h.instance?.id ?? '-'}${h.uncertain === true ? '?' : ''}`).sort();

export const reconcileScenarios: Array<{ name: string; run: (db: Kysely<LedgerSchema>, apply: Apply) => Promise<void> }> = [
  {
    name: 'a holder the ledger never heard of gets an interval whose start is uncertain back to the previous pass',
    async run(db, apply) {
      // vm-a's port was reported; vm-b's boot and port were lost.
      await apply([
        notification([portEvent('create.end', { id: 'p-a', deviceId: 'vm-a', deviceOwner: 'compute:nova', fixedIps: [{ address: '10.0.0.5' }] })], at(0), { source: 'neutron' }),
        notification([instanceEvent('create.end', { id: 'vm-a' }, [fixed('10.0.0.5', 'p-a')])], at(1)),
      ]);
      const api = new FakeOpenStack();
      api.serversList = [server('vm-a', ['10.0.0.5'])];
      api.portsList = [port('p-a', 'vm-a', '10.0.0.5')];
      const clock = new FakeClock(at(10));
      const r = new CloudReconcile({ cloud: 'cern', inventory: api, db, clock, logger: silentLogger, intervalMs: 600_000 });
      const first = await r.pass();
      assert.equal(driftTotal(first.drift), 0, 'a ledger that agrees shows no drift');

      await clock.advance(10 * 60_000); // at(20)
      api.serversList.push(server('vm-b', ['10.0.0.9']));
      api.portsList.push(port('p-b', 'vm-b', '10.0.0.9'));
      const second = await r.pass();
      assert.deepEqual(second.drift.fixed, { added: 1, closed: 0 });
      assert.deepEqual(second.drift.instance, { added: 1, closed: 0 });

      const after = await traceAddress(db, '10.0.0.9', at(21), 'cern');
      assert.deepEqual(labels(after), ['fixed:vm-b']);
      const h = after.holders[0];
      assert.equal(h?.from, at(20).toISOString());
      assert.equal(h?.fromUncertainSince, at(10).toISOString(), 'started after the last pass that did not see it');
      assert.equal(h?.instance?.project, 'proj-a', 'the owner comes from the listing');
      assert.deepEqual(labels(await traceAddress(db, '10.0.0.9', at(15), 'cern')), ['fixed:vm-b?'], 'inside the window the answer says it is uncertain');
      assert.deepEqual(labels(await traceAddress(db, '10.0.0.9', at(9), 'cern')), [], 'before the window nobody held it');

      // The lost create arrives late with its exact time: the bound is replaced.
      await apply([notification([portEvent('create.end', { id: 'p-b', deviceId: 'vm-b', deviceOwner: 'compute:nova', fixedIps: [{ address: '10.0.0.9' }] })], at(14), { source: 'neutron' })]);
      const exact = await traceAddress(db, '10.0.0.9', at(15), 'cern');
      assert.deepEqual(labels(exact), ['fixed:vm-b']);
      assert.equal(exact.holders[0]?.from, at(14).toISOString());
      assert.equal(exact.holders[0]?.fromUncertainSince, undefined);
      assert.deepEqual(labels(await traceAddress(db, '10.0.0.9', at(13), 'cern')), []);

      await clock.advance(10 * 60_000);
      assert.equal(driftTotal((await r.pass()).drift), 0, 'the next pass finds nothing new');
    },
  },
  {
    name: 'what the ledger holds open and the API no longer lists is closed with an uncertain end; a late exact release wins',
    async run(db, apply) {
      await apply([
        notification([portEvent('create.end', { id: 'p-a', deviceId: 'vm-a', deviceOwner: 'compute:nova', fixedIps: [{ address: '10.0.0.5' }] })], at(0), { source: 'neutron' }),
        notification([instanceEvent('create.end', { id: 'vm-a' }, [fixed('10.0.0.5', 'p-a')])], at(1)),
        notification([fipEvent('create.end', { id: 'f-1', portId: 'p-a', fixedAddress: '10.0.0.5', instanceId: 'vm-a' })], at(2), { source: 'neutron' }),
      ]);
      const api = new FakeOpenStack();
      api.serversList = [server('vm-a', ['10.0.0.5', '188.185.194.218'])];
      api.portsList = [port('p-a', 'vm-a', '10.0.0.5')];
      api.fipsList = [{ id: 'f-1', address: '188.185.194.218', portId: 'p-a' }];
      const clock = new FakeClock(at(10));
      const r = new CloudReconcile({ cloud: 'cern', inventory: api, db, clock, logger: silentLogger, intervalMs: 600_000 });
      assert.equal(driftTotal((await r.pass()).drift), 0);

      // vm-a deleted, nothing published; the floating IP stays allocated, unassociated.
      await clock.advance(10 * 60_000);
      api.serversList = [];
      api.portsList = [];
      api.fipsList = [{ id: 'f-1', address: '188.185.194.218', portId: null }];
      const pass = await r.pass();
      assert.deepEqual(pass.drift.fixed, { added: 0, closed: 1 });
      assert.deepEqual(pass.drift.floating, { added: 0, closed: 1 });
      assert.deepEqual(pass.drift.instance, { added: 0, closed: 1 });

      const during = await traceAddress(db, '188.185.194.218', at(15), 'cern');
      assert.deepEqual(labels(during), ['floating:vm-a?']);
      assert.equal(during.holders[0]?.to, at(10).toISOString());
      assert.equal(during.holders[0]?.toUncertainUntil, at(20).toISOString());
      assert.deepEqual(during.holders[0]?.instance?.goneBetween, [at(10).toISOString(), at(20).toISOString()]);
      const [history] = await instanceHistory(db, 'vm-a', 'cern');
      assert.deepEqual(history?.goneBetween, [at(10).toISOString(), at(20).toISOString()]);
      const fixedOfA = history?.addresses.find((a) => a.address === '10.0.0.5');
      assert.deepEqual([fixedOfA?.to, fixedOfA?.toUncertainUntil], [at(10).toISOString(), at(20).toISOString()], 'trace instance shows the uncertain end too');
      assert.deepEqual(labels(await traceAddress(db, '188.185.194.218', at(5), 'cern')), ['floating:vm-a'], 'before the window the answer is certain');
      assert.deepEqual(labels(await traceAddress(db, '188.185.194.218', at(21), 'cern')), []);
      assert.deepEqual(labels(await traceAddress(db, '10.0.0.5', at(21), 'cern')), []);

      // The port deletion arrives late with its exact time.
      await apply([notification([portEvent('delete.end', { id: 'p-a', deviceId: 'vm-a', deviceOwner: 'compute:nova', fixedIps: [{ address: '10.0.0.5' }] })], at(12), { source: 'neutron' })]);
      const exact = await traceAddress(db, '10.0.0.5', at(11), 'cern');
      assert.deepEqual(labels(exact), ['fixed:vm-a']);
      assert.equal(exact.holders[0]?.to, at(12).toISOString());
      assert.equal(exact.holders[0]?.toUncertainUntil, undefined);
      assert.deepEqual(labels(await traceAddress(db, '10.0.0.5', at(13), 'cern')), []);
      assert.deepEqual(labels(await traceAddress(db, '188.185.194.218', at(13), 'cern')), [], 'the port deletion ends the floating IP exactly too');
    },
  },
  {
    name: 'a listing that fails part-way closes nothing and is reported failed',
    async run(db, apply) {
      await apply([
        notification([portEvent('create.end', { id: 'p-a', deviceId: 'vm-a', deviceOwner: 'compute:nova', fixedIps: [{ address: '10.0.0.5' }] })], at(0), { source: 'neutron' }),
        notification([portEvent('create.end', { id: 'p-b', deviceId: 'vm-b', deviceOwner: 'compute:nova', fixedIps: [{ address: '10.0.0.6' }] })], at(0), { source: 'neutron' }),
      ]);
      const api = new FakeOpenStack();
      api.portsList = [port('p-a', 'vm-a', '10.0.0.5'), port('p-b', 'vm-b', '10.0.0.6')];
      api.failPorts = true;
      const r = new CloudReconcile({ cloud: 'cern', inventory: api, db, clock: new FakeClock(at(10)), logger: silentLogger, intervalMs: 600_000 });
      const pass = await r.pass();
      const ports = pass.listings.find((l) => l.listing === 'ports');
      assert.equal(ports?.outcome, 'failed');
      assert.match(ports?.error ?? '', /503/);
      assert.equal(pass.drift.fixed.closed, 0);
      assert.deepEqual(labels(await traceAddress(db, '10.0.0.6', at(11), 'cern')), ['fixed:vm-b']);
      const latest = await latestPasses(db, 'cern');
      assert.deepEqual(latest.map((p) => [p.listing, p.outcome]), [['floatingips', 'ok'], ['ports', 'failed'], ['routers', 'ok'], ['servers', 'ok']]);
      assert.equal(reconciledStatus(true, latest).condition.reason, 'ListingFailed');
    },
  },
  {
    name: 'OpenNebula: a NIC the hooks never reported is observed, a VM gone from the pool is closed',
    async run(db, apply) {
      await apply([notification([oneVmEvent({ id: 7, nics: [nic(0, '192.0.2.7')] }, [3, 'ACTIVE'], [3, 'RUNNING'])], at(0), { cloud: 'one', source: 'opennebula' })]);
      const vms: ListedOneVm[] = [{ id: 8, name: 'one-8', user: 'carol', group: 'chem', state: 'ACTIVE/RUNNING', done: false, createdAt: at(5), nics: [{ nicId: 0, addresses: ['192.0.2.8'] }] }];
      const api: OpenNebulaInventory = { type: 'opennebula', async *vms() { yield vms; } };
      const clock = new FakeClock(at(10));
      const r = new CloudReconcile({ cloud: 'one', inventory: api, db, clock, logger: silentLogger, intervalMs: 600_000 });
      const pass = await r.pass();
      assert.deepEqual(pass.drift.nic, { added: 1, closed: 1 });
      assert.deepEqual(pass.drift.instance, { added: 1, closed: 1 });
      const seen = await traceAddress(db, '192.0.2.8', at(7), 'one');
      assert.deepEqual(labels(seen), ['nic:8?']);
      assert.equal(seen.holders[0]?.fromUncertainSince, at(5).toISOString(), 'no earlier pass: the VM\'s creation bounds the start');
      assert.equal(seen.holders[0]?.instance?.project, 'chem');
      const gone = await traceAddress(db, '192.0.2.7', at(5), 'one');
      assert.deepEqual(labels(gone), ['nic:7?']);
      assert.equal(gone.holders[0]?.to, at(0).toISOString());
      assert.deepEqual(gone.holders[0]?.instance?.goneBetween, [at(0).toISOString(), at(10).toISOString()]);

      // A listing that missed VM 7 (it is back in the next one): never gone; its NIC is observed again.
      await clock.advance(10 * 60_000);
      vms.push({ id: 7, name: 'one-7', user: 'bob', group: 'physics', state: 'ACTIVE/RUNNING', done: false, nics: [{ nicId: 0, addresses: ['192.0.2.7'] }] });
      const again = await r.pass();
      assert.deepEqual(again.drift.nic, { added: 1, closed: 0 });
      const back = await traceAddress(db, '192.0.2.7', at(21), 'one');
      assert.deepEqual(labels(back), ['nic:7']);
      assert.equal(back.holders[0]?.instance?.goneBetween, undefined);
    },
  },
];
