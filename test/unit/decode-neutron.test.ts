// Neutron port, floating IP and router interface events from synthetic
// messages: association moves, the silent disassociation on port delete,
// bulk creates, old and new delete.end shapes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DecodedNotification, FloatingIpEvent, PortEvent } from '../../operator/domain/events.ts';
import { decodeNotification, type DeliveryMeta } from '../../operator/intake/decode/index.ts';

const META: DeliveryMeta = { cloud: 'os1', receivedAt: new Date('2031-01-01T00:00:00Z'), exchange: 'neutron' };

type Json = Record<string, unknown>;

let serial = 0;

/** A 2.0-envelope Neutron notification as the service user sends it. */
function neutron(eventType: string, payload: Json): string {
  serial += 1;
  const inner = {
    message_id: `msg-${serial}`,
    publisher_id: 'network.ctl1',
    event_type: eventType,
    priority: 'INFO',
    timestamp: `2024-03-01 10:00:${String(serial % 60).padStart(2, '0')}.000000`,
    _context_user_id: 'nova-service-user',
    _context_project_id: 'service',
    payload,
  };
  return JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': JSON.stringify(inner) });
}

function fip(overrides: Json = {}): Json {
  return {
    id: 'fip-1',
    floating_ip_address: '203.0.113.7',
    floating_network_id: 'ext-net',
    port_id: null,
    fixed_ip_address: null,
    router_id: null,
    tenant_id: 'owner-project',
    project_id: 'owner-project',
    status: 'DOWN',
    description: '',
    port_details: null,
    ...overrides,
  };
}

function associatedTo(port: string, fixed: string, instance: string): Json {
  return {
    port_id: port,
    fixed_ip_address: fixed,
    router_id: 'router-1',
    status: 'ACTIVE',
    port_details: { device_id: instance, device_owner: 'compute:nova', mac_address: 'fa:16:3e:00:00:01', status: 'ACTIVE' },
  };
}

function port(overrides: Json = {}): Json {
  return {
    id: 'port-a',
    device_id: 'instance-1',
    device_owner: 'compute:nova',
    network_id: 'net-1',
    mac_address: 'fa:16:3e:00:00:0a',
    tenant_id: 'owner-project',
    project_id: 'owner-project',
    'binding:host_id': 'cmp1',
    status: 'ACTIVE',
    fixed_ips: [{ ip_address: '10.0.0.5', subnet_id: 'subnet-1' }],
    ...overrides,
  };
}

function decode(body: string): DecodedNotification {
  const result = decodeNotification(body, META);
  if (!result.ok) assert.fail(`${result.error.reason}: ${result.error.message}`);
  return result.notification;
}

function fipEvent(body: string): FloatingIpEvent {
  const [event, ...rest] = decode(body).events;
  assert.equal(rest.length, 0);
  assert.ok(event?.type === 'floatingip');
  return event;
}

function portEvents(body: string): PortEvent[] {
  return decode(body).events.map((event) => {
    assert.ok(event.type === 'port');
    return event;
  });
}

function rejection(body: string): string {
  const result = decodeNotification(body, META);
  assert.ok(!result.ok, 'decoded although it should not');
  assert.equal(result.error.reason, 'bad-payload');
  return result.error.message;
}

