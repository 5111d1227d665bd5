// The controller runtime against a real kube-apiserver: a toy controller for
// QuarantineHold writes status and Events, retries a TemporaryError, holds
// deletion with a finalizer, and catches by relisting a change its watch
// never delivered; two leader electors share one Lease.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { silentLogger } from '../../operator/log.ts';
import { GROUP, QuarantineHoldResource, QuarantinePolicyResource, RESOURCES, VERSION, crdFor } from '../../operator/resources/crd.ts';
import type { QuarantineHold } from '../../operator/resources/hold.ts';
import { FakeClock, systemClock } from '../../operator/kube/runtime/clock.ts';
import { type Controller, ControllerRunner, RECONCILED } from '../../operator/kube/runtime/controller.ts';
import { TemporaryError } from '../../operator/kube/runtime/errors.ts';
import { EventRecorder } from '../../operator/kube/runtime/events.ts';
import type { KubeObject, ListerWatcher } from '../../operator/kube/runtime/informer.ts';
import { applyCrds, coreEventSink, customObjectClient, kubeLeaseStore } from '../../operator/kube/runtime/kube.ts';
import { LeaderElector } from '../../operator/kube/runtime/leader.ts';
import { ControllerManager } from '../../operator/kube/runtime/manager.ts';
import { findCondition } from '../../operator/kube/runtime/status.ts';
import { requireEnv, uniqueSuffix } from '../support/env.ts';

const apiVersion = `${GROUP}/${VERSION}`;
const FINALIZER = 'quarantine.forensics.dev/test-hold';

function statusCode(err: unknown): number | undefined {
  return err instanceof k8s.ApiException ? err.code : undefined;
}

