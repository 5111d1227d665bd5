// OpenNebula: the state tables, the body encodings the hook publisher may
// send, and the VM document's NICs, disks, history and times.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DecodedNotification, OneVmEvent } from '../../operator/domain/events.ts';
import {
  VM_HISTORY_ACTIONS,
  VM_LCM_STATES,
  VM_STATES,
  vmHistoryActionCode,
  vmHistoryActionName,
  vmLcmStateCode,
  vmLcmStateName,
  vmStateCode,
  vmStateName,
} from '../../operator/domain/opennebula-states.ts';
import { decodeNotification, type DecodeErrorReason, type DeliveryMeta } from '../../operator/intake/decode/index.ts';

const RECEIVED = new Date('2031-01-01T00:00:00Z');
const PLAIN: DeliveryMeta = { cloud: 'one1', receivedAt: RECEIVED };
const ONE_EXCHANGE: DeliveryMeta = { ...PLAIN, exchange: 'opennebula' };

const T0 = 1_700_000_000;

function leaf(name: string, value: string | number | undefined): string {
  return value === undefined ? '' : `<${name}>${value}</${name}>`;
}

function nicXml(fields: Record<string, string | number>, element = 'NIC'): string {
  return `<${element}>${Object.entries(fields).map(([k, v]) => leaf(k, v)).join('')}</${element}>`;
}

function diskXml(fields: Record<string, string | number>): string {
  return `<DISK>${Object.entries(fields).map(([k, v]) => leaf(k, v)).join('')}</DISK>`;
}

interface HistorySpec {
  seq: number;
  hostname: string;
  action?: number;
  uid?: number;
  gid?: number;
  requestId?: number;
  pstime?: number;
  rstime?: number;
  estime?: number;
  etime?: number;
}

function historyXml(h: HistorySpec): string {
  return [
    '<HISTORY>',
    leaf('OID', 42),
    leaf('SEQ', h.seq),
    leaf('HOSTNAME', h.hostname),
    leaf('STIME', T0 + 10),
    leaf('ETIME', h.etime ?? 0),
    leaf('PSTIME', h.pstime ?? 0),
    leaf('RSTIME', h.rstime ?? 0),
    leaf('ESTIME', h.estime ?? 0),
    leaf('ACTION', h.action ?? 0),
    leaf('UID', h.uid ?? -1),
    leaf('GID', h.gid ?? -1),
    leaf('REQUEST_ID', h.requestId ?? -1),
    '</HISTORY>',
  ].join('');
}

interface VmSpec {
  id?: number;
  name?: string;
  state?: number;
  lcm?: number;
  etime?: number;
  deployId?: string;
  template?: string;
  history?: HistorySpec[];
  omit?: string;
}

function vmXml(spec: VmSpec = {}): string {
  const fields: [string, string | number | undefined][] = [
    ['ID', spec.id ?? 42],
    ['UID', 7],
    ['GID', 3],
    ['UNAME', 'alice'],
    ['GNAME', 'research'],
    ['NAME', spec.name ?? 'web-1'],
    ['STATE', spec.state ?? 3],
    ['LCM_STATE', spec.lcm ?? 3],
    ['PREV_STATE', 3],
    ['PREV_LCM_STATE', 3],
    ['STIME', T0],
    ['ETIME', spec.etime ?? 0],
    ['DEPLOY_ID', spec.deployId ?? 'dom-42'],
  ];
  const scalars = fields
    .filter(([name]) => name !== spec.omit)
    .map(([name, value]) => leaf(name, value))
    .join('\n  ');
  const history = (spec.history ?? []).map(historyXml).join('');
  return `<VM>\n  ${scalars}\n  <TEMPLATE>${spec.template ?? ''}</TEMPLATE>\n  <USER_TEMPLATE/>\n  <HISTORY_RECORDS>${history}</HISTORY_RECORDS>\n</VM>`;
}

function hookXml(vm: string, state = 'ACTIVE', lcm = 'RUNNING', extra = ''): string {
  return `<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>VM</HOOK_OBJECT><STATE>${state}</STATE><LCM_STATE>${lcm}</LCM_STATE><RESOURCE_ID>42</RESOURCE_ID><REMOTE_HOST>kvm-remote</REMOTE_HOST>${extra}${vm}</HOOK_MESSAGE>`;
}

const base64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

