// The oslo.messaging side of decoding: the three wire shapes, routing,
// message ids and event times, and every way a body can be malformed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DecodedNotification } from '../../operator/domain/events.ts';
import {
  decodeNotification,
  decodeNotificationOrThrow,
  DecodeError,
  type DecodeErrorReason,
  type DeliveryMeta,
} from '../../operator/intake/decode/index.ts';

const RECEIVED = new Date('2031-05-05T05:05:05Z');

function meta(overrides: Partial<DeliveryMeta> = {}): DeliveryMeta {
  return { cloud: 'os1', receivedAt: RECEIVED, exchange: 'neutron', routingKey: 'notifications.info', ...overrides };
}

type Json = Record<string, unknown>;

/** A bare (v1) Neutron floating IP association, as the notifier produces it. */
function flatMessage(overrides: Json = {}): Json {
  return {
    message_id: 'aeb45eda-33b0-4d3b-8b9c-00fed64f5adb',
    publisher_id: 'network.net1',
    event_type: 'floatingip.update.end',
    priority: 'INFO',
    timestamp: '2016-06-14 19:47:09.158589',
    _unique_id: '9b2e4f6a8c0d4e1f8a3b5c7d9e1f2a3b',
    _context_user_id: 'u-1',
    _context_project_id: 'p-1',
    _context_request_id: 'req-1',
    _context_user_name: 'alice',
    _context_project_name: 'demo',
    _context_auth_token: null,
    payload: {
      floatingip: {
        id: 'fip-1',
        floating_ip_address: '203.0.113.7',
        floating_network_id: 'ext-net',
        port_id: 'port-a',
        fixed_ip_address: '10.0.0.5',
        router_id: 'router-1',
        tenant_id: 'p-owner',
        status: 'ACTIVE',
      },
    },
    ...overrides,
  };
}

function v2(inner: Json): string {
  return JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': JSON.stringify(inner) });
}

/** What an oslo listener callback receives for the same message. */
function listenerShape(flat: Json): Json {
  const ctxt: Json = {};
  const rest: Json = {};
  for (const [key, value] of Object.entries(flat)) {
    if (key.startsWith('_context_')) ctxt[key.slice('_context_'.length)] = value;
    else if (key !== 'message_id' && key !== 'timestamp' && key !== '_unique_id' && key !== 'priority') rest[key] = value;
  }
  return { ...rest, ctxt, metadata: { message_id: flat['message_id'], timestamp: flat['timestamp'] } };
}

function decoded(body: string | Uint8Array, m: DeliveryMeta = meta()): DecodedNotification {
  const result = decodeNotification(body, m);
  if (!result.ok) assert.fail(`${result.error.reason}: ${result.error.message}`);
  return result.notification;
}

function rejects(body: string | Uint8Array, reason: DecodeErrorReason, message: RegExp, m: DeliveryMeta = meta()): void {
  const result = decodeNotification(body, m);
  assert.equal(result.ok, false, 'decoded although it should not');
  if (result.ok) return;
  assert.ok(result.error instanceof DecodeError);
  assert.equal(result.error.reason, reason, result.error.message);
  assert.match(result.error.message, message);
}

describe('the three oslo wire shapes of one message decode to the same facts', () => {
  const flat = flatMessage();
  const shapes: [DecodedNotification['wire'], string][] = [
    ['oslo-v2', v2(flat)],
    ['oslo-v1', JSON.stringify(flat)],
    ['oslo-listener', JSON.stringify(listenerShape(flat))],
  ];
  const results = shapes.map(([wire, body]) => [wire, decoded(body)] as const);

  for (const [wire, n] of results) {
    it(`${wire}: wire, id, time, context and events`, () => {
      assert.equal(n.wire, wire);
      assert.equal(n.source, 'neutron');
      assert.equal(n.eventType, 'floatingip.update.end');
      assert.equal(n.publisher, 'network.net1');
      assert.equal(n.messageId, 'aeb45eda-33b0-4d3b-8b9c-00fed64f5adb');
      assert.equal(n.idKind, 'message-id');
      assert.deepEqual(n.occurredAt, new Date('2016-06-14T19:47:09.158Z'));
      assert.equal(n.occurredAtSource, 'message');
      assert.deepEqual(n.context, { userId: 'u-1', projectId: 'p-1', requestId: 'req-1', userName: 'alice', projectName: 'demo' });
      assert.equal(n.ignored, false);
      assert.deepEqual(n.warnings, []);
    });
  }

  it('all three carry identical events', () => {
    const [first, ...others] = results.map(([, n]) => n.events);
    for (const events of others) assert.deepEqual(events, first);
  });

  it('the listener shape has no priority; the others normalise it to upper case', () => {
    assert.equal(results[2]?.[1].priority, undefined);
    assert.equal(decoded(JSON.stringify(flatMessage({ priority: 'info' }))).priority, 'INFO');
  });

  it('bytes and strings decode alike, and a UTF-8 BOM is ignored', () => {
    const body = v2(flat);
    const bytes = new TextEncoder().encode(`\uFEFF${body}`);
    assert.deepEqual(decoded(bytes), decoded(body));
  });
});

