import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../operator/log.ts';
import { FakeClock, settle } from '../../operator/kube/runtime/clock.ts';
import { type Controller, ControllerRunner, RECONCILED, type ReconcileContext, type ReconcileResult } from '../../operator/kube/runtime/controller.ts';
import { PermanentError, TemporaryError } from '../../operator/kube/runtime/errors.ts';
import { EventRecorder } from '../../operator/kube/runtime/events.ts';
import { MemoryEventSink, MemoryObjectClient } from '../../operator/kube/runtime/fakes.ts';
import type { KubeObject } from '../../operator/kube/runtime/informer.ts';
import { findCondition } from '../../operator/kube/runtime/status.ts';
import type { QuarantineHold } from '../../operator/resources/hold.ts';

const FINALIZER = 'quarantine.forensics.dev/hold';

function hold(name: string, spec: object = { selector: { instances: ['vm-1'] }, reason: 'incident 42', caseId: 'CASE-42' }): KubeObject {
  return { apiVersion: 'quarantine.forensics.dev/v1alpha1', kind: 'QuarantineHold', metadata: { name, namespace: 'cases' }, spec };
}

type Reconcile = (obj: QuarantineHold, ctx: ReconcileContext) => Promise<ReconcileResult | void>;

function setup(reconcile: Reconcile, extra: Partial<Controller<QuarantineHold>> = {}) {
  const clock = new FakeClock('2026-03-01T12:00:00Z');
  const api = new MemoryObjectClient(() => clock.now());
  const sink = new MemoryEventSink();
  const runs: string[] = [];
  const controller: Controller<QuarantineHold> = {
    kind: 'QuarantineHold',
    reconcile: async (obj, ctx) => {
      runs.push(`${obj.metadata.name}@${(clock.now().getTime() - Date.parse('2026-03-01T12:00:00Z')) / 1000}`);
      return reconcile(obj, ctx);
    },
    ...extra,
  };
  const runner = new ControllerRunner(controller, {
    client: api,
    events: new EventRecorder({ sink, clock, log: silentLogger, instance: 'pod-a' }),
    clock,
    log: silentLogger,
    backoff: { baseMs: 1_000, maxMs: 60_000 },
    resyncMs: 0,
  });
  return { clock, api, sink, runs, runner };
}

test('reconcile gets the parsed object; status carries observedGeneration, conditions and Reconciled; own writes do not wake it', async () => {
  const { api, sink, runs, runner } = setup(async (obj, ctx) => {
    assert.equal(obj.spec.caseId, 'CASE-42');
    await ctx.status({ fields: { matchedCount: 3 }, conditions: [{ type: 'Active', status: 'True', reason: 'Matching', message: '3 quarantines held' }] });
    await ctx.event('Normal', 'Held', 'holding 3 quarantines');
  });
  api.create(hold('h1'));
  await runner.start();
  await runner.idle();
  await settle();
  await runner.idle();

  const stored = api.peek('cases/h1');
  const status = stored?.['status'] as { matchedCount: number; observedGeneration: number };
  assert.equal(status.matchedCount, 3);
  assert.equal(status.observedGeneration, 1);
  assert.equal(findCondition(stored!, 'Active')?.status, 'True');
  assert.equal(findCondition(stored!, RECONCILED)?.status, 'True');
  assert.equal(findCondition(stored!, RECONCILED)?.observedGeneration, 1);
  assert.deepEqual(runs, ['h1@0'], 'status writes are watch events, but not reasons to reconcile');
  const events = sink.list();
  assert.equal(events.length, 1);
  assert.equal(events[0]?.reason, 'Held');
  assert.equal(events[0]?.metadata.namespace, 'cases');
  assert.equal(events[0]?.involvedObject.uid, stored?.metadata.uid);
  await runner.stop();
});

