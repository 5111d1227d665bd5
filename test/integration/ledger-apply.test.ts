// The interval rules of the traceability ledger, on the embedded SQLite ledger
// and on PostgreSQL: who held which address when, whatever the delivery order.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { LedgerDb } from '../../operator/ledger/db.ts';
import { applyBatch, type ApplyOutcome } from '../../operator/ledger/apply.ts';
import { traceAddress } from '../../operator/ledger/trace.ts';
import { instanceHistory } from '../../operator/ledger/instance-history.ts';
import type { DecodedNotification } from '../../operator/domain/events.ts';
import { ledgerEngines as engines, openLedger } from '../support/ledger-engines.ts';
import { at, fipEvent, fixed, instanceEvent, nic, notification, oneVmEvent, portEvent } from '../support/events.ts';
import type { OwnerNames } from '../../operator/domain/owner-names.ts';


const FIP = '188.185.194.218';

for (const engine of engines) {
  describe(`ledger apply on ${engine.name}`, () => {
    let ledger: LedgerDb;
    let close = async () => {};
    // Every test uses its own cloud name so tests do not see each other's rows.
    let cloudNo = 0;
    let cloud = '';
    before(async () => { ({ ledger, close } = await openLedger(engine)); });
    after(() => close());
    const fresh = () => { cloudNo += 1; cloud = `cloud-${cloudNo}`; };
    const apply = async (...ns: DecodedNotification[]): Promise<ApplyOutcome[]> =>
      applyBatch(ledger.db, ns.map((n) => ({ notification: { ...n, cloud }, body: JSON.stringify(n.events) })));
    const holders = async (address: string, when: Date) =>
      (await traceAddress(ledger.db, address, when, cloud)).holders.map((h) => `${h.kind}:${h.instance?.id ?? '-'}@${h.port ?? '-'}`);
    const spans = async (address: string) =>
      (await ledger.db.selectFrom('address_intervals').select(['instance_id', 'port', 'valid_from', 'valid_to']).where('cloud', '=', cloud).where('address', '=', address).orderBy('valid_from').execute())
        .map((r) => [r.instance_id, r.port, new Date(r.valid_from).toISOString().slice(11, 16), r.valid_to === null ? null : new Date(r.valid_to).toISOString().slice(11, 16)]);

    test('a floating IP created already associated is held from its creation', async () => {
      fresh();
      await apply(notification([fipEvent('create.end', { id: 'f1', portId: 'port-a', instanceId: 'vm-a' })], at(0)));
      assert.deepEqual(await holders(FIP, at(-1)), []);
      assert.deepEqual(await holders(FIP, at(0)), ['floating:vm-a@port-a']);
      assert.deepEqual(await holders(FIP, at(500)), ['floating:vm-a@port-a']);
    });

    test('associate, move to another port in a single update, disassociate', async () => {
      fresh();
      await apply(
        notification([fipEvent('create.end', { id: 'f1', portId: null })], at(0)),
        notification([fipEvent('update.end', { id: 'f1', portId: 'port-a', instanceId: 'vm-a' })], at(10)),
        notification([fipEvent('update.end', { id: 'f1', portId: 'port-b', instanceId: 'vm-b' })], at(20)),
        notification([fipEvent('update.end', { id: 'f1', portId: null })], at(30)),
      );
      assert.deepEqual(await spans(FIP), [['vm-a', 'port-a', '16:10', '16:20'], ['vm-b', 'port-b', '16:20', '16:30']]);
      assert.deepEqual(await holders(FIP, at(19)), ['floating:vm-a@port-a']);
      assert.deepEqual(await holders(FIP, at(20)), ['floating:vm-b@port-b']);
      assert.deepEqual(await holders(FIP, at(30)), []);
    });

    test('an update that does not touch the association opens no new interval', async () => {
      fresh();
      await apply(
        notification([fipEvent('update.end', { id: 'f1', portId: 'port-a', instanceId: 'vm-a' })], at(0)),
        notification([fipEvent('update.end', { id: 'f1', portId: 'port-a', instanceId: 'vm-a', status: 'ACTIVE' })], at(5)),
      );
      assert.deepEqual(await spans(FIP), [['vm-a', 'port-a', '16:00', null]]);
    });

    test('deleting a floating IP while associated ends the association', async () => {
      fresh();
      await apply(
        notification([fipEvent('create.end', { id: 'f1', portId: 'port-a', instanceId: 'vm-a' })], at(0)),
        notification([fipEvent('delete.end', { id: 'f1', portId: 'port-a' })], at(42)),
      );
      assert.deepEqual(await spans(FIP), [['vm-a', 'port-a', '16:00', '16:42']]);
    });

    test('deleting the associated port disassociates silently (port.delete.end only)', async () => {
      fresh();
      await apply(
        notification([portEvent('create.end', { id: 'port-a', deviceId: 'vm-a', deviceOwner: 'compute:nova', fixedIps: [{ address: '10.0.0.5' }] })], at(0)),
        notification([fipEvent('update.end', { id: 'f1', portId: 'port-a' })], at(1)),
        notification([portEvent('delete.end', { id: 'port-a', deviceId: 'vm-a', deviceOwner: 'compute:nova', fixedIps: [{ address: '10.0.0.5' }] })], at(30)),
      );
      // The instance came from the port table: the floating IP event itself did not name it.
      assert.deepEqual(await spans(FIP), [['vm-a', 'port-a', '16:01', '16:30']]);
      assert.deepEqual(await spans('10.0.0.5'), [['vm-a', 'port-a', '16:00', '16:30']]);
    });

    test('the same IP associated twice to the same instance gives two intervals', async () => {
      fresh();
      await apply(
        notification([fipEvent('update.end', { id: 'f1', portId: 'port-a', instanceId: 'vm-a' })], at(0)),
        notification([fipEvent('update.end', { id: 'f1', portId: null })], at(10)),
        notification([fipEvent('update.end', { id: 'f1', portId: 'port-a', instanceId: 'vm-a' })], at(20)),
        notification([fipEvent('update.end', { id: 'f1', portId: null })], at(25)),
      );
      assert.deepEqual(await spans(FIP), [['vm-a', 'port-a', '16:00', '16:10'], ['vm-a', 'port-a', '16:20', '16:25']]);
      assert.deepEqual(await holders(FIP, at(15)), []);
    });

    test('out-of-order delivery gives the same history as in-order delivery', async () => {
      fresh();
      const a = notification([fipEvent('update.end', { id: 'f1', portId: 'port-a', instanceId: 'vm-a' })], at(0));
      const b = notification([fipEvent('update.end', { id: 'f1', portId: 'port-b', instanceId: 'vm-b' })], at(20));
      const c = notification([fipEvent('update.end', { id: 'f1', portId: null })], at(30));
      await apply(c);
      await apply(a);
      await apply(b);
      assert.deepEqual(await spans(FIP), [['vm-a', 'port-a', '16:00', '16:20'], ['vm-b', 'port-b', '16:20', '16:30']]);
    });

    test('the same message applied twice changes nothing', async () => {
      fresh();
      const n = notification([fipEvent('create.end', { id: 'f1', portId: 'port-a', instanceId: 'vm-a' })], at(0));
      assert.deepEqual(await apply(n), ['applied']);
      const before = await spans(FIP);
      assert.deepEqual(await apply(n), ['duplicate']);
      assert.deepEqual(await spans(FIP), before);
      const count = await ledger.db.selectFrom('notifications').select((eb) => eb.fn.countAll<number>().as('n')).where('cloud', '=', cloud).executeTakeFirstOrThrow();
      assert.equal(Number(count.n), 1);
    });

    test('fixed IPs from Nova: held from create.end; the empty list at delete.end is no early release', async () => {
      fresh();
      await apply(
        notification([instanceEvent('create.end', { id: 'vm-a' }, [fixed('10.0.0.7', 'port-a')])], at(0)),
        notification([instanceEvent('delete.start', { id: 'vm-a' }, [fixed('10.0.0.7', 'port-a')], { authoritative: true, actor: { user: 'mallory' } })], at(50)),
        // Versioned shutdown.end and delete.end carry [] already: not authoritative.
        notification([instanceEvent('shutdown.end', { id: 'vm-a' }, [], { authoritative: false })], at(51)),
        notification([instanceEvent('delete.end', { id: 'vm-a', state: 'deleted' }, [], { authoritative: false })], at(52)),
      );
      assert.deepEqual(await spans('10.0.0.7'), [['vm-a', 'port-a', '16:00', '16:52']]);
      const trace = await traceAddress(ledger.db, '10.0.0.7', at(51), cloud);
      assert.equal(trace.holders[0]?.instance?.deletedAt, at(52).toISOString());
      const inst = await ledger.db.selectFrom('instances').selectAll().where('cloud', '=', cloud).executeTakeFirstOrThrow();
      assert.equal(inst.deleted_by, 'mallory');
      assert.equal(inst.state, 'deleted');
    });

    test('an interface detach releases the address that disappeared from the full list', async () => {
      fresh();
      await apply(
        notification([instanceEvent('create.end', { id: 'vm-a' }, [fixed('10.0.0.7', 'port-a'), fixed('10.1.0.9', 'port-b', 'second')])], at(0)),
        notification([instanceEvent('interface_detach.end', { id: 'vm-a' }, [fixed('10.0.0.7', 'port-a')])], at(5)),
      );
      assert.deepEqual(await spans('10.1.0.9'), [['vm-a', 'port-b', '16:00', '16:05']]);
      assert.deepEqual(await spans('10.0.0.7'), [['vm-a', 'port-a', '16:00', null]]);
    });

    test('Nova and Neutron reporting the same port address give one holder', async () => {
      fresh();
      await apply(
        notification([portEvent('create.end', { id: 'port-a', deviceId: 'vm-a', deviceOwner: 'compute:nova', fixedIps: [{ address: '10.0.0.7' }] })], at(0)),
        notification([instanceEvent('create.end', { id: 'vm-a' }, [fixed('10.0.0.7', 'port-a')])], at(1)),
      );
      assert.deepEqual(await holders('10.0.0.7', at(2)), ['fixed:vm-a@port-a']);
    });

    test('a private address used at once in two tenant networks returns both holders with their networks', async () => {
      fresh();
      await apply(
        notification([portEvent('create.end', { id: 'port-a', deviceId: 'vm-a', deviceOwner: 'compute:nova', networkId: 'net-tenant-1', project: 'p1', fixedIps: [{ address: '192.168.0.10' }] })], at(0)),
        notification([portEvent('create.end', { id: 'port-b', deviceId: 'vm-b', deviceOwner: 'compute:nova', networkId: 'net-tenant-2', project: 'p2', fixedIps: [{ address: '192.168.0.10' }] })], at(1)),
      );
      const t = await traceAddress(ledger.db, '192.168.0.10', at(2), cloud);
      assert.deepEqual(t.holders.map((h) => [h.instance?.id, h.network, h.project]).sort(), [['vm-a', 'net-tenant-1', 'p1'], ['vm-b', 'net-tenant-2', 'p2']]);
    });

    test('a port unbound from a deleted instance keeps its address, no longer attributed to the instance', async () => {
      fresh();
      await apply(
        notification([portEvent('create.end', { id: 'port-a', deviceId: 'vm-a', deviceOwner: 'compute:nova', fixedIps: [{ address: '10.0.0.8' }] })], at(0)),
        notification([portEvent('update.end', { id: 'port-a', deviceOwner: '', fixedIps: [{ address: '10.0.0.8' }] })], at(10)),
      );
      assert.deepEqual(await holders('10.0.0.8', at(5)), ['fixed:vm-a@port-a']);
      assert.deepEqual(await holders('10.0.0.8', at(11)), ['fixed:-@port-a']);
    });

    test('OpenNebula NIC addresses: held from the VM document, closed on NIC detach and at DONE', async () => {
      fresh();
      await apply(
        notification([oneVmEvent({ id: 42, nics: [nic(0, '198.51.100.4'), nic(1, '10.10.0.4', 'private')] }, [3, 'ACTIVE'], [3, 'RUNNING'])], at(0), { source: 'opennebula' }),
        notification([oneVmEvent({ id: 42, nics: [nic(0, '198.51.100.4')] }, [3, 'ACTIVE'], [25, 'HOTPLUG_NIC'])], at(10), { source: 'opennebula' }),
        notification([oneVmEvent({ id: 42, nics: [nic(0, '198.51.100.4')], etime: at(20) }, [6, 'DONE'], [0, 'LCM_INIT'])], at(20), { source: 'opennebula' }),
      );
      assert.deepEqual((await spans('10.10.0.4')).map((s) => [s[0], s[2], s[3]]), [['42', '16:00', '16:10']]);
      assert.deepEqual((await spans('198.51.100.4')).map((s) => [s[0], s[2], s[3]]), [['42', '16:00', '16:20']]);
      const t = await traceAddress(ledger.db, '198.51.100.4', at(5), cloud);
      assert.equal(t.holders[0]?.instance?.user, 'bob');
      assert.equal(t.holders[0]?.instance?.project, 'physics');
      assert.equal(t.holders[0]?.instance?.deletedAt, at(20).toISOString());
    });

    test('a floating IP association reported after its port was deleted ends at the deletion', async () => {
      fresh();
      await apply(notification([portEvent('delete.end', { id: 'port-a', deviceId: 'vm-a', deviceOwner: 'compute:nova' })], at(30)));
      await apply(notification([fipEvent('update.end', { id: 'f1', portId: 'port-a', instanceId: 'vm-a' })], at(5)));
      assert.deepEqual(await spans(FIP), [['vm-a', 'port-a', '16:05', '16:30']]);
    });

    // Facts that bound or resolve other slots hold in every arrival order.
    const everyOrder = async (ns: DecodedNotification[], check: () => Promise<void>) => {
      const orders = [ns, [...ns].reverse(), [ns[1], ns[0], ...ns.slice(2)].filter((x): x is DecodedNotification => x !== undefined)];
      for (const order of orders) {
        fresh();
        for (const n of order) await apply(n);
        await check();
      }
    };

    test('a floating IP whose port arrived late names the instance', async () => {
      const port = notification([portEvent('create.end', { id: 'port-a', deviceId: 'vm-a', deviceOwner: 'compute:nova', fixedIps: [{ address: '10.0.0.5' }] })], at(0));
      const fip = notification([fipEvent('update.end', { id: 'f1', portId: 'port-a', fixedAddress: '10.0.0.5' })], at(1));
      await everyOrder([fip, port], async () => {
        assert.deepEqual(await holders(FIP, at(2)), ['floating:vm-a@port-a']);
        // Only Neutron spoke (no instance row for trace instance): the intervals name the instance.
        const rows = await ledger.db.selectFrom('address_intervals').select('address').where('cloud', '=', cloud).where('instance_id', '=', 'vm-a').orderBy('address').execute();
        assert.deepEqual(rows.map((r) => r.address), ['10.0.0.5', FIP]);
      });
    });

    test('a floating IP on a port known only from Nova\'s port_uuid names the instance; trace instance lists it', async () => {
      const boot = notification([instanceEvent('create.end', { id: 'vm-a' }, [fixed('10.0.0.5', 'port-a')])], at(0));
      const fip = notification([fipEvent('update.end', { id: 'f1', portId: 'port-a' })], at(1));
      await everyOrder([fip, boot], async () => {
        assert.deepEqual(await holders(FIP, at(2)), ['floating:vm-a@port-a']);
        const [h] = await instanceHistory(ledger.db, 'vm-a', cloud);
        assert.deepEqual(h?.addresses.map((a) => [a.address, a.kind]), [['10.0.0.5', 'fixed'], [FIP, 'floating']]);
      });
    });

    test('an instance deleted before its creation was seen holds nothing after its deletion', async () => {
      const create = notification([instanceEvent('create.end', { id: 'vm-a' }, [{ address: '10.0.0.7', version: 4, kind: 'fixed', network: 'private' }], { format: 'legacy' })], at(0));
      const del = notification([instanceEvent('delete.end', { id: 'vm-a', state: 'deleted' }, undefined, { format: 'legacy' })], at(30));
      await everyOrder([del, create], async () => {
        assert.deepEqual(await holders('10.0.0.7', at(10)), ['fixed:vm-a@-']);
        assert.deepEqual(await holders('10.0.0.7', at(31)), []);
      });
    });

    test('an OpenNebula DONE before its RUNNING ends the NIC addresses at DONE', async () => {
      const running = notification([oneVmEvent({ id: 7, nics: [nic(0, '198.51.100.9')] }, [3, 'ACTIVE'], [3, 'RUNNING'])], at(0), { source: 'opennebula' });
      const done = notification([oneVmEvent({ id: 7, nics: [nic(0, '198.51.100.9')], etime: at(20) }, [6, 'DONE'], [0, 'LCM_INIT'])], at(20), { source: 'opennebula' });
      await everyOrder([done, running], async () => {
        assert.deepEqual(await holders('198.51.100.9', at(10)), ['nic:7@-']);
        assert.deepEqual(await holders('198.51.100.9', at(21)), []);
      });
    });

    test('a re-association that arrives before the disassociation between the two is kept', async () => {
      const a = notification([fipEvent('update.end', { id: 'f1', portId: 'port-a', instanceId: 'vm-a' })], at(0));
      const off = notification([fipEvent('update.end', { id: 'f1', portId: null })], at(10));
      const again = notification([fipEvent('update.end', { id: 'f1', portId: 'port-a', instanceId: 'vm-a' })], at(20));
      await everyOrder([a, again, off], async () => {
        assert.deepEqual(await spans(FIP), [['vm-a', 'port-a', '16:00', '16:10'], ['vm-a', 'port-a', '16:20', null]]);
      });
    });

    test('a move that arrives before an earlier move is not lost', async () => {
      const a = notification([fipEvent('update.end', { id: 'f1', portId: 'port-a', instanceId: 'vm-a' })], at(0));
      const b = notification([fipEvent('update.end', { id: 'f1', portId: 'port-b', instanceId: 'vm-b' })], at(10));
      const c = notification([fipEvent('update.end', { id: 'f1', portId: 'port-c', instanceId: 'vm-c' })], at(20));
      await everyOrder([c, b, a], async () => {
        assert.deepEqual(await holders(FIP, at(15)), ['floating:vm-b@port-b']);
        assert.deepEqual(await holders(FIP, at(25)), ['floating:vm-c@port-c']);
      });
    });

    test('a full address list that arrives before a bind it omits still releases it', async () => {
      const boot = notification([instanceEvent('create.end', { id: 'vm-a' }, [fixed('10.0.0.7', 'port-a'), fixed('10.1.0.9', 'port-b', 'second')])], at(0));
      const detach = notification([instanceEvent('interface_detach.end', { id: 'vm-a' }, [fixed('10.0.0.7', 'port-a')])], at(5));
      await everyOrder([detach, boot], async () => {
        assert.deepEqual(await spans('10.1.0.9'), [['vm-a', 'port-b', '16:00', '16:05']]);
      });
    });

    test('an IPv6 address is one address however it is spelt', async () => {
      fresh();
      await apply(notification([portEvent('create.end', { id: 'port-6', deviceId: 'vm-6', deviceOwner: 'compute:nova', fixedIps: [{ address: '2001:DB8:0:0::5' }] })], at(0)));
      for (const spelling of ['2001:db8::5', '2001:DB8:0:0:0:0:0:5', '2001:0db8::0005']) assert.deepEqual(await holders(spelling, at(1)), ['fixed:vm-6@port-6']);
      const t = await traceAddress(ledger.db, '2001:DB8::5', at(1), cloud);
      assert.equal(t.address, '2001:db8::5');
    });

    test('a router gateway address (SNAT) is held by the router, with the instances behind it', async () => {
      const gw = notification([{ type: 'router', action: 'update.end', idOnly: false, router: { id: 'r1', name: 'edge', project: 'proj-r', gatewayNetworkId: 'ext-net', gatewayIps: ['172.25.0.3'] } }], at(0));
      const iface = notification([{ type: 'router_interface', action: 'create', routerId: 'r1', portId: 'port-r', networkId: 'net-1', project: 'proj-r' }], at(1));
      const vm = notification([portEvent('create.end', { id: 'port-a', deviceId: 'vm-a', deviceOwner: 'compute:nova', networkId: 'net-1', fixedIps: [{ address: '10.0.0.5' }] })], at(2));
      const cleared = notification([{ type: 'router', action: 'update.end', idOnly: false, router: { id: 'r1', gatewayIps: null } }], at(30));
      await everyOrder([cleared, vm, iface, gw], async () => {
        const t = await traceAddress(ledger.db, '172.25.0.3', at(10), cloud);
        assert.deepEqual(t.holders.map((h) => [h.kind, h.project, h.network, h.instance]), [['router-gateway', 'proj-r', 'ext-net', null]]);
        assert.deepEqual(t.holders[0]?.router, { id: 'r1', name: 'edge', behind: [{ instanceId: 'vm-a', address: '10.0.0.5', network: 'net-1' }] });
        assert.deepEqual(await holders('172.25.0.3', at(31)), []);
      });
    });

    test('owner names beside ids: from the owner\'s own request context, never from someone else\'s', async () => {
      fresh();
      await apply(
        notification([instanceEvent('create.end', { id: 'vm-n', user: 'u-1', project: 'p-1' }, [fixed('10.0.0.40', 'port-n')], { format: 'legacy' })], at(0),
          { context: { userId: 'u-1', projectId: 'p-1', userName: 'alice', projectName: 'hep' } }),
        // An admin deletes it: the admin's names are not the owner's.
        notification([instanceEvent('delete.start', { id: 'vm-n', user: 'u-1', project: 'p-1' }, undefined, { format: 'legacy' })], at(5),
          { context: { userId: 'admin-id', projectId: 'admin-p', userName: 'admin', projectName: 'admin' } }),
      );
      const t = await traceAddress(ledger.db, '10.0.0.40', at(1), cloud);
      assert.deepEqual([t.holders[0]?.instance?.userName, t.holders[0]?.instance?.projectName], ['alice', 'hep']);
      const [h] = await instanceHistory(ledger.db, 'vm-n', cloud);
      assert.deepEqual([h?.user, h?.userName, h?.project, h?.projectName], ['u-1', 'alice', 'p-1', 'hep']);
      // Each name says where it came from and when: the request of at(0); the admin's later request named nobody's names.
      const told = at(0).toISOString();
      const from = (i: OwnerNames | null | undefined) => [i?.userNameSource, i?.userNameReadAt, i?.projectNameSource, i?.projectNameReadAt];
      assert.deepEqual(from(t.holders[0]?.instance), ['notification', told, 'notification', told]);
      assert.deepEqual(from(h), ['notification', told, 'notification', told]);
      await apply(notification([oneVmEvent({ id: 77, nics: [nic(0, '198.51.100.77')] }, [3, 'ACTIVE'], [3, 'RUNNING'])], at(0), { source: 'opennebula' }));
      const one = await traceAddress(ledger.db, '198.51.100.77', at(1), cloud);
      assert.deepEqual([one.holders[0]?.instance?.userName, one.holders[0]?.instance?.projectName], ['bob', 'physics']);
      assert.deepEqual(from(one.holders[0]?.instance), ['opennebula', told, 'opennebula', told]);
    });
  });
}