async function eventually<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last === undefined ? '' : `: ${String(last)}`}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('controller runtime on a real kube-apiserver', () => {
  let admin: k8s.KubeConfig;
  let custom: k8s.CustomObjectsApi;
  let core: k8s.CoreV1Api;
  const suffix = uniqueSuffix();
  const namespace = `qrt-${suffix}`;
  const runners: ControllerRunner<QuarantineHold>[] = [];

  before(async () => {
    admin = new k8s.KubeConfig();
    admin.loadFromFile(requireEnv('QTEST_KUBECONFIG'));
    custom = admin.makeApiClient(k8s.CustomObjectsApi);
    core = admin.makeApiClient(k8s.CoreV1Api);
    await applyCrds(admin, RESOURCES.map(crdFor));
    await core.createNamespace({ body: { metadata: { name: namespace } } });
  });

  after(async () => {
    for (const r of runners) await r.stop();
    if (core === undefined) return;
    try {
      const holds = (await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'quarantineholds' })) as { items: KubeObject[] };
      for (const h of holds.items) {
        if (h.metadata.finalizers?.length) {
          await custom.patchNamespacedCustomObject(
            { group: GROUP, version: VERSION, namespace, plural: 'quarantineholds', name: h.metadata.name, body: { metadata: { finalizers: null } } },
            k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
          );
        }
        await custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'quarantineholds', name: h.metadata.name });
      }
      await core.deleteCollectionNamespacedEvent({ namespace });
      await core.deleteNamespace({ name: namespace });
      const ns = await core.readNamespace({ name: namespace });
      await core.replaceNamespaceFinalize({ name: namespace, body: { ...ns, spec: { finalizers: [] } } });
    } catch (err) {
      if (statusCode(err) !== 404) throw err;
    }
  });

  function createHold(name: string, spec: object = { selector: { instances: ['vm-1'] }, reason: 'incident', caseId: 'CASE-1' }): Promise<KubeObject> {
    return custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: 'quarantineholds',
      body: { apiVersion, kind: 'QuarantineHold', metadata: { name }, spec },
    });
  }

  function getHold(name: string): Promise<KubeObject> {
    return custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'quarantineholds', name });
  }

  async function eventsFor(name: string): Promise<k8s.CoreV1Event[]> {
    const list = await core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` });
    return list.items;
  }

  function start(controller: Controller<QuarantineHold>, source?: ListerWatcher<KubeObject>, resyncMs = 300_000): ControllerRunner<QuarantineHold> {
    const client = customObjectClient(admin, QuarantineHoldResource);
    const runner = new ControllerRunner(controller, {
      client,
      ...(source ? { source } : {}),
      events: new EventRecorder({ sink: coreEventSink(admin), clock: systemClock, log: silentLogger, instance: `test-${suffix}` }),
      log: silentLogger,
      backoff: { baseMs: 100, maxMs: 2_000 },
      resyncMs,
    });
    runners.push(runner);
    return runner;
  }

  test('a toy Hold controller writes status, conditions and an Event; the finalizer holds deletion until it is removed', { timeout: 60_000 }, async () => {
    const deleted: string[] = [];
    const runner = start({
      kind: 'QuarantineHold',
      async reconcile(hold, ctx) {
        if (!hold.metadata.name.startsWith('toy-')) return;
        if (hold.metadata['deletionTimestamp']) {
          await ctx.event('Normal', 'Released', `hold ${hold.spec.caseId} released`);
          await ctx.removeFinalizer(FINALIZER);
          return;
        }
        await ctx.addFinalizer(FINALIZER);
        const matched = hold.spec.selector.instances?.length ?? 0;
        await ctx.status({ fields: { matchedCount: matched }, conditions: [{ type: 'Active', status: 'True', reason: 'Holding', message: `${matched} instance(s)` }] });
        await ctx.event('Normal', 'Holding', `holding quarantines of ${matched} instance(s) for ${hold.spec.caseId}`);
      },
      async deleted(key) {
        deleted.push(key);
      },
    });
    await runner.start();
    await createHold('toy-1', { selector: { instances: ['vm-1', 'vm-2'] }, reason: 'incident', caseId: 'CASE-7' });

    const held = await eventually('status from the controller', async () => {
      const h = await getHold('toy-1');
      return findCondition(h, RECONCILED)?.status === 'True' ? h : undefined;
    });
    const status = held['status'] as { matchedCount: number; observedGeneration: number };
    assert.equal(status.matchedCount, 2);
    assert.equal(status.observedGeneration, 1);
    assert.equal(findCondition(held, 'Active')?.reason, 'Holding');
    assert.deepEqual(held.metadata.finalizers, [FINALIZER]);

    const events = await eventually('the Holding event', async () => {
      const e = await eventsFor('toy-1');
      return e.some((x) => x.reason === 'Holding') ? e : undefined;
    });
    const ev = events.find((x) => x.reason === 'Holding')!;
    assert.equal(ev.type, 'Normal');
    assert.equal(ev.involvedObject.uid, held.metadata.uid);
    assert.equal(ev.involvedObject.kind, 'QuarantineHold');
    assert.equal(ev.message, 'holding quarantines of 2 instance(s) for CASE-7');

    await custom.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'quarantineholds', name: 'toy-1' });
    await eventually('the hold to be gone after the finalizer is removed', async () => {
      try {
        await getHold('toy-1');
        return undefined;
      } catch (err) {
        return statusCode(err) === 404 ? true : undefined;
      }
    });
    await eventually('deleted() to run', () => (deleted.includes(`${namespace}/toy-1`) ? true : undefined));
    assert.ok((await eventsFor('toy-1')).some((x) => x.reason === 'Released'));
    await runner.stop();
  });

  test('a TemporaryError is retried until the reconcile succeeds, with a Warning event and condition meanwhile', { timeout: 60_000 }, async () => {
    let attempts = 0;
    const runner = start({
      kind: 'QuarantineHold',
      async reconcile(hold, ctx) {
        if (hold.metadata.name !== 'flaky') return;
        attempts++;
        if (attempts <= 3) throw new TemporaryError('the ledger is not reachable', 150, { reason: 'LedgerUnavailable' });
        await ctx.status({ fields: { matchedCount: 0 } });
      },
    });
    await runner.start();
    await createHold('flaky');
    const done = await eventually('success after retries', async () => {
      const h = await getHold('flaky');
      return findCondition(h, RECONCILED)?.status === 'True' ? h : undefined;
    });
    assert.equal(attempts, 4);
    assert.equal((done['status'] as { matchedCount: number }).matchedCount, 0);
    const warnings = (await eventsFor('flaky')).filter((e) => e.type === 'Warning');
    assert.equal(warnings.length, 1, 'the repeats are one Event');
    assert.equal(warnings[0]?.reason, 'LedgerUnavailable');
    assert.equal(warnings[0]?.count, 3);
    await runner.stop();
  });

  test('the periodic relist reconciles a change that the watch never delivered', { timeout: 60_000 }, async () => {
    const real = customObjectClient(admin, QuarantineHoldResource);
    let dropped = 0;
    // A watch that silently loses every event about one object, as watches in Node have been seen to.
    const lossy: ListerWatcher<KubeObject> = {
      list: () => real.list(),
      watch: (rv, onEvent, onDone) =>
        real.watch(
          rv,
          (type, obj) => {
            if ((obj as KubeObject | undefined)?.metadata?.name === 'missed') {
              dropped++;
              return;
            }
            onEvent(type, obj);
          },
          onDone,
        ),
    };
    const seen: string[] = [];
    const runner = start(
      {
        kind: 'QuarantineHold',
        async reconcile(hold, ctx) {
          if (hold.metadata.name !== 'missed') return;
          seen.push(hold.spec.caseId);
          await ctx.status({ fields: { matchedCount: hold.spec.selector.users?.length ?? 0 } });
        },
      },
      lossy,
      1_500,
    );
    await createHold('missed', { selector: { users: ['alice'] }, reason: 'r', caseId: 'CASE-A' });
    await runner.start();
    await eventually('the first reconcile (from the initial list)', () => (seen.includes('CASE-A') ? true : undefined));

    const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
    await custom.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, namespace, plural: 'quarantineholds', name: 'missed', body: { spec: { caseId: 'CASE-B', selector: { users: ['alice', 'bob'] } } } },
      merge,
    );
    await eventually('the watch to have dropped the update', () => (dropped > 0 ? true : undefined));
    const h = await eventually('the relist to reconcile the new spec', async () => {
      const obj = await getHold('missed');
      // Both: the status must come from a reconcile of the new spec, not a resync of the cached old one.
      return (obj['status'] as { observedGeneration?: number; matchedCount?: number } | undefined)?.matchedCount === 2 && seen.includes('CASE-B') ? obj : undefined;
    });
    assert.ok(seen.includes('CASE-B'));
    assert.equal((h['status'] as { matchedCount: number }).matchedCount, 2);
    await runner.stop();
  });

  test('Events about cluster-scoped objects are accepted in `default`', { timeout: 30_000 }, async () => {
    const name = `policy-${suffix}`;
    const policy = (await custom.createClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: QuarantinePolicyResource.plural,
      body: { apiVersion, kind: 'QuarantinePolicy', metadata: { name }, spec: { retention: { duration: '1d' } } },
    })) as KubeObject;
    try {
      const recorder = new EventRecorder({ sink: coreEventSink(admin), clock: systemClock, log: silentLogger, instance: 'test' });
      await recorder.record(policy, 'Normal', 'Swept', 'deleted 0 quarantines');
      const list = await core.listNamespacedEvent({ namespace: 'default', fieldSelector: `involvedObject.name=${name}` });
      assert.equal(list.items.length, 1);
      assert.equal(list.items[0]?.involvedObject.uid, policy.metadata.uid);
      await core.deleteNamespacedEvent({ namespace: 'default', name: list.items[0]?.metadata?.name ?? '' });
    } finally {
      await custom.deleteClusterCustomObject({ group: GROUP, version: VERSION, plural: QuarantinePolicyResource.plural, name });
    }
  });

  test('controllers run only on the replica that leads, and move with the lease', { timeout: 60_000 }, async () => {
    const leaseName = `quarantine-manager-${suffix}`;
    const toy = (identity: string): Controller<QuarantineHold> => ({
      kind: 'QuarantineHold',
      async reconcile(hold, ctx) {
        if (hold.metadata.name !== 'managed') return;
        await ctx.status({ conditions: [{ type: 'Active', status: 'True', reason: 'Holding', message: `${identity} ${hold.spec.caseId}` }] });
      },
    });
    const manager = (identity: string) =>
      new ControllerManager({
        kubeConfig: admin,
        controllers: [toy(identity)],
        namespace: 'default',
        identity,
        leaseName,
        log: silentLogger,
        leaseDurationMs: 3_000,
        renewDeadlineMs: 2_000,
        retryPeriodMs: 250,
      });
    const a = manager('replica-a');
    const b = manager('replica-b');
    const activeMessage = async () => findCondition(await getHold('managed'), 'Active')?.message;
    try {
      await createHold('managed', { selector: { users: ['alice'] }, reason: 'r', caseId: 'CASE-1' });
      a.start();
      b.start();
      const first = await eventually('a leader to reconcile', async () => (await activeMessage())?.endsWith('CASE-1') ? activeMessage() : undefined);
      const [leader, other] = a.isLeader ? [a, b] : [b, a];
      assert.equal(leader.isLeader, true);
      assert.equal(other.isLeader, false);
      assert.equal(leader.runners.length, 1);
      assert.equal(other.runners.length, 0, 'the follower runs no controller');
      assert.equal(first, `${leader === a ? 'replica-a' : 'replica-b'} CASE-1`);

      await leader.stop();
      assert.equal(leader.runners.length, 0);
      await eventually('the other replica to take over', () => (other.isLeader && other.runners.length === 1 ? true : undefined), 10_000);
      await custom.patchNamespacedCustomObject(
        { group: GROUP, version: VERSION, namespace, plural: 'quarantineholds', name: 'managed', body: { spec: { caseId: 'CASE-2' } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
      const second = await eventually('the new leader to reconcile the change', async () => ((await activeMessage())?.endsWith('CASE-2') ? activeMessage() : undefined));
      assert.equal(second, `${other === a ? 'replica-a' : 'replica-b'} CASE-2`);
    } finally {
      await a.stop();
      await b.stop();
      try {
        await admin.makeApiClient(k8s.CoordinationV1Api).deleteNamespacedLease({ namespace: 'default', name: leaseName });
      } catch (err) {
        if (statusCode(err) !== 404) throw err;
      }
    }
  });

  describe('leader election on one Lease', () => {
    const leaseName = `quarantine-leader-${suffix}`;
    const leaseNs = 'default';
    const timing = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 250 };

    after(async () => {
      try {
        await admin.makeApiClient(k8s.CoordinationV1Api).deleteNamespacedLease({ namespace: leaseNs, name: leaseName });
      } catch (err) {
        if (statusCode(err) !== 404) throw err;
      }
    });

    function candidate(identity: string, log: string[], clock = systemClock) {
      return new LeaderElector({
        store: kubeLeaseStore(admin, leaseNs, leaseName),
        identity,
        clock,
        log: silentLogger,
        ...timing,
        onStartedLeading: () => void log.push(`${identity}+`),
        onStoppedLeading: () => void log.push(`${identity}-`),
      });
    }

    test('only one of two candidates leads; stopping it hands over within the lease duration', { timeout: 60_000 }, async () => {
      const log: string[] = [];
      const a = candidate('replica-a', log);
      const b = candidate('replica-b', log);
      a.start();
      b.start();
      let both = 0;
      const deadline = Date.now() + 2_000;
      while (Date.now() < deadline) {
        if (a.isLeader && b.isLeader) both++;
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.equal(both, 0, 'never two leaders at once');
      const leader = a.isLeader ? a : b;
      const other = leader === a ? b : a;
      assert.equal(leader.isLeader, true);
      assert.equal(other.isLeader, false);

      const stoppedAt = Date.now();
      await leader.stop();
      await eventually('the other candidate to lead', () => (other.isLeader ? true : undefined), 10_000);
      const handover = Date.now() - stoppedAt;
      assert.ok(handover < timing.leaseDurationMs, `handed over in ${handover} ms`);
      const lease = await admin.makeApiClient(k8s.CoordinationV1Api).readNamespacedLease({ namespace: leaseNs, name: leaseName });
      assert.equal(lease.spec?.holderIdentity, leader === a ? 'replica-b' : 'replica-a');
      assert.equal(lease.spec?.leaseTransitions, 1);
      await other.stop();
      assert.equal(log.filter((l) => l.endsWith('+')).length, 2);
    });

    test('a stalled leader is replaced after expiry, and its stale renewal gets 409 and ends its leadership', { timeout: 60_000 }, async () => {
      const store = kubeLeaseStore(admin, leaseNs, leaseName);
      const current = await store.get();
      if (current !== undefined) {
        // A stale resourceVersion is refused by the apiserver itself.
        const renewed = await store.update(current.resourceVersion, { ...current.spec, renewTime: new Date() });
        await assert.rejects(store.update(current.resourceVersion, { ...current.spec, holderIdentity: 'late' }), (err: unknown) => statusCode(err) === 409);
        assert.notEqual(renewed.resourceVersion, current.resourceVersion);
      }

      const log: string[] = [];
      // Its clock stands still unless moved: a process paused by GC or a frozen VM.
      const frozen = new FakeClock(new Date());
      const stalled = candidate('replica-stalled', log, frozen);
      stalled.start();
      await frozen.advance(0);
      await eventually('the first candidate to lead', () => (stalled.isLeader ? true : undefined));

      const b = candidate('replica-b', log);
      b.start();
      await eventually('replica-b to take over the expired lease', () => (b.isLeader ? true : undefined), 15_000);
      assert.equal(stalled.isLeader, true, 'the stalled one does not know yet');

      await frozen.advance(timing.retryPeriodMs);
      await eventually('the stale renewal to end its leadership', () => (stalled.isLeader ? undefined : true), 5_000);
      assert.deepEqual(log, ['replica-stalled+', 'replica-b+', 'replica-stalled-']);
      const lease = await store.get();
      assert.equal(lease?.spec.holderIdentity, 'replica-b', 'the 409 left the new leader’s lease untouched');
      await b.stop();
      await stalled.stop();
    });
  });
});
