import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../operator/log.ts';
import { FakeClock } from '../../operator/kube/runtime/clock.ts';
import { EventRecorder } from '../../operator/kube/runtime/events.ts';
import { ApiError, MemoryEventSink, mergePatch } from '../../operator/kube/runtime/fakes.ts';
import type { KubeObject } from '../../operator/kube/runtime/informer.ts';
import { mergeConditions, statusPatch } from '../../operator/kube/runtime/status.ts';

const t0 = new Date('2026-05-01T10:00:00.123Z');
const t1 = new Date('2026-05-01T11:00:00Z');

test('a condition rewritten with the same status keeps its lastTransitionTime; a changed status moves it', () => {
  const first = mergeConditions(undefined, [{ type: 'Connected', status: 'True', reason: 'Consuming', message: 'ok' }], t0, 1);
  assert.deepEqual(first, [{ type: 'Connected', status: 'True', reason: 'Consuming', message: 'ok', lastTransitionTime: '2026-05-01T10:00:00Z', observedGeneration: 1 }]);

  const same = mergeConditions(first, [{ type: 'Connected', status: 'True', reason: 'StillConsuming', message: 'fine' }], t1, 2);
  assert.equal(same[0]?.lastTransitionTime, '2026-05-01T10:00:00Z');
  assert.equal(same[0]?.reason, 'StillConsuming');
  assert.equal(same[0]?.observedGeneration, 2);

  const changed = mergeConditions(same, [{ type: 'Connected', status: 'False', reason: 'AmqpDown' }], t1, 2);
  assert.equal(changed[0]?.lastTransitionTime, '2026-05-01T11:00:00Z');
  assert.equal(changed[0]?.message, '');
});

test('conditions of other types stay in place and new ones are appended', () => {
  const start = mergeConditions(undefined, [
    { type: 'Connected', status: 'True', reason: 'A' },
    { type: 'TrashArmed', status: 'False', reason: 'B' },
  ], t0);
  const next = mergeConditions(start, [{ type: 'Consuming', status: 'True', reason: 'C' }, { type: 'Connected', status: 'False', reason: 'D' }], t1);
  assert.deepEqual(next.map((c) => `${c.type}=${c.status}`), ['Connected=False', 'TrashArmed=False', 'Consuming=True']);
});

test('statusPatch sends observedGeneration with the fields, and nothing when the status is already so', () => {
  const obj: KubeObject = { metadata: { name: 'p', generation: 3 }, status: { quarantinedCount: 5 } };
  const patch = statusPatch(obj, { fields: { quarantinedCount: 6 } }, t0);
  assert.deepEqual(patch, { status: { quarantinedCount: 6, observedGeneration: 3 } });

  const applied: KubeObject = { ...obj, status: mergePatch(obj['status'], patch!.status) };
  assert.equal(statusPatch(applied, { fields: { quarantinedCount: 6 } }, t1), undefined);

  const withCondition = statusPatch(applied, { conditions: [{ type: 'Ready', status: 'True', reason: 'Swept' }] }, t0)!;
  const again: KubeObject = { ...applied, status: mergePatch(applied['status'], withCondition.status) };
  assert.equal(statusPatch(again, { conditions: [{ type: 'Ready', status: 'True', reason: 'Swept' }] }, t1), undefined, 'a later clock alone changes nothing');

  assert.deepEqual(statusPatch(again, { fields: { lastSweep: null } }, t1), undefined, 'removing an absent field is no change');
  assert.deepEqual(statusPatch(again, { fields: { quarantinedCount: null } }, t1), { status: { quarantinedCount: null, observedGeneration: 3 } });
});

function recorder(clock: FakeClock, sink: MemoryEventSink, clusterScopedNamespace?: string): EventRecorder {
  return new EventRecorder({ sink, clock, log: silentLogger, instance: 'quarantine-operator-0', ...(clusterScopedNamespace ? { clusterScopedNamespace } : {}) });
}

const hold: KubeObject = { apiVersion: 'quarantine.forensics.dev/v1alpha1', kind: 'QuarantineHold', metadata: { name: 'h1', namespace: 'cases', uid: 'u1' } };
const cloud: KubeObject = { apiVersion: 'quarantine.forensics.dev/v1alpha1', kind: 'Cloud', metadata: { name: 'cern', uid: 'u2' } };

test('events go to the object’s namespace; for cluster-scoped objects to `default` unless told otherwise', async () => {
  const clock = new FakeClock();
  const sink = new MemoryEventSink();
  await recorder(clock, sink).record(hold, 'Normal', 'Held', 'holding 3');
  await recorder(clock, sink).record(cloud, 'Warning', 'AmqpDown', 'connection refused');
  await recorder(clock, sink, 'elsewhere').record(cloud, 'Warning', 'AmqpDown', 'connection refused');
  const events = sink.list();
  assert.deepEqual(events.map((e) => e.metadata.namespace), ['cases', 'default', 'elsewhere']);
  const e = events[0]!;
  assert.deepEqual(e.involvedObject, { apiVersion: 'quarantine.forensics.dev/v1alpha1', kind: 'QuarantineHold', name: 'h1', namespace: 'cases', uid: 'u1', resourceVersion: undefined });
  assert.equal(e.reportingComponent, 'quarantine-operator');
  assert.equal(e.reportingInstance, 'quarantine-operator-0');
  assert.equal(e.count, 1);
  assert.match(e.metadata.name, /^h1\.[0-9a-f]+$/);
});

test('a repeated event within the window bumps the count; after the window it is a new Event', async () => {
  const clock = new FakeClock();
  const sink = new MemoryEventSink();
  const r = recorder(clock, sink);
  await r.record(hold, 'Warning', 'CephBusy', 'ceph is busy');
  await clock.advance(5_000);
  await r.record(hold, 'Warning', 'CephBusy', 'ceph is busy');
  await r.record(hold, 'Warning', 'Other', 'something else');
  assert.deepEqual(sink.list().map((e) => `${e.reason}x${e.count}`), ['CephBusyx2', 'Otherx1']);
  assert.equal(sink.list()[0]?.lastTimestamp, '2026-01-01T00:00:05Z');
  await clock.advance(600_000);
  await r.record(hold, 'Warning', 'CephBusy', 'ceph is busy');
  assert.deepEqual(sink.list().map((e) => `${e.reason}x${e.count}`), ['CephBusyx2', 'Otherx1', 'CephBusyx1']);
});

test('an aggregated Event that has expired is created again, and a failing sink never throws', async () => {
  const clock = new FakeClock();
  const sink = new MemoryEventSink();
  const r = recorder(clock, sink);
  await r.record(hold, 'Normal', 'Held', 'holding');
  sink.events.clear();
  await r.record(hold, 'Normal', 'Held', 'holding');
  assert.equal(sink.list().length, 1);

  const broken = new MemoryEventSink();
  broken.create = () => Promise.reject(new ApiError(403, 'forbidden'));
  await recorder(clock, broken).record(hold, 'Normal', 'Held', 'holding');
});