describe('routing by event type', () => {
  const cases: [string, string, DecodedNotification['source']][] = [
    ['router.update.start', 'network.net1', 'neutron'],
    ['port.create.start', 'network.net1', 'neutron'],
    ['floatingip.delete.start', 'network.net1', 'neutron'],
    ['network.create.end', 'network.net1', 'neutron'],
    ['instance.pause.end', 'nova-compute:cmp1', 'nova'],
    ['compute.instance.volume.attach', 'compute.cmp1', 'nova'],
    ['scheduler.select_destinations.end', 'scheduler.ctl1', 'nova'],
    ['identity.project.created', 'identity.keystone1', 'unknown'],
  ];
  for (const [eventType, publisher, source] of cases) {
    it(`${eventType} is well-formed but unused: ignored, source ${source}`, () => {
      const n = decoded(JSON.stringify(flatMessage({ event_type: eventType, publisher_id: publisher, payload: { anything: 1 } })));
      assert.equal(n.ignored, true);
      assert.deepEqual(n.events, []);
      assert.equal(n.source, source);
      assert.equal(n.eventType, eventType);
      assert.equal(n.messageId, 'aeb45eda-33b0-4d3b-8b9c-00fed64f5adb');
    });
  }
});

describe('message id and event time fallbacks', () => {
  it('without message_id, the AMQP message-id property is used', () => {
    const n = decoded(JSON.stringify(flatMessage({ message_id: undefined })), meta({ messageId: 'amqp-id-7' }));
    assert.equal(n.messageId, 'amqp-id-7');
    assert.equal(n.idKind, 'message-id');
  });

  it('without any id, a SHA-256 of the body: stable for equal bodies, different otherwise', () => {
    const body = JSON.stringify(flatMessage({ message_id: undefined }));
    const a = decoded(body);
    assert.equal(a.idKind, 'content-hash');
    assert.match(a.messageId, /^[0-9a-f]{64}$/);
    assert.equal(decoded(body).messageId, a.messageId);
    const other = decoded(JSON.stringify(flatMessage({ message_id: undefined, timestamp: '2016-06-14 19:47:10' })));
    assert.notEqual(other.messageId, a.messageId);
  });

  it('a malformed timestamp is refused, never replaced by the AMQP or receive time', () => {
    const sent = new Date('2016-06-14T19:47:00Z');
    for (const timestamp of ['tuesday', '0000-01-01 00:00:00', '99999-01-01 00:00:00', 'NaN', '2016-02-30 00:00:00']) {
      const r = decodeNotification(JSON.stringify(flatMessage({ timestamp })), meta({ timestamp: sent }));
      assert.equal(r.ok ? 'decoded' : r.error.reason, 'implausible-time', timestamp);
    }
  });

  it('a well-formed time outside the window around the receive time is refused', () => {
    const received = new Date('2026-01-01T00:00:00Z');
    const at = (timestamp: string, limits = {}) =>
      decodeNotification(JSON.stringify(flatMessage({ timestamp })), meta({ receivedAt: received, limits }));
    const reason = (r: ReturnType<typeof at>) => (r.ok ? 'decoded' : r.error.reason);
    assert.equal(reason(at('1970-01-01 00:00:00')), 'implausible-time');
    assert.equal(reason(at('2026-01-03 00:00:00')), 'implausible-time');
    assert.equal(reason(at('2025-12-31 23:00:00')), 'decoded');
    assert.equal(reason(at('2026-01-01 06:00:00')), 'decoded');
    // The window is configurable.
    assert.equal(reason(at('2025-12-01 00:00:00', { maxEventAgeMs: 86_400_000 })), 'implausible-time');
  });

  it('no timestamp at all falls back to the receive time, silently', () => {
    const n = decoded(JSON.stringify(flatMessage({ timestamp: undefined })));
    assert.equal(n.occurredAt, RECEIVED);
    assert.equal(n.occurredAtSource, 'received');
    assert.deepEqual(n.warnings, []);
  });

  it('an invalid AMQP timestamp is refused when it would be the event time, and irrelevant when the message has its own', () => {
    const r = decodeNotification(JSON.stringify(flatMessage({ timestamp: undefined })), meta({ timestamp: new Date(Number.NaN) }));
    assert.equal(r.ok ? 'decoded' : r.error.reason, 'implausible-time');
    const own = decoded(JSON.stringify(flatMessage()), meta({ timestamp: new Date(0) }));
    assert.equal(own.occurredAtSource, 'message');
  });

  it('a timestamp without fraction (microseconds exactly 0) is still the message time', () => {
    const n = decoded(JSON.stringify(flatMessage({ timestamp: '2016-06-14 19:47:09' })));
    assert.deepEqual(n.occurredAt, new Date('2016-06-14T19:47:09Z'));
  });
});

