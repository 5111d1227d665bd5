import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cloud } from '../../operator/resources/cloud.ts';
import { ResourceParseError } from '../../operator/resources/common.ts';
import { RESOURCES } from '../../operator/resources/crd.ts';
import { parseQuarantineHold } from '../../operator/resources/hold.ts';
import { parseDuration, parseQuarantinePolicy } from '../../operator/resources/policy.ts';
import { parseQuarantineRestore } from '../../operator/resources/restore.ts';

const apiVersion = 'quarantine.forensics.dev/v1alpha1';

function policy(spec: object) {
  return { apiVersion, kind: 'QuarantinePolicy', metadata: { name: 'default' }, spec };
}
function hold(spec: object) {
  return { apiVersion, kind: 'QuarantineHold', metadata: { name: 'h1', namespace: 'cases' }, spec };
}
function restore(spec: object) {
  return { apiVersion, kind: 'QuarantineRestore', metadata: { name: 'r1', namespace: 'cases' }, spec };
}

function rejects(fn: () => unknown, message: RegExp, path: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ResourceParseError, String(err));
    assert.match(err.message, message);
    assert.equal(err.path, path);
    return true;
  });
}

test('a minimal QuarantinePolicy gets every default', () => {
  const p = parseQuarantinePolicy(policy({ retention: { duration: '30d' } }));
  assert.deepEqual(p.spec, {
    selector: {},
    capture: { mode: 'trash', disks: { root: true, ephemeral: true, volumes: false }, flatten: false, isolate: true, releaseResources: false },
    retention: { duration: '30d' },
    sweep: { schedule: '0 * * * *', timeZone: 'UTC', dryRun: false },
  });
});

test('policy errors name the object and the field', () => {
  const cases: Array<[object, RegExp, string]> = [
    [{ retention: { duration: '30 days' } }, /QuarantinePolicy default: spec\.retention\.duration: must be a duration like 720h/, 'spec.retention.duration'],
    [{ retention: { duration: '0h0m' } }, /spec\.retention\.duration: must be longer than zero/, 'spec.retention.duration'],
    [{ retention: {} }, /spec\.retention\.duration/, 'spec.retention.duration'],
    [{ retention: { duration: '1h' }, capture: { mode: 'snapshot' } }, /spec\.capture\.mode: /, 'spec.capture.mode'],
    [{ retention: { duration: '1h' }, sweep: { schedule: 'hourly' } }, /spec\.sweep\.schedule: must be a five-field cron expression/, 'spec.sweep.schedule'],
    [{ retention: { duration: '1h' }, sweep: { timeZone: 'Mars/Olympus' } }, /spec\.sweep\.timeZone: must be an IANA time zone/, 'spec.sweep.timeZone'],
    [{ retention: { duration: '1h' }, capacity: { onFull: 'evictOldest' } }, /spec\.capacity: capacity needs maxBytes or maxCount/, 'spec.capacity'],
  ];
  for (const [spec, message, path] of cases) rejects(() => parseQuarantinePolicy(policy(spec)), message, path);
});

test('durations: units w d h m s, combined, days are 24 h', () => {
  assert.equal(parseDuration('720h'), 30 * 86_400_000);
  assert.equal(parseDuration('30d'), 30 * 86_400_000);
  assert.equal(parseDuration('1w1d12h30m15s'), 8 * 86_400_000 + 12 * 3_600_000 + 30 * 60_000 + 15_000);
  for (const bad of ['', '30', 'd', '1.5h', '-1h', '1H', '1h ']) assert.throws(() => parseDuration(bad), /is not a duration/, bad);
});

test('a QuarantineHold needs at least one selector field; address windows are checked', () => {
  const ok = parseQuarantineHold(hold({ selector: { addresses: [{ address: '188.185.194.218', from: '2026-04-01T18:00:00+02:00' }] }, reason: 'incident', caseId: 'CERT-1' }));
  assert.equal(ok.spec.selector.addresses?.[0]?.address, '188.185.194.218');
  rejects(() => parseQuarantineHold(hold({ selector: {}, reason: 'r', caseId: 'c' })), /QuarantineHold cases\/h1: spec\.selector: selector needs at least one of clouds, instances/, 'spec.selector');
  rejects(() => parseQuarantineHold(hold({ selector: { users: [] }, reason: 'r', caseId: 'c' })), /spec\.selector\.users/, 'spec.selector.users');
  rejects(() => parseQuarantineHold(hold({ selector: { users: ['u'] }, caseId: 'c' })), /spec\.reason/, 'spec.reason');
  rejects(
    () => parseQuarantineHold(hold({ selector: { addresses: [{ address: '10.0.0.300' }] }, reason: 'r', caseId: 'c' })),
    /spec\.selector\.addresses\.0\.address: must be an IPv4 or IPv6 address/,
    'spec.selector.addresses.0.address',
  );
  rejects(
    () => parseQuarantineHold(hold({ selector: { addresses: [{ address: '2001:db8::1', from: '2026-02-01T00:00:00Z', to: '2026-01-01T00:00:00Z' }] }, reason: 'r', caseId: 'c' })),
    /from must be before to/,
    'spec.selector.addresses.0.to',
  );
});