describe('floating IP association over time', () => {
  it('created unassociated, associated to A, moved to B, disassociated: each event names only its own port', () => {
    const sequence = [
      fipEvent(neutron('floatingip.create.end', { floatingip: fip() })),
      fipEvent(neutron('floatingip.update.end', { floatingip: fip(associatedTo('port-a', '10.0.0.5', 'instance-1')) })),
      fipEvent(neutron('floatingip.update.end', { floatingip: fip(associatedTo('port-b', '10.0.1.9', 'instance-2')) })),
      fipEvent(neutron('floatingip.update.end', { floatingip: fip() })),
    ];
    assert.deepEqual(
      sequence.map((e) => [e.action, e.floatingIp.portId, e.floatingIp.fixedAddress, e.floatingIp.instanceId]),
      [
        ['create.end', null, null, undefined],
        ['update.end', 'port-a', '10.0.0.5', 'instance-1'],
        ['update.end', 'port-b', '10.0.1.9', 'instance-2'],
        ['update.end', null, null, undefined],
      ],
    );
    for (const e of sequence) {
      assert.equal(e.floatingIp.address, '203.0.113.7');
      assert.equal(e.floatingIp.project, 'owner-project');
    }
  });

  it('created already associated', () => {
    const e = fipEvent(neutron('floatingip.create.end', { floatingip: fip(associatedTo('port-a', '10.0.0.5', 'instance-1')) }));
    assert.equal(e.floatingIp.portId, 'port-a');
    assert.equal(e.floatingIp.routerId, 'router-1');
  });

  it('an update that does not touch the association repeats the same port', () => {
    const e = fipEvent(
      neutron('floatingip.update.end', { floatingip: fip({ ...associatedTo('port-a', '10.0.0.5', 'instance-1'), description: 'x' }) }),
    );
    assert.equal(e.floatingIp.portId, 'port-a');
  });

  it('update.start is the request: a description-only request says nothing about the port', () => {
    const e = fipEvent(neutron('floatingip.update.start', { id: 'fip-1', floatingip: { description: 'x' } }));
    assert.equal(e.action, 'update.start');
    assert.deepEqual(e.floatingIp, { id: 'fip-1' });
    assert.equal(e.floatingIp.portId, undefined);
  });

  it('update.start asking for disassociation says null', () => {
    const e = fipEvent(neutron('floatingip.update.start', { id: 'fip-1', floatingip: { port_id: null } }));
    assert.equal(e.floatingIp.portId, null);
  });

  it('delete.end since Newton carries the last association', () => {
    const e = fipEvent(
      neutron('floatingip.delete.end', {
        floatingip_id: 'fip-1',
        floatingip: fip(associatedTo('port-a', '10.0.0.5', 'instance-1')),
      }),
    );
    assert.equal(e.idOnly, false);
    assert.equal(e.floatingIp.portId, 'port-a');
    assert.equal(e.floatingIp.address, '203.0.113.7');
  });

  it('delete.end before Newton: id only', () => {
    const e = fipEvent(neutron('floatingip.delete.end', { floatingip_id: 'fip-1' }));
    assert.equal(e.idOnly, true);
    assert.deepEqual(e.floatingIp, { id: 'fip-1' });
  });

  it('project_id alone (tenant_id dropped in newer releases) is the owner', () => {
    const e = fipEvent(neutron('floatingip.create.end', { floatingip: fip({ tenant_id: undefined, project_id: 'p-new' }) }));
    assert.equal(e.floatingIp.project, 'p-new');
  });
});

describe('ports', () => {
  it('ownership comes from the port, never from the (service) context', () => {
    const n = decode(neutron('port.create.end', { port: port() }));
    assert.equal(n.context.userId, 'nova-service-user');
    const [e] = portEvents(neutron('port.create.end', { port: port() }));
    assert.equal(e?.port.project, 'owner-project');
  });

  it('bulk create yields one event per port, in order', () => {
    const events = portEvents(
      neutron('port.create.end', {
        ports: [port(), port({ id: 'port-b', fixed_ips: [{ ip_address: '10.0.0.6', subnet_id: 'subnet-1' }] })],
      }),
    );
    assert.deepEqual(
      events.map((e) => [e.action, e.port.id, e.port.fixedIps.map((f) => f.address)]),
      [
        ['create.end', 'port-a', ['10.0.0.5']],
        ['create.end', 'port-b', ['10.0.0.6']],
      ],
    );
  });

  it('unbinding by Nova at instance delete: device and host become absent', () => {
    const [e] = portEvents(neutron('port.update.end', { port: port({ device_id: '', device_owner: '', 'binding:host_id': null }) }));
    assert.equal(e?.port.deviceId, undefined);
    assert.equal(e?.port.deviceOwner, undefined);
    assert.equal(e?.port.host, undefined);
    assert.deepEqual(e?.port.fixedIps, [{ address: '10.0.0.5', subnetId: 'subnet-1' }]);
  });

  it('delete.end since Newton: the whole port as it was (its addresses are what gets released)', () => {
    const [e] = portEvents(neutron('port.delete.end', { port_id: 'port-a', port: port() }));
    assert.equal(e?.idOnly, false);
    assert.equal(e?.port.id, 'port-a');
    assert.equal(e?.port.deviceId, 'instance-1');
    assert.deepEqual(e?.port.fixedIps, [{ address: '10.0.0.5', subnetId: 'subnet-1' }]);
  });

  it('delete.end before Newton: the id only, the trigger for closing its floating IP association', () => {
    assert.deepEqual(portEvents(neutron('port.delete.end', { port_id: 'port-a' })), [
      { type: 'port', action: 'delete.end', port: { id: 'port-a', fixedIps: [] }, idOnly: true },
    ]);
  });

  it('port.exists from the usage audit', () => {
    const [e] = portEvents(neutron('port.exists', { port: port() }));
    assert.equal(e?.action, 'exists');
  });

  it('a port without fixed_ips has none listed', () => {
    const [e] = portEvents(neutron('port.create.end', { port: port({ fixed_ips: undefined }) }));
    assert.deepEqual(e?.port.fixedIps, []);
  });
});