describe('request context mapping', () => {
  it('older Neutron tenant_* keys and oslo user/project keys', () => {
    const n = decoded(
      JSON.stringify(
        flatMessage({
          _context_user_id: undefined,
          _context_project_id: undefined,
          _context_project_name: undefined,
          _context_user: 'u-2',
          _context_tenant_id: 't-2',
          _context_tenant_name: 'tenant-two',
        }),
      ),
    );
    assert.deepEqual(n.context, { userId: 'u-2', projectId: 't-2', requestId: 'req-1', userName: 'alice', projectName: 'tenant-two' });
  });

  it('a context key named __proto__ is a key, not a way to give the request a user or project', () => {
    // JSON.parse makes `_context___proto__` an own key; copied by name it would become the prototype of the context entries.
    const body = JSON.stringify(flatMessage({ _context_user_id: undefined, _context_project_id: undefined })).replace(/^\{/, '{"_context___proto__": {"user_id": "mallory", "project_id": "evil"}, ');
    const n = decoded(body);
    assert.equal(n.context.userId, undefined);
    assert.equal(n.context.projectId, undefined);
    const enveloped = decoded(JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': body }));
    assert.equal(enveloped.context.userId, undefined);
    assert.equal(enveloped.context.projectId, undefined);
  });

  it('non-string context values are ignored rather than trusted', () => {
    const n = decoded(JSON.stringify(flatMessage({ _context_user_id: 42, _context_request_id: ['x'] })));
    assert.equal(n.context.userId, undefined);
    assert.equal(n.context.requestId, undefined);
  });
});

describe('malformed bodies are rejected with a reason code and a useful message', () => {
  const cases: [string, string | Uint8Array, DecodeErrorReason, RegExp][] = [
    ['empty body', '  \n ', 'empty-body', /empty/],
    ['not UTF-8', new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), 'bad-encoding', /UTF-8/],
    ['plain text', 'hello world', 'not-json', /not JSON/],
    ['truncated JSON', '{"event_type": "port.delete.end", "payl', 'not-json', /not JSON/],
    ['a JSON array', '[1, 2]', 'unknown-shape', /array/],
    ['a JSON number', '42', 'unknown-shape', /number/],
    ['a JSON object with no oslo keys', '{"hello": "world"}', 'unknown-shape', /neither an oslo 2\.0 envelope nor an oslo message/],
    ['envelope whose oslo.message is not JSON', JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': '{"event_type": ' }), 'bad-envelope', /oslo\.message is not JSON/],
    ['envelope whose oslo.message is a JSON list', JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': '[]' }), 'bad-envelope', /holds an array/],
    ['envelope whose oslo.message is an object, not a string', JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': {} }), 'bad-envelope', /oslo\.message/],
    ['envelope of an unknown version', JSON.stringify({ 'oslo.version': '3.0', 'oslo.message': '{}' }), 'bad-envelope', /oslo\.version/],
    ['envelope without oslo.message', JSON.stringify({ 'oslo.version': '2.0' }), 'bad-envelope', /oslo\.message/],
    ['message without event_type', v2(flatMessage({ event_type: undefined })), 'bad-envelope', /event_type/],
    ['message with an empty event_type', JSON.stringify(flatMessage({ event_type: '' })), 'bad-envelope', /event_type/],
    ['message without publisher_id', JSON.stringify(flatMessage({ publisher_id: undefined })), 'bad-envelope', /publisher_id/],
    ['message without payload', JSON.stringify(flatMessage({ payload: undefined })), 'bad-envelope', /payload/],
    ['listener shape with a non-object ctxt', JSON.stringify({ ...listenerShape(flatMessage()), ctxt: 'x' }), 'bad-envelope', /ctxt/],
    [
      'routed event whose payload lacks the resource id',
      JSON.stringify(flatMessage({ payload: { floatingip: { floating_ip_address: '203.0.113.7' } } })),
      'bad-payload',
      /floatingip\.update\.end: payload\.floatingip\.id: /,
    ],
    ['routed event whose payload is not an object', JSON.stringify(flatMessage({ payload: 'x' })), 'bad-payload', /payload/],
  ];
  for (const [what, body, reason, message] of cases) {
    it(`${what} → ${reason}`, () => rejects(body, reason, message));
  }

  it('the throwing variant raises the same DecodeError', () => {
    assert.throws(
      () => decodeNotificationOrThrow('hello', meta()),
      (err: unknown) => err instanceof DecodeError && err.reason === 'not-json',
    );
  });
});