test('a QuarantineRestore takes exactly one of target and export; target is read-only by default', () => {
  const t = parseQuarantineRestore(restore({ quarantineId: 'q-1', target: { pool: 'forensics', image: 'case-1-disk' }, reason: 'r', caseId: 'c' }));
  assert.equal(t.spec.target?.readOnly, true);
  const e = parseQuarantineRestore(restore({ quarantineId: 'q-1', export: { path: '/exports/case-1.raw' }, reason: 'r', caseId: 'c' }));
  assert.equal(e.spec.export?.format, 'raw');
  rejects(
    () => parseQuarantineRestore(restore({ quarantineId: 'q-1', target: { pool: 'p', image: 'i' }, export: { path: '/x' }, reason: 'r', caseId: 'c' })),
    /spec: exactly one of target or export must be set/,
    'spec',
  );
  rejects(() => parseQuarantineRestore(restore({ quarantineId: 'q-1', reason: 'r', caseId: 'c' })), /exactly one of target or export/, 'spec');
  rejects(() => parseQuarantineRestore(restore({ quarantineId: 'q-1', export: { path: '/exports/../etc/passwd' }, reason: 'r', caseId: 'c' })), /absolute path without \.\./, 'spec.export.path');
  rejects(() => parseQuarantineRestore(restore({ quarantineId: 'q-1', export: { path: '/x', format: 'qcow2' }, reason: 'r', caseId: 'c' })), /spec\.export\.format/, 'spec.export.format');
});

test('Cloud parses as before, and takes the status the operator writes', () => {
  const body = {
    apiVersion,
    kind: 'Cloud',
    metadata: { name: 'cern' },
    spec: { type: 'openstack', amqp: { urlSecretRef: { name: 'amqp', key: 'url' } } },
  };
  const c = Cloud.parse(body);
  assert.equal(c.spec.amqp.prefetch, undefined);
  assert.deepEqual(c.spec.amqp.topics, ['notifications', 'versioned_notifications']);
  assert.equal(c.status, undefined);
  const withStatus = Cloud.parse({
    ...body,
    status: {
      observedGeneration: 2,
      lastEventAt: '2026-04-01T18:13:16+02:00',
      counts: { notifications: 10 },
      conditions: [{ type: 'Connected', status: 'True', reason: 'Consuming', lastTransitionTime: '2026-04-01T16:00:00Z' }],
    },
  });
  assert.equal(withStatus.status?.conditions?.[0]?.type, 'Connected');
});

test('each kind’s parse applies that kind’s schema', () => {
  for (const def of RESOURCES) {
    assert.throws(() => def.parse({ apiVersion, kind: def.kind, metadata: { name: 'x' }, spec: {} }), ResourceParseError, def.kind);
  }
});

test('Cloud: isolation concurrency defaults to 2, is taken from spec.ceph.isolation, and must be 1..32', () => {
  const body = (isolation?: unknown) => ({
    apiVersion,
    kind: 'Cloud',
    metadata: { name: 'cern' },
    spec: { type: 'openstack', amqp: { urlSecretRef: { name: 'amqp', key: 'url' } }, ceph: { quarantine: { pool: 'quarantine' }, ...(isolation === undefined ? {} : { isolation }) } },
  });
  assert.equal(Cloud.parse(body()).spec.ceph?.isolation.concurrency, 2);
  assert.equal(Cloud.parse(body({ concurrency: 6 })).spec.ceph?.isolation.concurrency, 6);
  for (const concurrency of [0, 33, 1.5, '4']) assert.equal(Cloud.safeParse(body({ concurrency })).success, false, String(concurrency));
});