describe('router interfaces', () => {
  it('delete', () => {
    const n = decode(
      neutron('router.interface.delete', {
        router_interface: { id: 'router-1', port_id: 'port-r', subnet_id: 'subnet-1', subnet_ids: ['subnet-1'], network_id: 'net-1', tenant_id: 'owner-project' },
      }),
    );
    assert.deepEqual(n.events, [
      { type: 'router_interface', action: 'delete', routerId: 'router-1', portId: 'port-r', subnetId: 'subnet-1', networkId: 'net-1', project: 'owner-project' },
    ]);
  });
});

describe('routers', () => {
  it('a cleared gateway is an empty list; an id-only delete says nothing', () => {
    const cleared = decode(neutron('router.update.end', { router: { id: 'r1', name: 'edge', tenant_id: 'p1', external_gateway_info: null } }));
    assert.deepEqual(cleared.events, [{ type: 'router', action: 'update.end', idOnly: false, router: { id: 'r1', name: 'edge', project: 'p1', gatewayIps: null } }]);
    const unsaid = decode(neutron('router.update.end', { router: { id: 'r1', name: 'renamed' } }));
    assert.deepEqual(unsaid.events, [{ type: 'router', action: 'update.end', idOnly: false, router: { id: 'r1', name: 'renamed' } }]);
    const gone = decode(neutron('router.delete.end', { router_id: 'r1' }));
    assert.deepEqual(gone.events, [{ type: 'router', action: 'delete.end', idOnly: true, router: { id: 'r1' } }]);
  });
});

describe('unused Neutron event types are ignored', () => {
  for (const eventType of ['port.create.start', 'port.delete.start', 'floatingip.delete.start', 'network.create.end', 'router.update.start']) {
    it(eventType, () => {
      const n = decode(neutron(eventType, { anything: true }));
      assert.equal(n.ignored, true);
      assert.equal(n.source, 'neutron');
    });
  }
});

describe('payloads missing what we rely on → bad-payload naming the field', () => {
  it('floating IP without id', () => {
    assert.match(rejection(neutron('floatingip.update.end', { floatingip: fip({ id: undefined }) })), /payload\.floatingip\.id/);
  });
  it('update.start with no id anywhere', () => {
    assert.match(rejection(neutron('floatingip.update.start', { floatingip: { port_id: null } })), /payload\.id: Required/);
  });
  it('port with a fixed IP lacking its address', () => {
    assert.match(
      rejection(neutron('port.create.end', { port: port({ fixed_ips: [{ subnet_id: 's' }] }) })),
      /payload\.port\.fixed_ips\[0\]\.ip_address/,
    );
  });
  it('bulk create with a bad entry', () => {
    assert.match(rejection(neutron('port.create.end', { ports: [port(), { name: 'x' }] })), /payload\.ports\[1\]\.id/);
  });
  it('port.delete.end without port_id', () => {
    assert.match(rejection(neutron('port.delete.end', { port: port() })), /payload\.port_id/);
  });
  it('router interface without port_id', () => {
    assert.match(rejection(neutron('router.interface.create', { router_interface: { id: 'router-1' } })), /payload\.router_interface\.port_id/);
  });
  it('floating IP port_id of the wrong type', () => {
    assert.match(rejection(neutron('floatingip.update.end', { floatingip: fip({ port_id: 7 }) })), /payload\.floatingip\.port_id/);
  });
});
