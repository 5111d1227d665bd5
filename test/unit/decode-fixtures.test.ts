// Every upstream sample under test/fixtures/upstream decodes, and decodes to
// what the sample says. A new fixture file without an entry here fails.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import type {
  DecodedNotification,
  DomainEvent,
  FloatingIpEvent,
  InstanceEvent,
  OneVmEvent,
  PortEvent,
  RouterEvent, RouterInterfaceEvent,
} from '../../operator/domain/events.ts';
import { decodeNotification, type DecodeErrorReason, type DeliveryMeta } from '../../operator/intake/decode/index.ts';

const ROOT = join(import.meta.dirname, '..', 'fixtures', 'upstream');
const RECEIVED = new Date('2031-01-01T00:00:00Z');
const META: DeliveryMeta = { cloud: 'lab', receivedAt: RECEIVED };

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? walk(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

const FILES = walk(ROOT)
  .map((file) => relative(ROOT, file))
  .filter((file) => file !== 'PROVENANCE.md')
  .sort();

interface Expectation {
  /** How the stored file becomes a delivery body (default: the file as is). */
  body?: (raw: string) => string;
  source: DecodedNotification['source'];
  wire: DecodedNotification['wire'];
  eventType: string;
  /** `type:action` of each event, in order; [] with ignored. */
  events: string[];
  ignored?: boolean;
  idKind: DecodedNotification['idKind'];
  occurredAtSource: DecodedNotification['occurredAtSource'];
  warnings?: number;
  /** The sample is refused with this reason (it is dead-lettered, never half-believed). */
  rejected?: DecodeErrorReason;
}

/** The ZeroMQ capture stores the two frames; the hook publisher forwards the second (base64 content). */
function zmqContent(raw: string): string {
  const stored: unknown = JSON.parse(raw);
  assert.ok(typeof stored === 'object' && stored !== null && 'frames' in stored && Array.isArray(stored.frames));
  const content: unknown = stored.frames[1];
  assert.equal(typeof content, 'string');
  return String(content);
}

const versioned = (action: string): Expectation => ({
  source: 'nova',
  wire: 'oslo-v1',
  eventType: `instance.${action}`,
  events: [`instance:${action}`],
  // Nova's samples leave out message_id and timestamp (oslo adds them).
  idKind: 'content-hash',
  occurredAtSource: 'received',
});

const listener = (eventType: string, events: string[]): Expectation => ({
  source: eventType.startsWith('compute.') ? 'nova' : 'neutron',
  wire: 'oslo-listener',
  eventType,
  events,
  idKind: 'message-id',
  occurredAtSource: 'message',
});

const v1 = (source: 'nova' | 'neutron', eventType: string, events: string[]): Expectation => ({
  source,
  wire: 'oslo-v1',
  eventType,
  events,
  idKind: 'message-id',
  occurredAtSource: 'message',
});

const EXPECTED: Record<string, Expectation> = {
  'neutron/ceilometer-2012-floatingip.exists.json': v1('neutron', 'floatingip.exists', ['floatingip:exists']),
  'neutron/ceilometer-2012-port.create.end.json': v1('neutron', 'port.create.end', ['port:create.end']),
  'neutron/ceilometer-2012-port.update.end.json': v1('neutron', 'port.update.end', ['port:update.end']),
  'neutron/ceilometer-2014-floatingip.update.start.json': {
    ...v1('neutron', 'floatingip.update.start', ['floatingip:update.start']),
    // Its timestamp is garbled upstream ("2014-05-3107: 19: 43.463101"): the
    // event time is unknown, and the receive time must not pass for it.
    rejected: 'implausible-time',
  },
  'neutron/constructed-wire-envelope-floatingip.update.end-associate.json': {
    ...v1('neutron', 'floatingip.update.end', ['floatingip:update.end']),
    wire: 'oslo-v2',
  },
  'neutron/searchlight-floatingip.create.end.json': listener('floatingip.create.end', ['floatingip:create.end']),
  'neutron/searchlight-floatingip.delete.end.json': listener('floatingip.delete.end', ['floatingip:delete.end']),
  'neutron/searchlight-floatingip.update.end-associate.json': listener('floatingip.update.end', ['floatingip:update.end']),
  'neutron/searchlight-floatingip.update.end-disassociate.json': listener('floatingip.update.end', ['floatingip:update.end']),
  'neutron/searchlight-port.create.end-by-nova-boot.json': listener('port.create.end', ['port:create.end']),
  'neutron/searchlight-port.create.end.json': listener('port.create.end', ['port:create.end']),
  'neutron/searchlight-port.delete.end.json': listener('port.delete.end', ['port:delete.end']),
  'neutron/searchlight-port.update.end-attach.json': listener('port.update.end', ['port:update.end']),
  'neutron/searchlight-router.interface.create.json': listener('router.interface.create', ['router_interface:create']),
  'neutron/searchlight-router.update.end-gateway-set.json': listener('router.update.end', ['router:update.end']),
  'nova-legacy/ceilometer-2012-compute.instance.create.end.json': v1('nova', 'compute.instance.create.end', ['instance:create.end']),
  'nova-legacy/ceilometer-2012-compute.instance.delete.start.json': v1('nova', 'compute.instance.delete.start', ['instance:delete.start']),
  'nova-legacy/ceilometer-2012-compute.instance.exists.json': v1('nova', 'compute.instance.exists', ['instance:exists']),
  'nova-legacy/searchlight-compute.instance.delete.end.json': listener('compute.instance.delete.end', ['instance:delete.end']),
  'nova-legacy/searchlight-compute.instance.update-error.json': listener('compute.instance.update', ['instance:update']),
  'nova-versioned/constructed-wire-envelope-instance.delete.start.json': {
    ...versioned('delete.start'),
    wire: 'oslo-v2',
    idKind: 'message-id',
    occurredAtSource: 'message',
  },
  'nova-versioned/instance-create-end.json': versioned('create.end'),
  'nova-versioned/instance-create-error.json': versioned('create.error'),
  'nova-versioned/instance-create-start.json': versioned('create.start'),
  'nova-versioned/instance-delete-end.json': versioned('delete.end'),
  'nova-versioned/instance-delete-end_not_scheduled.json': versioned('delete.end'),
  'nova-versioned/instance-delete-start.json': versioned('delete.start'),
  'nova-versioned/instance-delete-start_not_scheduled.json': versioned('delete.start'),
  'nova-versioned/instance-exists.json': versioned('exists'),
  'nova-versioned/instance-interface_attach-end.json': versioned('interface_attach.end'),
  'nova-versioned/instance-interface_attach-start.json': versioned('interface_attach.start'),
  'nova-versioned/instance-interface_detach-end.json': versioned('interface_detach.end'),
  'nova-versioned/instance-interface_detach-start.json': versioned('interface_detach.start'),
  'nova-versioned/instance-power_off-end.json': versioned('power_off.end'),
  'nova-versioned/instance-restore-end.json': versioned('restore.end'),
  'nova-versioned/instance-restore-start.json': versioned('restore.start'),
  'nova-versioned/instance-shelve-end.json': versioned('shelve.end'),
  'nova-versioned/instance-shelve_offload-end.json': versioned('shelve_offload.end'),
  'nova-versioned/instance-shelve_offload-start.json': versioned('shelve_offload.start'),
  'nova-versioned/instance-shutdown-end.json': versioned('shutdown.end'),
  'nova-versioned/instance-shutdown-start.json': versioned('shutdown.start'),
  'nova-versioned/instance-soft_delete-end.json': versioned('soft_delete.end'),
  'nova-versioned/instance-soft_delete-start.json': versioned('soft_delete.start'),
  'nova-versioned/instance-unshelve-end.json': versioned('unshelve.end'),
  'nova-versioned/instance-update.json': versioned('update'),
  'opennebula/constructed-hook-message-state-vm-epilog.xml': {
    source: 'opennebula',
    wire: 'opennebula-hook-message',
    eventType: 'opennebula.vm.state',
    events: ['one_vm:'],
    idKind: 'content-hash',
    // ESTIME is 0 in this constructed sample, so no history time applies.
    occurredAtSource: 'received',
  },
  'opennebula/constructed-zmq-event-vm-epilog.json': {
    body: zmqContent,
    source: 'opennebula',
    wire: 'opennebula-hook-message',
    eventType: 'opennebula.vm.state',
    events: ['one_vm:'],
    idKind: 'content-hash',
    occurredAtSource: 'received',
  },
  'opennebula/vm-pending-hook-argument-docs.xml': {
    source: 'opennebula',
    wire: 'opennebula-vm',
    eventType: 'opennebula.vm.state',
    events: ['one_vm:'],
    idKind: 'content-hash',
    // PENDING with no history: the VM's creation time (STIME).
    occurredAtSource: 'history',
  },
};

function label(event: DomainEvent): string {
  return `${event.type}:${'action' in event ? event.action : ''}`;
}

function decodeFixture(file: string): DecodedNotification {
  const raw = readFileSync(join(ROOT, file), 'utf8');
  const body = EXPECTED[file]?.body?.(raw) ?? raw;
  const result = decodeNotification(body, META);
  if (!result.ok) assert.fail(`${file}: ${result.error.reason}: ${result.error.message}`);
  return result.notification;
}

describe('every upstream fixture decodes to what it says', () => {
  it('the fixture directory and the expectation table list the same files', () => {
    assert.deepEqual(FILES, Object.keys(EXPECTED).sort());
  });

  for (const file of FILES) {
    it(file, () => {
      const expected = EXPECTED[file];
      assert.ok(expected, `no expectation for ${file}; add one to EXPECTED`);
      if (expected.rejected !== undefined) {
        const result = decodeNotification(readFileSync(join(ROOT, file), 'utf8'), META);
        assert.equal(result.ok ? 'decoded' : result.error.reason, expected.rejected);
        return;
      }
      const n = decodeFixture(file);
      assert.equal(n.cloud, 'lab');
      assert.equal(n.source, expected.source);
      assert.equal(n.wire, expected.wire);
      assert.equal(n.eventType, expected.eventType);
      assert.deepEqual(n.events.map(label), expected.events);
      assert.equal(n.ignored, expected.ignored ?? false);
      assert.equal(n.idKind, expected.idKind);
      if (n.idKind === 'content-hash') assert.match(n.messageId, /^[0-9a-f]{64}$/);
      assert.equal(n.occurredAtSource, expected.occurredAtSource);
      if (n.occurredAtSource === 'received') assert.equal(n.occurredAt.getTime(), RECEIVED.getTime());
      assert.equal(n.receivedAt, RECEIVED);
      assert.equal(n.warnings.length, expected.warnings ?? 0, n.warnings.join('\n'));
    });
  }
});

function only<T extends DomainEvent['type']>(n: DecodedNotification, type: T): Extract<DomainEvent, { type: T }> {
  assert.equal(n.events.length, 1);
  const [event] = n.events;
  assert.ok(event !== undefined && event.type === type, `expected one ${type} event`);
  return event as Extract<DomainEvent, { type: T }>;
}

const instanceOf = (file: string): InstanceEvent => only(decodeFixture(file), 'instance');
const portOf = (file: string): PortEvent => only(decodeFixture(file), 'port');
const fipOf = (file: string): FloatingIpEvent => only(decodeFixture(file), 'floatingip');
const vmOf = (file: string): OneVmEvent => only(decodeFixture(file), 'one_vm');

const UUID = '178b0921-8f85-4257-88b6-2e743b5a975c';
const PROJECT = '6f70656e737461636b20342065766572';
const FIXED_192_168_1_3 = {
  address: '192.168.1.3',
  version: 4,
  mac: 'fa:16:3e:4c:2c:30',
  portId: 'ce531f90-199f-48c0-816c-13e38010b442',
  network: 'private',
  kind: 'fixed',
} as const;

describe('Nova versioned samples', () => {
  it('create.end: identity, ownership, placement, times and the current address list', () => {
    const e = instanceOf('nova-versioned/instance-create-end.json');
    assert.deepEqual(e.instance, {
      id: UUID,
      name: 'some-server',
      project: PROJECT,
      user: 'fake',
      host: 'compute',
      node: 'fake-mini',
      image: '155d900f-4e14-4e4c-a73d-069cbf4541e6',
      flavor: 'test_flavor',
      createdAt: new Date('2012-10-29T13:42:11Z'),
      launchedAt: new Date('2012-10-29T13:42:11Z'),
      state: 'active',
      powerState: 'running',
    });
    assert.equal(e.format, 'versioned');
    assert.deepEqual(e.actor, { user: 'fake', project: PROJECT, requestId: 'req-5b6c791d-5709-4f36-8fbe-c3e02869e35d' });
    assert.deepEqual(e.addresses, [FIXED_192_168_1_3]);
    assert.equal(e.addressesAuthoritative, true);
    assert.equal(e.localDelete, false);
    assert.equal(e.notScheduled, false);
  });

  it('create.start and create.error: the empty list is not a statement about addresses', () => {
    for (const file of ['nova-versioned/instance-create-start.json', 'nova-versioned/instance-create-error.json']) {
      const e = instanceOf(file);
      assert.deepEqual(e.addresses, []);
      assert.equal(e.addressesAuthoritative, false, file);
    }
    const error = decodeFixture('nova-versioned/instance-create-error.json');
    assert.equal(error.priority, 'ERROR');
    assert.equal(only(error, 'instance').notScheduled, true);
  });

  it('delete.start from the compute service: addresses still listed, disks about to go', () => {
    const e = instanceOf('nova-versioned/instance-delete-start.json');
    assert.equal(e.instance.taskState, 'deleting');
    assert.deepEqual(e.addresses, [FIXED_192_168_1_3]);
    assert.equal(e.addressesAuthoritative, true);
    assert.equal(e.localDelete, false);
    assert.equal(e.notScheduled, false);
  });

  it('shutdown.end and delete.end carry [] that must not be read as a release (§0.8)', () => {
    for (const file of ['nova-versioned/instance-shutdown-end.json', 'nova-versioned/instance-delete-end.json']) {
      const e = instanceOf(file);
      assert.deepEqual(e.addresses, []);
      assert.equal(e.addressesAuthoritative, false, file);
    }
    const end = instanceOf('nova-versioned/instance-delete-end.json');
    assert.equal(end.instance.state, 'deleted');
    assert.deepEqual(end.instance.deletedAt, new Date('2012-10-29T13:42:11Z'));
    assert.deepEqual(end.instance.terminatedAt, new Date('2012-10-29T13:42:11Z'));
  });

  it('not scheduled: delete from nova-api with no host means nothing on disk, not a local delete', () => {
    for (const file of [
      'nova-versioned/instance-delete-start_not_scheduled.json',
      'nova-versioned/instance-delete-end_not_scheduled.json',
    ]) {
      const n = decodeFixture(file);
      assert.equal(n.publisher, 'nova-api:fake-mini');
      const e = only(n, 'instance');
      assert.equal(e.instance.host, undefined);
      assert.equal(e.notScheduled, true, file);
      assert.equal(e.localDelete, false, file);
    }
  });

  it('soft_delete keeps addresses and sets deleted_at; restore.end clears it', () => {
    const soft = instanceOf('nova-versioned/instance-soft_delete-end.json');
    assert.equal(soft.instance.state, 'soft-delete');
    assert.deepEqual(soft.instance.deletedAt, new Date('2012-10-29T13:42:11Z'));
    assert.deepEqual(soft.addresses, [FIXED_192_168_1_3]);
    assert.equal(soft.addressesAuthoritative, true);
    assert.equal(soft.localDelete, false);
    const restored = instanceOf('nova-versioned/instance-restore-end.json');
    assert.equal(restored.instance.state, 'active');
    assert.equal(restored.instance.deletedAt, undefined);
  });

  it('interface attach/detach .end list the new set', () => {
    const attached = instanceOf('nova-versioned/instance-interface_attach-end.json');
    assert.deepEqual(
      attached.addresses?.map((a) => a.address),
      ['192.168.1.3', '192.168.1.30'],
    );
    assert.equal(attached.addressesAuthoritative, true);
    const detached = instanceOf('nova-versioned/instance-interface_detach-end.json');
    assert.deepEqual(
      detached.addresses?.map((a) => a.address),
      ['192.168.1.3'],
    );
    assert.equal(detached.addressesAuthoritative, true);
  });

  it('shelve_offload.end: no host any more, but not a delete', () => {
    const e = instanceOf('nova-versioned/instance-shelve_offload-end.json');
    assert.equal(e.instance.state, 'shelved_offloaded');
    assert.equal(e.instance.host, undefined);
    assert.equal(e.notScheduled, false);
    assert.equal(e.localDelete, false);
  });

  it('update and exists list current addresses', () => {
    const update = instanceOf('nova-versioned/instance-update.json');
    assert.equal(update.instance.taskState, 'scheduling');
    assert.equal(update.addressesAuthoritative, true);
    const exists = instanceOf('nova-versioned/instance-exists.json');
    assert.equal(exists.instance.image, 'a2459075-d96c-40d5-893e-577ff92e721c');
    assert.deepEqual(exists.addresses, [FIXED_192_168_1_3]);
    assert.equal(exists.addressesAuthoritative, true);
  });

  it('the constructed 2.0 envelope: message id, timestamp and _context_* come from the wire', () => {
    const n = decodeFixture('nova-versioned/constructed-wire-envelope-instance.delete.start.json');
    assert.equal(n.messageId, '6a9f2c1e-4b7d-4e0a-9c35-2f1d8e7b5a40');
    assert.deepEqual(n.occurredAt, new Date('2012-10-29T13:42:11.604Z'));
    assert.equal(n.publisher, 'nova-compute:compute');
    assert.equal(n.priority, 'INFO');
    assert.deepEqual(n.context, {
      userId: 'fake',
      projectId: PROJECT,
      requestId: 'req-5b6c791d-5709-4f36-8fbe-c3e02869e35d',
      userName: 'demo',
      projectName: 'demo',
    });
    const e = only(n, 'instance');
    assert.equal(e.instance.id, UUID);
    assert.deepEqual(e.addresses, [FIXED_192_168_1_3]);
  });
});

describe('Nova legacy samples', () => {
  it('create.end (ceilometer 2012, v1 wire): flat payload, context actor, fixed IPs', () => {
    const n = decodeFixture('nova-legacy/ceilometer-2012-compute.instance.create.end.json');
    assert.equal(n.messageId, 'dae6f69c-00e0-41c0-b371-41ec3b7f4451');
    assert.deepEqual(n.occurredAt, new Date('2012-05-08T20:23:48.028Z'));
    assert.equal(n.publisher, 'compute.vagrant-precise');
    const e = only(n, 'instance');
    assert.equal(e.format, 'legacy');
    assert.deepEqual(e.instance, {
      id: '9f9d01b9-4a58-4271-9e27-398b21ab20d1',
      name: 'testme',
      project: '7c150a59fe714e6f9263774af9688f0e',
      user: '1e3ce043029547f1a61c1996d1a531a2',
      host: 'compute-host-name',
      image: 'UUID',
      flavor: 'm1.tiny',
      createdAt: new Date('2012-05-08T20:23:41Z'),
      launchedAt: new Date('2012-05-08T20:23:47.985Z'),
      state: 'active',
    });
    assert.deepEqual(e.actor, {
      user: '1e3ce043029547f1a61c1996d1a531a2',
      project: '7c150a59fe714e6f9263774af9688f0e',
      requestId: 'req-d68b36e0-9233-467f-9afb-d81435d64d66',
    });
    assert.deepEqual(e.addresses, [{ address: '10.0.0.2', version: 4, kind: 'fixed' }]);
    assert.equal(e.addressesAuthoritative, true);
  });

  it('delete.start: no fixed_ips key, so addresses are unknown rather than empty', () => {
    const e = instanceOf('nova-legacy/ceilometer-2012-compute.instance.delete.start.json');
    assert.equal(e.instance.taskState, 'deleting');
    assert.equal(e.addresses, undefined);
    assert.equal(e.addressesAuthoritative, false);
    // The publisher's host differs from the instance's host: in a real cloud
    // that means the API deleted it locally; see the oddity noted below.
    assert.equal(e.localDelete, true);
  });

  it('exists: periodic audit with a null context user', () => {
    const n = decodeFixture('nova-legacy/ceilometer-2012-compute.instance.exists.json');
    assert.deepEqual(n.context, { requestId: 'req-659a8eb2-4372-4c01-9028-ad6e40b0ed22' });
    const e = only(n, 'instance');
    assert.equal(e.instance.id, '3a513875-95c9-4012-a3e7-f90c678854e5');
    assert.deepEqual(e.actor, { requestId: 'req-659a8eb2-4372-4c01-9028-ad6e40b0ed22' });
  });

  it('delete.end (searchlight listener): deleted/terminated times, base image, ctxt as context', () => {
    const n = decodeFixture('nova-legacy/searchlight-compute.instance.delete.end.json');
    assert.equal(n.messageId, '56428f7d-3f07-4b23-882d-612d8852e422');
    assert.deepEqual(n.occurredAt, new Date('2016-03-14T00:44:57.126Z'));
    assert.equal(n.priority, undefined);
    assert.deepEqual(n.context, {
      userId: 'd2ac2752732444adac10fc4911fdac75',
      projectId: 'b1fbc598025841899f63333269abe1d2',
      userName: 'demo',
      projectName: 'demo',
    });
    const e = only(n, 'instance');
    assert.equal(e.instance.id, 'ab327a92-25c5-4c1d-b0be-8ee55632defc');
    assert.equal(e.instance.state, 'deleted');
    assert.equal(e.instance.host, 'zhenyu-dev');
    assert.equal(e.instance.image, '2ff3a1d3-ed70-4c3f-94ac-941461153bc0');
    assert.deepEqual(e.instance.createdAt, new Date('2016-12-16T09:30:47Z'));
    assert.deepEqual(e.instance.deletedAt, new Date('2016-12-16T09:35:42Z'));
    assert.deepEqual(e.instance.terminatedAt, new Date('2016-12-16T09:35:42.050Z'));
    // Publisher "network.devstack" is a fixture artefact; it is not a compute
    // publisher, so no local-delete inference is made from it.
    assert.equal(e.localDelete, false);
  });

  it('update during scheduling error: state, owner and no addresses', () => {
    const e = instanceOf('nova-legacy/searchlight-compute.instance.update-error.json');
    assert.equal(e.instance.state, 'error');
    assert.equal(e.instance.user, 'be4c4bdabad540f89da803026bcdc71b');
    assert.equal(e.instance.flavor, 'm1.really-big');
    assert.equal(e.addresses, undefined);
  });
});

describe('Neutron samples', () => {
  const FIP = '1a124625-4c71-4d20-a65b-3cf34465dab2';
  const FIP_PROJECT = '5fe7c4e4e492490393c674089a178e19';

  it('floatingip.create.end: unassociated (port null, not unknown)', () => {
    const e = fipOf('neutron/searchlight-floatingip.create.end.json');
    assert.deepEqual(e.floatingIp, {
      id: FIP,
      address: '172.25.0.20',
      networkId: '5f7774a3-759f-4798-92f0-5ef59c88705c',
      portId: null,
      fixedAddress: null,
      routerId: null,
      project: FIP_PROJECT,
      status: 'DOWN',
    });
  });

  it('floatingip.update.end associate and disassociate', () => {
    const on = fipOf('neutron/searchlight-floatingip.update.end-associate.json');
    assert.equal(on.floatingIp.portId, '163da95e-740d-4fe0-a8ee-91b77bb5ae33');
    assert.equal(on.floatingIp.fixedAddress, '172.40.0.6');
    assert.equal(on.floatingIp.routerId, 'ffcd49c4-0532-4d4d-ac48-4b88e10ec90e');
    assert.equal(on.floatingIp.address, '172.25.0.20');
    const off = fipOf('neutron/searchlight-floatingip.update.end-disassociate.json');
    assert.equal(off.floatingIp.portId, null);
    assert.equal(off.floatingIp.fixedAddress, null);
  });

  it('floatingip.delete.end before Newton: id only, association unknown', () => {
    const e = fipOf('neutron/searchlight-floatingip.delete.end.json');
    assert.equal(e.idOnly, true);
    assert.deepEqual(e.floatingIp, { id: FIP });
    assert.equal(e.floatingIp.portId, undefined);
  });

  it('floatingip.update.start: the request, id from payload.id, project not invented from context', () => {
    // The same sample with its garbled timestamp repaired (as refused, see EXPECTED).
    const raw = readFileSync(join(ROOT, 'neutron/ceilometer-2014-floatingip.update.start.json'), 'utf8');
    const result = decodeNotification(raw.replace('"2014-05-3107: 19: 43.463101"', '"2014-05-31 07:19:43.463101"'), META);
    assert.ok(result.ok);
    const n = result.notification;
    assert.equal(n.occurredAt.toISOString(), '2014-05-31T07:19:43.463Z');
    assert.equal(n.priority, 'INFO');
    assert.equal(n.context.projectId, '9fc714821a3747c8bc4e3a9bfbe82732');
    const e = only(n, 'floatingip');
    assert.deepEqual(e.floatingIp, {
      id: '64262b2a-8f5d-4ade-9405-0cbdd03c1555',
      portId: '8ab815c8-03cc-4b45-a673-79bdd0c258f2',
      fixedAddress: '172.24.4.227',
    });
  });

  it('floatingip.exists (usage audit)', () => {
    const e = fipOf('neutron/ceilometer-2012-floatingip.exists.json');
    assert.equal(e.floatingIp.address, '172.24.4.227');
    assert.equal(e.floatingIp.portId, null);
    assert.equal(e.floatingIp.project, '6e5f9df9b3a249ab834f25fe1b1b81fd');
  });

  it('the constructed 2.0 envelope decodes to the same facts as its listener original', () => {
    const wire = decodeFixture('neutron/constructed-wire-envelope-floatingip.update.end-associate.json');
    const stored = decodeFixture('neutron/searchlight-floatingip.update.end-associate.json');
    assert.deepEqual(wire.events, stored.events);
    assert.equal(wire.messageId, stored.messageId);
    assert.deepEqual(wire.occurredAt, stored.occurredAt);
    assert.deepEqual(wire.context, stored.context);
  });

  it('port.create.end by nova boot: owner from the port, not from the service context', () => {
    const n = decodeFixture('neutron/searchlight-port.create.end-by-nova-boot.json');
    assert.equal(n.context.userName, 'neutron');
    assert.equal(n.context.projectId, 'be59108da5704e14a37827f74deeb3ac');
    const e = only(n, 'port');
    assert.deepEqual(e.port, {
      id: '100bdb32-9356-4d84-ac94-f8daee223214',
      deviceId: '939d5843-5ca0-4e63-86f2-7a945724618c',
      deviceOwner: 'compute:None',
      networkId: '7a95c19d-9abc-4651-b491-f2345994e956',
      mac: 'fa:16:3e:c1:c6:49',
      project: FIP_PROJECT,
      host: 'devstack',
      fixedIps: [{ address: '192.168.40.2', subnetId: 'db771741-9249-4f7b-97a7-d6187c4e244b' }],
      status: 'DOWN',
    });
    assert.equal(e.idOnly, false);
  });

  it('port.create.end of an unbound port: empty device and host are absent', () => {
    const e = portOf('neutron/searchlight-port.create.end.json');
    assert.equal(e.port.deviceId, undefined);
    assert.equal(e.port.host, undefined);
    assert.deepEqual(e.port.fixedIps, [{ address: '192.168.50.3', subnetId: '7578fb5f-8c89-48ae-ac9c-65d7a7959bd3' }]);
  });

  it('port.update.end attach: the port now names the instance', () => {
    const e = portOf('neutron/searchlight-port.update.end-attach.json');
    assert.equal(e.port.id, 'f7c93feb-b837-4bb1-b0bc-7ad2a53d85cb');
    assert.equal(e.port.deviceId, '939d5843-5ca0-4e63-86f2-7a945724618c');
    assert.equal(e.port.host, 'devstack');
  });

  it('port.delete.end before Newton: only the id (the silent-disassociation trigger)', () => {
    const e = portOf('neutron/searchlight-port.delete.end.json');
    assert.deepEqual(e, {
      type: 'port',
      action: 'delete.end',
      port: { id: 'f7c93feb-b837-4bb1-b0bc-7ad2a53d85cb', fixedIps: [] },
      idOnly: true,
    });
  });

  it('ceilometer 2012 ports: tenant from the port, empty device', () => {
    const created = portOf('neutron/ceilometer-2012-port.create.end.json');
    assert.equal(created.port.project, '82ed0c40ebe64d0bb3310027039c8ed2');
    assert.deepEqual(created.port.fixedIps, [{ address: '192.168.42.3', subnetId: '1a3a170d-d7ce-4cc9-b1db-621da15a25f5' }]);
    assert.equal(created.port.mac, 'fa:16:3e:75:0c:49');
    const updated = portOf('neutron/ceilometer-2012-port.update.end.json');
    assert.equal(updated.port.id, created.port.id);
  });

  it('router.interface.create', () => {
    const e: RouterInterfaceEvent = only(decodeFixture('neutron/searchlight-router.interface.create.json'), 'router_interface');
    assert.deepEqual(e, {
      type: 'router_interface',
      action: 'create',
      routerId: '0b143748-44d2-4545-9230-864c3abbc786',
      portId: 'a5324522-47d3-4547-85df-a01ef6bde4b1',
      subnetId: '4cd5c1d7-68ec-4e9a-bf16-9fd7571f8805',
      networkId: '60e80dca-302d-4460-8984-9b85dc782bca',
      project: FIP_PROJECT,
    });
  });
});

describe('Neutron router gateway', () => {
  it('router.update.end with a gateway: its external addresses, network and the router\'s project', () => {
    const e: RouterEvent = only(decodeFixture('neutron/searchlight-router.update.end-gateway-set.json'), 'router');
    assert.deepEqual(e, {
      type: 'router', action: 'update.end', idOnly: false,
      router: {
        id: '0b143748-44d2-4545-9230-864c3abbc786', name: 'renamed router', project: '5fe7c4e4e492490393c674089a178e19',
        gatewayNetworkId: '8891323e-bf5b-48d7-a75e-669af0608538', gatewayIps: ['172.25.0.3', '2001:db8::3'],
      },
    });
  });
});

describe('OpenNebula samples', () => {
  it('HOOK_MESSAGE ACTIVE/EPILOG: VM identity, owner, states, host, NIC and Ceph disk', () => {
    const e = vmOf('opennebula/constructed-hook-message-state-vm-epilog.xml');
    assert.deepEqual(e.hook, {
      type: 'STATE',
      state: 'ACTIVE',
      lcmState: 'EPILOG',
      resourceId: 800,
      remoteHost: 'ubuntu2204-kvm-ceph-quincy-6-99-0c08-2.test',
    });
    const vm = e.vm;
    assert.equal(vm.id, 800);
    assert.equal(vm.name, 'alpine-800');
    assert.deepEqual([vm.uid, vm.uname, vm.gid, vm.gname], [0, 'oneadmin', 0, 'oneadmin']);
    assert.deepEqual(vm.state, { code: 3, name: 'ACTIVE' });
    assert.deepEqual(vm.lcmState, { code: 11, name: 'EPILOG' });
    assert.deepEqual(vm.prevLcmState, { code: 3, name: 'RUNNING' });
    assert.deepEqual(vm.stime, new Date(1727952499 * 1000));
    assert.equal(vm.etime, undefined);
    assert.equal(vm.deployId, '7c657ee7-166b-46d3-bf5f-53886f0b77dd');
    assert.equal(vm.host, 'ubuntu2204-kvm-ceph-quincy-6-99-0c08-2.test');
    assert.deepEqual(vm.nics, [
      {
        nicId: 0,
        ip: '192.168.150.100',
        mac: '02:00:c0:a8:96:64',
        network: 'public',
        networkId: 0,
        target: 'one-800-0',
        alias: false,
      },
    ]);
    assert.deepEqual(vm.disks, [
      {
        diskId: 0,
        imageId: 0,
        image: 'alpine',
        source: 'one/one-0',
        poolName: 'one',
        clone: true,
        persistent: false,
        tmMad: 'ceph',
        datastoreId: 1,
        size: 256,
        type: 'RBD',
      },
    ]);
    assert.deepEqual(vm.historyAction, { code: 0, name: 'none' });
  });

  it('the ZeroMQ frame content (base64) is the same document: same events, same content hash', () => {
    const plain = decodeFixture('opennebula/constructed-hook-message-state-vm-epilog.xml');
    const framed = decodeFixture('opennebula/constructed-zmq-event-vm-epilog.json');
    assert.deepEqual(framed.events, plain.events);
    assert.equal(framed.messageId, plain.messageId);
  });

  it('bare VM from the hook docs: PENDING/LCM_INIT, no host, no NICs, CDATA template', () => {
    const n = decodeFixture('opennebula/vm-pending-hook-argument-docs.xml');
    assert.deepEqual(n.occurredAt, new Date(1569244238 * 1000));
    const e = only(n, 'one_vm');
    assert.equal(e.hook, undefined);
    assert.equal(e.vm.id, 0);
    assert.equal(e.vm.name, 'test');
    assert.deepEqual(e.vm.state, { code: 1, name: 'PENDING' });
    assert.deepEqual(e.vm.lcmState, { code: 0, name: 'LCM_INIT' });
    assert.equal(e.vm.deployId, undefined);
    assert.equal(e.vm.host, undefined);
    assert.deepEqual(e.vm.nics, []);
    assert.deepEqual(e.vm.disks, []);
    assert.equal(e.vm.historyAction, undefined);
  });
});
