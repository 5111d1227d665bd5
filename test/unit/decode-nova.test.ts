// Nova instance events built from small synthetic messages: the delete
// paths that decide whether disks still exist, address-list semantics, and
// the legacy format's floating IPs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DecodedNotification, InstanceEvent } from '../../operator/domain/events.ts';
import { decodeNotification, type DecodeErrorReason, type DeliveryMeta } from '../../operator/intake/decode/index.ts';

const META: DeliveryMeta = { cloud: 'os1', receivedAt: new Date('2031-01-01T00:00:00Z'), exchange: 'nova' };
const UUID = 'a1b2c3d4-0000-4000-8000-000000000001';

type Json = Record<string, unknown>;

function ip(address: string, version: number, port: string): Json {
  return {
    'nova_object.name': 'IpPayload',
    'nova_object.version': '1.0',
    'nova_object.data': { address, version, mac: 'fa:16:3e:00:00:01', port_uuid: port, label: 'private', meta: {} },
  };
}

/** A versioned instance notification; `data` overrides fields of nova_object.data. */
function versioned(eventType: string, data: Json = {}, publisher = 'nova-compute:cmp1'): string {
  return JSON.stringify({
    message_id: `m-${eventType}`,
    publisher_id: publisher,
    event_type: eventType,
    priority: 'INFO',
    timestamp: '2024-03-01 10:00:00.000001',
    payload: {
      'nova_object.name': 'InstanceActionPayload',
      'nova_object.namespace': 'nova',
      'nova_object.version': '1.9',
      'nova_object.data': {
        uuid: UUID,
        display_name: 'vm1',
        user_id: 'owner-user',
        tenant_id: 'owner-project',
        host: 'cmp1',
        node: 'cmp1.example',
        image_uuid: 'img-1',
        state: 'active',
        task_state: null,
        power_state: 'running',
        created_at: '2024-03-01T09:00:00Z',
        launched_at: '2024-03-01T09:01:00Z',
        deleted_at: null,
        terminated_at: null,
        action_initiator_user: 'admin-user',
        action_initiator_project: 'admin-project',
        request_id: 'req-9',
        ip_addresses: [ip('10.0.0.5', 4, 'port-1')],
        flavor: { 'nova_object.name': 'FlavorPayload', 'nova_object.data': { name: 'm1.small', flavorid: 'f1' } },
        ...data,
      },
    },
  });
}

/** A legacy instance notification; `payload` overrides the flat payload. */
function legacyMessage(eventType: string, payload: Json = {}, publisher = 'compute.cmp1'): Json {
  return {
    message_id: `m-${eventType}`,
    publisher_id: publisher,
    event_type: eventType,
    priority: 'INFO',
    timestamp: '2024-03-01 10:00:00',
    _context_user_id: 'admin-user',
    _context_project_id: 'admin-project',
    _context_request_id: 'req-9',
    payload: {
      instance_id: UUID,
      display_name: 'vm1',
      user_id: 'owner-user',
      tenant_id: 'owner-project',
      host: 'cmp1',
      node: 'cmp1.example',
      state: 'active',
      state_description: '',
      created_at: '2024-03-01 09:00:00+00:00',
      launched_at: '2024-03-01T09:01:00.000000',
      deleted_at: '',
      terminated_at: '',
      instance_type: 'm1.small',
      image_meta: { base_image_ref: 'img-1' },
      ...payload,
    },
  };
}

function legacy(eventType: string, payload: Json = {}, publisher = 'compute.cmp1'): string {
  return JSON.stringify(legacyMessage(eventType, payload, publisher));
}

function decode(body: string): DecodedNotification {
  const result = decodeNotification(body, META);
  if (!result.ok) assert.fail(`${result.error.reason}: ${result.error.message}`);
  return result.notification;
}

function instance(body: string): InstanceEvent {
  const n = decode(body);
  assert.equal(n.events.length, 1);
  const [event] = n.events;
  assert.ok(event?.type === 'instance');
  return event;
}

function rejected(body: string): { reason: DecodeErrorReason; message: string } {
  const result = decodeNotification(body, META);
  assert.equal(result.ok, false);
  return result.ok ? assert.fail('decoded') : { reason: result.error.reason, message: result.error.message };
}