test('a spec change reconciles again; a second identical status write is not sent', async () => {
  const { api, runs, runner } = setup(async (_obj, ctx) => {
    await ctx.status({ fields: { matchedCount: 1 } });
  });
  api.create(hold('h1'));
  await runner.start();
  await runner.idle();
  const patchesBefore = api.calls.filter((c) => c === 'patchStatus').length;
  api.updateSpec('cases/h1', { selector: { users: ['alice'] }, reason: 'r', caseId: 'CASE-43' });
  await settle();
  await runner.idle();
  assert.equal(runs.length, 2);
  const patchesAfter = api.calls.filter((c) => c === 'patchStatus').length;
  assert.equal(patchesAfter - patchesBefore, 2, "the controller's write and the Reconciled condition, both for generation 2");
  assert.equal((api.peek('cases/h1')?.['status'] as { observedGeneration: number }).observedGeneration, 2);

  runner.enqueue('cases/h1');
  await settle();
  await runner.idle();
  assert.equal(runs.length, 3);
  assert.equal(api.calls.filter((c) => c === 'patchStatus').length, patchesAfter, 'nothing changed, nothing sent');
  await runner.stop();
});

test('a TemporaryError retries with exponential backoff, its delay as the floor, until it succeeds', async () => {
  let failures = 3;
  const { clock, api, sink, runs, runner } = setup(async () => {
    if (failures-- > 0) throw new TemporaryError('ceph is busy', 3_000, { reason: 'CephBusy' });
  });
  api.create(hold('h1'));
  await runner.start();
  await runner.idle();
  assert.deepEqual(runs, ['h1@0']);
  const afterFirst = api.peek('cases/h1')!;
  assert.equal(findCondition(afterFirst, RECONCILED)?.status, 'False');
  assert.equal(findCondition(afterFirst, RECONCILED)?.reason, 'CephBusy');
  assert.equal(findCondition(afterFirst, RECONCILED)?.message, 'ceph is busy');
  assert.equal(runner.failing, 1, 'a retrying resource counts as drift');

  await clock.advance(2_999);
  assert.equal(runs.length, 1);
  await clock.advance(1);
  assert.deepEqual(runs, ['h1@0', 'h1@3']);
  await clock.advance(3_000);
  assert.deepEqual(runs, ['h1@0', 'h1@3', 'h1@6'], 'second backoff 2 s is below the 3 s floor');
  await clock.advance(3_999);
  assert.equal(runs.length, 3);
  await clock.advance(1);
  assert.deepEqual(runs, ['h1@0', 'h1@3', 'h1@6', 'h1@10'], 'third backoff is 4 s');
  await runner.idle();

  const done = api.peek('cases/h1')!;
  assert.equal(findCondition(done, RECONCILED)?.status, 'True');
  assert.equal(runner.failing, 0);
  const warnings = sink.list().filter((e) => e.type === 'Warning');
  assert.equal(warnings.length, 1, 'repeats of one warning are one Event');
  assert.equal(warnings[0]?.count, 3);
  await clock.advance(600_000);
  assert.equal(runs.length, 4, 'nothing more once it succeeded');
  await runner.stop();
});

test('any other error is retried too, from the base backoff', async () => {
  let failures = 1;
  const { clock, api, runs, runner } = setup(async () => {
    if (failures-- > 0) throw new Error('unexpected');
  });
  api.create(hold('h1'));
  await runner.start();
  await runner.idle();
  assert.equal(findCondition(api.peek('cases/h1')!, RECONCILED)?.reason, 'ReconcileError');
  await clock.advance(1_000);
  assert.deepEqual(runs, ['h1@0', 'h1@1']);
  await runner.stop();
});

test('a PermanentError is not retried until the object changes', async () => {
  let fail = true;
  const { clock, api, sink, runs, runner } = setup(async () => {
    if (fail) throw new PermanentError('quarantine q-9 does not exist', { reason: 'QuarantineNotFound' });
  });
  api.create(hold('h1'));
  await runner.start();
  await runner.idle();
  await clock.advance(3_600_000);
  assert.deepEqual(runs, ['h1@0']);
  const obj = api.peek('cases/h1')!;
  assert.equal(findCondition(obj, RECONCILED)?.reason, 'QuarantineNotFound');
  assert.equal(sink.list()[0]?.type, 'Warning');
  assert.equal(sink.list()[0]?.reason, 'QuarantineNotFound');
  assert.equal(runner.failing, 1, 'a permanently failed resource stays counted until it changes');

  fail = false;
  api.updateSpec('cases/h1', { selector: { instances: ['vm-2'] }, reason: 'r', caseId: 'CASE-42' });
  await settle();
  await runner.idle();
  assert.equal(runs.length, 2);
  assert.equal(findCondition(api.peek('cases/h1')!, RECONCILED)?.status, 'True');
  assert.equal(runner.failing, 0);
  await runner.stop();
});