function decode(body: string | Uint8Array, meta: DeliveryMeta = PLAIN): DecodedNotification {
  const result = decodeNotification(body, meta);
  if (!result.ok) assert.fail(`${result.error.reason}: ${result.error.message}`);
  return result.notification;
}

function vmEvent(body: string, meta: DeliveryMeta = PLAIN): OneVmEvent {
  const n = decode(body, meta);
  assert.equal(n.events.length, 1);
  const [event] = n.events;
  assert.ok(event?.type === 'one_vm');
  return event;
}

function rejects(body: string | Uint8Array, reason: DecodeErrorReason, message: RegExp, meta: DeliveryMeta = PLAIN): void {
  const result = decodeNotification(body, meta);
  assert.ok(!result.ok, 'decoded although it should not');
  assert.equal(result.error.reason, reason, result.error.message);
  assert.match(result.error.message, message);
}

describe('OpenNebula state, LCM state and history action tables', () => {
  it('STATE has the 12 codes of §7.2 (7 FAILED retired but readable)', () => {
    assert.deepEqual(Object.keys(VM_STATES).map(Number), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    assert.equal(vmStateName(3), 'ACTIVE');
    assert.equal(vmStateName(6), 'DONE');
    assert.equal(vmStateName(8), 'POWEROFF');
    assert.equal(vmStateName(11), 'CLONING_FAILURE');
  });

  it('LCM_STATE covers 0..71 without gaps, with the landmarks of §7.2/§7.3', () => {
    assert.deepEqual(
      Object.keys(VM_LCM_STATES).map(Number),
      Array.from({ length: 72 }, (_, i) => i),
    );
    const landmarks: [number, string][] = [
      [0, 'LCM_INIT'],
      [3, 'RUNNING'],
      [11, 'EPILOG'],
      [12, 'SHUTDOWN'],
      [16, 'UNKNOWN'],
      [23, 'CLEANUP_DELETE'],
      [25, 'HOTPLUG_NIC'],
      [40, 'EPILOG_FAILURE'],
      [57, 'DISK_SNAPSHOT'],
      [59, 'DISK_SNAPSHOT_DELETE'],
      [65, 'HOTPLUG_NIC_POWEROFF'],
      [71, 'RESTORE'],
    ];
    for (const [code, name] of landmarks) {
      assert.equal(vmLcmStateName(code), name);
      assert.equal(vmLcmStateCode(name), code);
    }
  });

  it('every table maps names back to codes exactly (names are unique)', () => {
    const tables: [Record<number, string>, (name: string) => number | undefined][] = [
      [VM_STATES, vmStateCode],
      [VM_LCM_STATES, vmLcmStateCode],
      [VM_HISTORY_ACTIONS, vmHistoryActionCode],
    ];
    for (const [table, codeOf] of tables) {
      const names = Object.values(table);
      assert.equal(new Set(names).size, names.length);
      for (const [code, name] of Object.entries(table)) assert.equal(codeOf(name), Number(code), name);
    }
  });

  it('history actions name who deleted a VM', () => {
    assert.equal(vmHistoryActionName(13), 'delete');
    assert.equal(vmHistoryActionName(27), 'terminate');
    assert.equal(vmHistoryActionName(28), 'terminate-hard');
    assert.equal(vmHistoryActionName(23), 'nic-attach');
    assert.equal(vmHistoryActionName(51), 'nic-update');
    assert.equal(vmHistoryActionName(3), undefined);
  });

  it('unknown codes and names give undefined, and inherited keys are not codes', () => {
    assert.equal(vmStateName(12), undefined);
    assert.equal(vmLcmStateName(72), undefined);
    assert.equal(vmLcmStateName(-1), undefined);
    assert.equal(vmStateCode('active'), undefined);
    assert.equal(vmStateCode('toString'), undefined);
    assert.equal(vmLcmStateCode('constructor'), undefined);
  });
});

describe('body encodings the hook publisher may send', () => {
  const vm = vmXml();
  const hook = hookXml(vm);
  const variants: [string, string, DeliveryMeta, DecodedNotification['wire']][] = [
    ['plain HOOK_MESSAGE', hook, PLAIN, 'opennebula-hook-message'],
    ['HOOK_MESSAGE with an XML declaration and leading whitespace', `\n <?xml version="1.0"?>\n${hook}\n`, PLAIN, 'opennebula-hook-message'],
    ['base64 HOOK_MESSAGE (the ZeroMQ content frame)', base64(hook), PLAIN, 'opennebula-hook-message'],
    ['base64 with surrounding whitespace', `\n  ${base64(hook)}  \n`, PLAIN, 'opennebula-hook-message'],
    ['bare VM ($TEMPLATE decoded)', vm, PLAIN, 'opennebula-vm'],
    ['base64 bare VM ($TEMPLATE as the hook gets it)', base64(vm), PLAIN, 'opennebula-vm'],
    ['plain XML on the opennebula exchange', hook, ONE_EXCHANGE, 'opennebula-hook-message'],
    ['base64 with the x-opennebula-hook header', base64(vm), { ...PLAIN, headers: { 'X-OpenNebula-Hook': 'state' } }, 'opennebula-vm'],
  ];
  for (const [what, body, meta, wire] of variants) {
    it(what, () => {
      const n = decode(body, meta);
      assert.equal(n.source, 'opennebula');
      assert.equal(n.wire, wire);
      assert.equal(n.eventType, 'opennebula.vm.state');
      assert.equal(n.publisher, 'opennebula');
      assert.equal(n.ignored, false);
      assert.deepEqual(n.context, {});
      const [event] = n.events;
      assert.ok(event?.type === 'one_vm');
      assert.equal(event.vm.id, 42);
      assert.equal(event.hook !== undefined, wire === 'opennebula-hook-message');
    });
  }

  it('bytes decode like strings', () => {
    assert.deepEqual(decode(new TextEncoder().encode(hook)), decode(hook));
  });

  it('the AMQP message id is used when present; otherwise one hash for plain and base64 alike', () => {
    const withId = decode(hook, { ...PLAIN, messageId: 'pub-1' });
    assert.equal(withId.messageId, 'pub-1');
    assert.equal(withId.idKind, 'message-id');
    const plain = decode(hook);
    const encoded = decode(`${base64(hook)}\n`);
    assert.equal(plain.idKind, 'content-hash');
    assert.equal(encoded.messageId, plain.messageId);
    assert.notEqual(decode(hookXml(vmXml({ lcm: 12 }), 'ACTIVE', 'SHUTDOWN')).messageId, plain.messageId);
  });

  it("the hook publisher's headers (quarantine-publish): x-message-id and x-published-at", () => {
    const headers = {
      'x-message-id': 'one-42-vm-epilog-abc123',
      'x-published-at': String(T0 + 300),
      'x-opennebula-hook': 'vm-epilog',
      'x-opennebula-vm-id': '42',
    };
    const n = decode(vm, { ...ONE_EXCHANGE, headers });
    assert.equal(n.messageId, 'one-42-vm-epilog-abc123');
    assert.equal(n.idKind, 'message-id');
    assert.deepEqual(n.occurredAt, new Date((T0 + 300) * 1000));
    assert.equal(n.occurredAtSource, 'delivery');
  });

  it('header values may arrive as bytes, keys in any case; the AMQP properties win', () => {
    const headers = { 'X-Message-Id': new TextEncoder().encode('one-42-h-1'), 'X-Published-At': String(T0) };
    assert.equal(decode(vm, { ...PLAIN, headers }).messageId, 'one-42-h-1');
    const at = new Date('2030-06-01T12:00:00Z');
    const n = decode(vm, { ...PLAIN, headers, messageId: 'amqp-1', timestamp: at });
    assert.equal(n.messageId, 'amqp-1');
    assert.deepEqual(n.occurredAt, at);
  });

  it('a garbled x-published-at is a warning and falls through to history or receive time', () => {
    const n = decode(vm, { ...PLAIN, headers: { 'x-published-at': 'later' } });
    assert.equal(n.occurredAtSource, 'received');
    assert.match(n.warnings.join(), /x-published-at header: /);
  });

  it('the AMQP timestamp is the event time when present', () => {
    const at = new Date('2030-06-01T12:00:00Z');
    const n = decode(hook, { ...PLAIN, timestamp: at });
    assert.deepEqual(n.occurredAt, at);
    assert.equal(n.occurredAtSource, 'delivery');
  });
});

describe('the VM document', () => {
  it('owner, group, states and the hook names', () => {
    const e = vmEvent(hookXml(vmXml({ lcm: 12 }), 'ACTIVE', 'SHUTDOWN'));
    assert.deepEqual([e.vm.uid, e.vm.uname, e.vm.gid, e.vm.gname], [7, 'alice', 3, 'research']);
    assert.deepEqual(e.vm.state, { code: 3, name: 'ACTIVE' });
    assert.deepEqual(e.vm.lcmState, { code: 12, name: 'SHUTDOWN' });
    assert.deepEqual(e.hook, { type: 'STATE', state: 'ACTIVE', lcmState: 'SHUTDOWN', resourceId: 42, remoteHost: 'kvm-remote' });
    assert.deepEqual(e.vm.stime, new Date(T0 * 1000));
    assert.equal(e.vm.deployId, 'dom-42');
  });

  it('entities in names are decoded', () => {
    assert.equal(vmEvent(vmXml({ name: 'a &amp; b &lt;prod&gt;' })).vm.name, 'a & b <prod>');
  });

  it('NICs and NIC aliases, IPv4 and IPv6', () => {
    const template = [
      nicXml({ NIC_ID: 0, IP: '192.0.2.10', MAC: '02:00:c0:00:02:0a', NETWORK: 'public', NETWORK_ID: 5, TARGET: 'one-42-0' }),
      nicXml({ NIC_ID: 1, IP6: '2001:db8::1', IP6_GLOBAL: '2001:db8::a', IP6_ULA: 'fd00::a', MAC: '02:00:00:00:00:01', NETWORK: 'v6', NETWORK_ID: 6 }),
      nicXml({ NIC_ID: 2, PARENT_ID: 0, IP: '192.0.2.11', NETWORK: 'public', NETWORK_ID: 5 }, 'NIC_ALIAS'),
    ].join('');
    const e = vmEvent(vmXml({ template }));
    assert.deepEqual(e.vm.nics, [
      { nicId: 0, ip: '192.0.2.10', mac: '02:00:c0:00:02:0a', network: 'public', networkId: 5, target: 'one-42-0', alias: false },
      { nicId: 1, ip6: '2001:db8::1', ip6Global: '2001:db8::a', ip6Ula: 'fd00::a', mac: '02:00:00:00:00:01', network: 'v6', networkId: 6, alias: false },
      { nicId: 2, ip: '192.0.2.11', network: 'public', networkId: 5, alias: true, parentNicId: 0 },
    ]);
  });

  it('disks: non-persistent clone, persistent image, volatile disk, CEPH_TRASH', () => {
    const template = [
      diskXml({ DISK_ID: 0, IMAGE_ID: 3, IMAGE: 'ubuntu', SOURCE: 'one/one-3', POOL_NAME: 'one', CLONE: 'YES', SAVE: 'NO', TM_MAD: 'ceph', DATASTORE_ID: 1, SIZE: 10240, TYPE: 'RBD', CEPH_TRASH: 'yes' }),
      diskXml({ DISK_ID: 1, IMAGE_ID: 9, IMAGE: 'data', SOURCE: 'one/one-9', POOL_NAME: 'one', CLONE: 'NO', PERSISTENT: 'YES', TM_MAD: 'ceph', DATASTORE_ID: 1 }),
      diskXml({ DISK_ID: 2, TYPE: 'fs', SIZE: 1024, TM_MAD: 'ceph' }),
    ].join('');
    assert.deepEqual(vmEvent(vmXml({ template })).vm.disks, [
      { diskId: 0, imageId: 3, image: 'ubuntu', source: 'one/one-3', poolName: 'one', clone: true, persistent: false, tmMad: 'ceph', datastoreId: 1, cephTrash: true, size: 10240, type: 'RBD' },
      { diskId: 1, imageId: 9, image: 'data', source: 'one/one-9', poolName: 'one', clone: false, persistent: true, tmMad: 'ceph', datastoreId: 1 },
      { diskId: 2, tmMad: 'ceph', size: 1024, type: 'fs' },
    ]);
  });

  it('the current host and the last action come from the history record with the highest SEQ', () => {
    const e = vmEvent(
      hookXml(
        vmXml({
          lcm: 11,
          history: [
            { seq: 1, hostname: 'kvm-b', action: 27, uid: 7, gid: 3, requestId: 4711 },
            { seq: 0, hostname: 'kvm-a', action: 1, uid: 0, gid: 0 },
          ],
        }),
        'ACTIVE',
        'EPILOG',
      ),
    );
    assert.equal(e.vm.host, 'kvm-b');
    assert.deepEqual(e.vm.historyAction, { code: 27, name: 'terminate', uid: 7, gid: 3, requestId: 4711 });
  });

  it('without history the host is the hook REMOTE_HOST, and oned (-1) is no actor', () => {
    const e = vmEvent(hookXml(vmXml()));
    assert.equal(e.vm.host, 'kvm-remote');
    assert.equal(e.vm.historyAction, undefined);
    const acted = vmEvent(vmXml({ history: [{ seq: 0, hostname: 'kvm-a', action: 19 }] }));
    assert.deepEqual(acted.vm.historyAction, { code: 19, name: 'poweroff' });
  });

  it('a bare VM without history has no host at all', () => {
    assert.equal(vmEvent(vmXml()).vm.host, undefined);
  });
});

describe('event time from the history, when the message has none', () => {
  const cases: [string, VmSpec, number | undefined][] = [
    ['EPILOG: epilog start', { lcm: 11, history: [{ seq: 0, hostname: 'h', rstime: T0 + 20, estime: T0 + 99 }] }, T0 + 99],
    ['EPILOG not yet stamped (0): receive time', { lcm: 11, history: [{ seq: 0, hostname: 'h', rstime: T0 + 20 }] }, undefined],
    ['PROLOG: prolog start', { lcm: 1, history: [{ seq: 0, hostname: 'h', pstime: T0 + 11 }] }, T0 + 11],
    ['RUNNING: running section start', { lcm: 3, history: [{ seq: 0, hostname: 'h', rstime: T0 + 20 }] }, T0 + 20],
    ['DONE: the VM end time', { state: 6, lcm: 0, etime: T0 + 500, history: [{ seq: 0, hostname: 'h', etime: T0 + 400 }] }, T0 + 500],
    ['SHUTDOWN: no matching history time', { lcm: 12, history: [{ seq: 0, hostname: 'h', rstime: T0 + 20 }] }, undefined],
    ['EPILOG_FAILURE: no matching history time', { lcm: 40, history: [{ seq: 0, hostname: 'h', estime: T0 + 99 }] }, undefined],
    ['PENDING at creation: STIME', { state: 1, lcm: 0 }, T0],
  ];
  for (const [what, spec, seconds] of cases) {
    it(what, () => {
      const n = decode(vmXml(spec));
      if (seconds === undefined) {
        assert.equal(n.occurredAtSource, 'received');
        assert.equal(n.occurredAt, RECEIVED);
      } else {
        assert.equal(n.occurredAtSource, 'history');
        assert.deepEqual(n.occurredAt, new Date(seconds * 1000));
      }
    });
  }

  it('DONE carries its end time on the VM', () => {
    assert.deepEqual(vmEvent(vmXml({ state: 6, lcm: 0, etime: T0 + 500 })).vm.etime, new Date((T0 + 500) * 1000));
  });
});

describe('oddities become warnings, not rejections', () => {
  it('a state code newer than the tables', () => {
    const n = decode(vmXml({ lcm: 99 }));
    const [event] = n.events;
    assert.ok(event?.type === 'one_vm');
    assert.deepEqual(event.vm.lcmState, { code: 99 });
    assert.match(n.warnings.join(), /VM\.LCM_STATE: unknown code 99/);
  });

  it('hook names that disagree with the VM codes', () => {
    const n = decode(hookXml(vmXml({ lcm: 3 }), 'ACTIVE', 'EPILOG'));
    assert.match(n.warnings.join(), /LCM_STATE EPILOG disagrees with VM\.LCM_STATE 3/);
  });

  it('a RESOURCE_ID that is not the VM id', () => {
    const n = decode(hookXml(vmXml({ id: 43 })));
    assert.match(n.warnings.join(), /RESOURCE_ID 42 disagrees with VM\.ID 43/);
  });
});

describe('hook messages we do not use are ignored', () => {
  it('API hooks', () => {
    const n = decode('<HOOK_MESSAGE><HOOK_TYPE>API</HOOK_TYPE><CALL>one.vm.action</CALL><CALL_INFO><RESULT>1</RESULT></CALL_INFO></HOOK_MESSAGE>');
    assert.equal(n.ignored, true);
    assert.equal(n.eventType, 'opennebula.api');
    assert.deepEqual(n.events, []);
  });

  it('state hooks on hosts and images', () => {
    const n = decode('<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>HOST</HOOK_OBJECT><STATE>ERROR</STATE><HOST><ID>1</ID></HOST></HOOK_MESSAGE>');
    assert.equal(n.ignored, true);
    assert.equal(n.eventType, 'opennebula.host.state');
  });
});

describe('malformed OpenNebula bodies', () => {
  const hook = hookXml(vmXml());
  const cases: [string, string | Uint8Array, DeliveryMeta, DecodeErrorReason, RegExp][] = [
    ['XML truncated between elements', hook.slice(0, hook.indexOf('</VM>')), PLAIN, 'bad-xml', /<VM> is not closed/],
    ['XML truncated inside an end tag', hook.slice(0, hook.length - 30), PLAIN, 'bad-xml', /unexpected end of input inside <\/HISTORY>/],
    ['truncated base64 XML (still valid base64)', base64(hook.slice(0, 200)), PLAIN, 'bad-xml', /OpenNebula XML: /],
    ['mismatched tags', '<VM><ID>1</NAME></VM>', PLAIN, 'bad-xml', /does not match/],
    ['bad base64 on the opennebula exchange', 'PEhPT0tf@@@', ONE_EXCHANGE, 'bad-base64', /neither XML nor strict base64/],
    ['base64 missing its padding', base64(hook).replace(/=+$/, ''), ONE_EXCHANGE, 'bad-base64', /base64/],
    ['base64 of something that is not XML', base64('{"not": "xml"}'), ONE_EXCHANGE, 'bad-xml', /not an XML document/],
    ['base64 of bytes that are not UTF-8', Buffer.from([0x3c, 0xff, 0xfe]).toString('base64'), ONE_EXCHANGE, 'bad-encoding', /UTF-8/],
    ['JSON on the opennebula exchange', '{"event_type": "x"}', ONE_EXCHANGE, 'bad-base64', /neither XML nor strict base64/],
    ['garbage outside an OpenNebula delivery', 'PEhPT0tf@@@', PLAIN, 'not-json', /not JSON/],
    ['an unknown root element', '<HOST><ID>1</ID></HOST>', PLAIN, 'unknown-shape', /<HOST>, expected <HOOK_MESSAGE> or <VM>/],
    ['a VM without ID', vmXml({ omit: 'ID' }), PLAIN, 'bad-payload', /VM\.ID: /],
    ['a VM without UNAME', hookXml(vmXml({ omit: 'UNAME' })), PLAIN, 'bad-payload', /VM\.UNAME: /],
    ['a non-numeric STATE', vmXml().replace('<STATE>3</STATE>', '<STATE>ACTIVE</STATE>'), PLAIN, 'bad-payload', /VM\.STATE: expected an integer/],
    ['a NIC without NIC_ID', vmXml({ template: nicXml({ IP: '192.0.2.1' }) }), PLAIN, 'bad-payload', /VM\.TEMPLATE\.NIC\[0\]\.NIC_ID/],
    ['a disk with CLONE=MAYBE', vmXml({ template: diskXml({ DISK_ID: 0, CLONE: 'MAYBE' }) }), PLAIN, 'bad-payload', /VM\.TEMPLATE\.DISK\[0\]\.CLONE: expected YES or NO/],
    ['a history record with a bad SEQ', vmXml().replace('<HISTORY_RECORDS></HISTORY_RECORDS>', '<HISTORY_RECORDS><HISTORY><SEQ>x</SEQ></HISTORY></HISTORY_RECORDS>'), PLAIN, 'bad-payload', /HISTORY\[0\]\.SEQ/],
    ['a hook message without HOOK_TYPE', '<HOOK_MESSAGE><HOOK_OBJECT>VM</HOOK_OBJECT></HOOK_MESSAGE>', PLAIN, 'bad-payload', /HOOK_TYPE: Required/],
    ['a VM state hook without the VM', '<HOOK_MESSAGE><HOOK_TYPE>STATE</HOOK_TYPE><HOOK_OBJECT>VM</HOOK_OBJECT><STATE>ACTIVE</STATE></HOOK_MESSAGE>', PLAIN, 'bad-payload', /HOOK_MESSAGE\.VM: Required/],
    ['a non-numeric RESOURCE_ID', hookXml(vmXml()).replace('<RESOURCE_ID>42</RESOURCE_ID>', '<RESOURCE_ID>x</RESOURCE_ID>'), PLAIN, 'bad-payload', /RESOURCE_ID: expected an integer/],
  ];
  for (const [what, body, meta, reason, message] of cases) {
    it(`${what} → ${reason}`, () => rejects(body, reason, message, meta));
  }
});