describe('delete paths: do the disks still exist?', () => {
  const cases: [string, string, Json, { localDelete: boolean; notScheduled: boolean }][] = [
    ['compute service up: nova-compute announces, disks go now', 'nova-compute:cmp1', {}, { localDelete: false, notScheduled: false }],
    ['compute service down: nova-api announces, disks stay and vanish later', 'nova-api:ctl1', {}, { localDelete: true, notScheduled: false }],
    [
      'never scheduled: nova-api, no host, never launched, nothing on disk',
      'nova-api:ctl1',
      { host: null, node: null, launched_at: null, state: 'error' },
      { localDelete: false, notScheduled: true },
    ],
    [
      'shelved offloaded: nova-api, no host, but it ran once (disks went at offload)',
      'nova-api:ctl1',
      { host: null, node: null, state: 'shelved_offloaded' },
      { localDelete: false, notScheduled: false },
    ],
  ];
  for (const [what, publisher, data, hints] of cases) {
    for (const phase of ['start', 'end']) {
      it(`instance.delete.${phase}, ${what}`, () => {
        const e = instance(versioned(`instance.delete.${phase}`, data, publisher));
        assert.equal(e.localDelete, hints.localDelete);
        assert.equal(e.notScheduled, hints.notScheduled);
      });
    }
  }

  it('the delete hints are set on deletes only', () => {
    for (const eventType of ['instance.update', 'instance.soft_delete.end', 'instance.shutdown.start']) {
      const e = instance(versioned(eventType, {}, 'nova-api:ctl1'));
      assert.equal(e.localDelete, false, eventType);
    }
  });

  it('legacy force_delete exists only on the local-delete path', () => {
    const e = instance(legacy('compute.instance.force_delete.start', {}, 'compute.cmp1'));
    assert.equal(e.action, 'force_delete.start');
    assert.equal(e.localDelete, true);
  });

  it('legacy delete published by the API node (publisher host ≠ instance host) is a local delete', () => {
    assert.equal(instance(legacy('compute.instance.delete.start', {}, 'compute.ctl1')).localDelete, true);
    assert.equal(instance(legacy('compute.instance.delete.start', {}, 'compute.cmp1')).localDelete, false);
  });

  it('legacy never-scheduled delete', () => {
    const e = instance(legacy('compute.instance.delete.end', { host: null, node: null, launched_at: '' }, 'compute.ctl1'));
    assert.equal(e.notScheduled, true);
    assert.equal(e.localDelete, false);
  });

  it('the actor of a delete is the initiator, the owner stays the owner', () => {
    const e = instance(versioned('instance.delete.start'));
    assert.deepEqual(e.actor, { user: 'admin-user', project: 'admin-project', requestId: 'req-9' });
    assert.equal(e.instance.user, 'owner-user');
    assert.equal(e.instance.project, 'owner-project');
  });

  it('a periodic reclaim has no initiator and no request id', () => {
    const e = instance(
      versioned('instance.delete.start', { action_initiator_user: null, action_initiator_project: null, request_id: null }),
    );
    assert.equal(e.actor, undefined);
  });
});

describe('address lists: present, absent, complete', () => {
  it('listed addresses carry port, mac, network and version; IPv6 included', () => {
    const e = instance(versioned('instance.create.end', { ip_addresses: [ip('10.0.0.5', 4, 'p1'), ip('2001:db8::5', 6, 'p1')] }));
    assert.deepEqual(e.addresses, [
      { address: '10.0.0.5', version: 4, mac: 'fa:16:3e:00:00:01', portId: 'p1', network: 'private', kind: 'fixed' },
      { address: '2001:db8::5', version: 6, mac: 'fa:16:3e:00:00:01', portId: 'p1', network: 'private', kind: 'fixed' },
    ]);
    assert.equal(e.addressesAuthoritative, true);
  });

  it('no ip_addresses key (or null) means "not told", not "none"', () => {
    for (const data of [{ ip_addresses: undefined }, { ip_addresses: null }]) {
      const e = instance(versioned('instance.update', data));
      assert.equal(e.addresses, undefined);
      assert.equal(e.addressesAuthoritative, false);
    }
  });

  const cases: [string, Json, boolean][] = [
    ['instance.create.end', {}, true],
    ['instance.interface_detach.end', { ip_addresses: [] }, true],
    ['instance.update', { ip_addresses: [] }, true],
    ['instance.exists', {}, true],
    ['instance.delete.start', {}, true],
    ['instance.soft_delete.end', { state: 'soft-delete' }, true],
    ['instance.create.start', { ip_addresses: [] }, false],
    ['instance.create.error', { ip_addresses: [] }, false],
    ['instance.shutdown.end', { ip_addresses: [] }, false],
    ['instance.delete.end', { ip_addresses: [], state: 'deleted' }, false],
    ['instance.update', { ip_addresses: [], state: 'deleted' }, false],
  ];
  for (const [eventType, data, authoritative] of cases) {
    it(`${eventType}${data['state'] ? ` (state ${String(data['state'])})` : ''}: authoritative = ${authoritative}`, () => {
      assert.equal(instance(versioned(eventType, data)).addressesAuthoritative, authoritative);
    });
  }

  it('legacy fixed_ips with floating IPs yield both kinds, the floating one pointing at its fixed address', () => {
    const e = instance(
      legacy('compute.instance.create.end', {
        fixed_ips: [
          {
            address: '10.0.0.5',
            version: 4,
            type: 'fixed',
            label: 'private',
            vif_mac: 'fa:16:3e:00:00:01',
            meta: {},
            floating_ips: [{ address: '203.0.113.9', type: 'floating', version: 4, meta: {} }],
          },
        ],
      }),
    );
    assert.deepEqual(e.addresses, [
      { address: '10.0.0.5', version: 4, mac: 'fa:16:3e:00:00:01', network: 'private', kind: 'fixed' },
      { address: '203.0.113.9', version: 4, network: 'private', kind: 'floating', fixedAddress: '10.0.0.5' },
    ]);
    assert.equal(e.addressesAuthoritative, true);
  });

  it('legacy delete.* has no fixed_ips: addresses unknown', () => {
    const e = instance(legacy('compute.instance.delete.end', { state: 'deleted' }));
    assert.equal(e.addresses, undefined);
    assert.equal(e.addressesAuthoritative, false);
  });
});