test('an object that fails its schema never reaches reconcile; the condition names the field', async () => {
  const { api, sink, runs, runner } = setup(async () => {});
  api.create(hold('bad', { selector: {}, reason: 'r', caseId: 'c' }));
  await runner.start();
  await runner.idle();
  assert.deepEqual(runs, []);
  const c = findCondition(api.peek('cases/bad')!, RECONCILED);
  assert.equal(c?.reason, 'InvalidSpec');
  assert.match(c?.message ?? '', /^QuarantineHold cases\/bad: spec\.selector: selector needs at least one of/);
  assert.equal(sink.list()[0]?.reason, 'InvalidSpec');
  await runner.stop();
});

test('requeueAfterMs reconciles again after that long with no change', async () => {
  const { clock, api, runs, runner } = setup(async () => ({ requeueAfterMs: 60_000 }));
  api.create(hold('h1'));
  await runner.start();
  await runner.idle();
  await clock.advance(59_999);
  assert.equal(runs.length, 1);
  await clock.advance(1);
  assert.deepEqual(runs, ['h1@0', 'h1@60']);
  await runner.stop();
});

test('finalizers: added by reconcile, deletion waits for their removal, then deleted() runs', async () => {
  const deleted: string[] = [];
  const { api, runs, runner } = setup(
    async (obj, ctx) => {
      if (obj.metadata['deletionTimestamp'] !== undefined) {
        await ctx.event('Normal', 'Released', 'hold released');
        await ctx.removeFinalizer(FINALIZER);
        return;
      }
      await ctx.addFinalizer(FINALIZER);
    },
    { deleted: async (key, last) => void deleted.push(`${key}:${last?.metadata.name}`) },
  );
  api.create(hold('h1'));
  await runner.start();
  await runner.idle();
  assert.deepEqual(api.peek('cases/h1')?.metadata.finalizers, [FINALIZER]);

  api.delete('cases/h1');
  assert.ok(api.peek('cases/h1')?.metadata.deletionTimestamp, 'held back by the finalizer');
  await settle();
  await runner.idle();
  await settle();
  await runner.idle();
  assert.equal(api.peek('cases/h1'), undefined, 'gone once the finalizer is removed');
  assert.deepEqual(deleted, ['cases/h1:h1']);
  assert.equal(runs.length, 3, 'create, finalizer added (metadata change), deletion');
  await runner.stop();
});

test('a finalizer update against a stale object is a conflict that retries, never a lost finalizer', async () => {
  let attempts = 0;
  const { clock, api, sink, runner } = setup(async (_obj, ctx) => {
    attempts++;
    if (attempts === 1) {
      // Someone else adds their own finalizer between our read and our write.
      const current = api.peek('cases/h1')!;
      await api.patch({ namespace: 'cases', name: 'h1' }, { metadata: { finalizers: ['other.example/keep'], resourceVersion: current.metadata.resourceVersion } });
    }
    await ctx.addFinalizer(FINALIZER);
  });
  api.create(hold('h1'));
  await runner.start();
  await runner.idle();
  await clock.advance(1_000);
  await runner.idle();
  // conflict; rerun for the other finalizer (a metadata change); rerun for ours
  assert.equal(attempts, 3);
  assert.ok(sink.list().some((e) => e.type === 'Warning' && e.reason === 'Conflict'));
  assert.deepEqual(api.peek('cases/h1')?.metadata.finalizers, ['other.example/keep', FINALIZER]);
  assert.equal(findCondition(api.peek('cases/h1')!, RECONCILED)?.status, 'True');
  await runner.stop();
});

test('stop aborts the context signal of a running reconcile and waits for it', async () => {
  let sawAbort = false;
  const { api, runner } = setup(async (_obj, ctx) => {
    await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
    sawAbort = ctx.signal.aborted;
  });
  api.create(hold('h1'));
  await runner.start();
  await settle();
  await runner.stop();
  assert.equal(sawAbort, true);
});