describe('versioned and legacy normalise to the same actions and fields', () => {
  const pairs: [string, string, string][] = [
    ['instance.delete.start', 'compute.instance.delete.start', 'delete.start'],
    ['instance.soft_delete.end', 'compute.instance.soft_delete.end', 'soft_delete.end'],
    ['instance.restore.end', 'compute.instance.restore.end', 'restore.end'],
    ['instance.shelve_offload.end', 'compute.instance.shelve_offload.end', 'shelve_offload.end'],
    ['instance.power_off.end', 'compute.instance.power_off.end', 'power_off.end'],
    ['instance.update', 'compute.instance.update', 'update'],
    ['instance.exists', 'compute.instance.exists', 'exists'],
  ];
  for (const [v, l, action] of pairs) {
    it(`${v} ≡ ${l}`, () => {
      const a = instance(versioned(v));
      const b = instance(legacy(l));
      assert.equal(a.action, action);
      assert.equal(b.action, action);
      assert.equal(a.format, 'versioned');
      assert.equal(b.format, 'legacy');
      for (const field of ['id', 'name', 'project', 'user', 'host', 'node', 'image', 'flavor', 'state'] as const) {
        assert.equal(a.instance[field], b.instance[field], field);
      }
      assert.deepEqual(a.instance.createdAt, b.instance.createdAt);
      assert.deepEqual(a.instance.launchedAt, b.instance.launchedAt);
    });
  }

  it('legacy "" times are unset; task state comes from state_description', () => {
    const e = instance(legacy('compute.instance.delete.start', { state_description: 'deleting' }));
    assert.equal(e.instance.deletedAt, undefined);
    assert.equal(e.instance.terminatedAt, undefined);
    assert.equal(e.instance.taskState, 'deleting');
  });

  it('legacy image falls back to image_ref when image_meta is missing', () => {
    assert.equal(instance(legacy('compute.instance.exists', { image_meta: undefined, image_ref: 'img-2' })).instance.image, 'img-2');
  });

  it('boot from volume: an empty image_uuid is no image', () => {
    assert.equal(instance(versioned('instance.create.end', { image_uuid: '' })).instance.image, undefined);
  });
});

describe('tolerance and strictness', () => {
  it('unknown extra fields (newer payload versions) are accepted', () => {
    const e = instance(versioned('instance.delete.start', { shiny_new_field: { a: 1 }, locked_reason: 'x' }));
    assert.equal(e.instance.id, UUID);
  });

  it('a garbled optional time is a warning, not a rejection', () => {
    const n = decode(versioned('instance.delete.start', { launched_at: 'soon' }));
    assert.equal(n.events.length, 1);
    assert.match(n.warnings.join(), /payload\.nova_object\.data\.launched_at: unrecognised timestamp "soon"/);
  });

  it('an instance.* action we do not use is ignored', () => {
    const n = decode(versioned('instance.pause.end'));
    assert.equal(n.ignored, true);
    assert.equal(n.source, 'nova');
    assert.deepEqual(n.events, []);
  });

  it('a versioned payload without uuid → bad-payload naming the path', () => {
    const { reason, message } = rejected(versioned('instance.delete.start', { uuid: undefined }));
    assert.equal(reason, 'bad-payload');
    assert.match(message, /instance\.delete\.start: payload\["nova_object\.data"\]\.uuid: /);
  });

  it('a legacy flat payload under a versioned event type → bad-payload', () => {
    const body = legacyMessage('compute.instance.delete.start');
    const { reason, message } = rejected(JSON.stringify({ ...body, event_type: 'instance.delete.start' }));
    assert.equal(reason, 'bad-payload');
    assert.match(message, /nova_object\.data/);
  });

  it('a legacy payload without instance_id → bad-payload', () => {
    const { reason, message } = rejected(legacy('compute.instance.delete.end', { instance_id: undefined }));
    assert.equal(reason, 'bad-payload');
    assert.match(message, /payload\.instance_id/);
  });

  it('a mistyped address entry → bad-payload naming the index', () => {
    const { reason, message } = rejected(
      versioned('instance.create.end', { ip_addresses: [{ 'nova_object.data': { address: 5 } }] }),
    );
    assert.equal(reason, 'bad-payload');
    assert.match(message, /ip_addresses\[0\]\["nova_object\.data"\]\.address/);
  });
});
