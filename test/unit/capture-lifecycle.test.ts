// The capture side's decisions, table-driven: which events owe a capture,
// what a policy decides for them, and admission under capacity limits.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { admission, admits, intentId, parseDecision, planFor, planForTrashEntry, signalsOf, type Signal } from '../../operator/capture/lifecycle.ts';
import type { Policy, CaptureMode } from '../../operator/domain/policy.ts';
import type { InstanceAction } from '../../operator/domain/events.ts';
import { notification, instanceEvent, oneVmEvent, at } from '../support/events.ts';

const VM = 'vm-1';

function policy(mode: CaptureMode, capacity: Policy['capacity'] = { onFull: 'evictOldest' }): Policy {
  return {
    name: `p-${mode}`, selector: {}, capture: { mode, disks: { root: true, ephemeral: false, volumes: false }, flatten: true, releaseResources: true },
    retentionMs: 42_000, capacity, sweep: { schedule: '0 3 * * *', timeZone: 'UTC', dryRun: false },
  };
}

describe('capture lifecycle', () => {
  const nova: Array<[InstanceAction, Signal['kind'] | undefined]> = [
    ['delete.start', 'warning'], ['force_delete.start', 'warning'], ['soft_delete.end', 'soft'], ['delete.end', 'gone'],
    ['force_delete.end', 'gone'], ['restore.end', 'undone'], ['create.end', undefined], ['soft_delete.start', undefined],
  ];
  for (const [action, kind] of nova) {
    test(`Nova ${action} → ${kind ?? 'no signal'}`, () => {
      const signals = signalsOf(notification([instanceEvent(action, { id: VM })], at(0)));
      assert.deepEqual(signals, kind === undefined ? [] : [{ kind, instanceId: VM }]);
    });
  }

  test('a delete never scheduled on a host is no signal (nothing to capture)', () => {
    const e = instanceEvent('delete.start', { id: VM });
    assert.deepEqual(signalsOf(notification([{ ...e, notScheduled: true } as typeof e], at(0))), []);
  });

  const one: Array<[[number, string], [number, string], Signal['kind'] | undefined]> = [
    [[3, 'ACTIVE'], [12, 'SHUTDOWN'], 'warning'], [[3, 'ACTIVE'], [11, 'EPILOG'], 'warning'], [[3, 'ACTIVE'], [23, 'CLEANUP_DELETE'], 'warning'],
    [[6, 'DONE'], [0, 'LCM_INIT'], 'gone'], [[3, 'ACTIVE'], [3, 'RUNNING'], undefined],
  ];
  for (const [state, lcm, kind] of one) {
    test(`OpenNebula ${state[1]}/${lcm[1]} → ${kind ?? 'no signal'}`, () => {
      const signals = signalsOf(notification([oneVmEvent({ id: 7, nics: [] }, state, lcm)], at(0), { source: 'opennebula' }));
      assert.deepEqual(signals, kind === undefined ? [] : [{ kind, instanceId: '7' }]);
    });
  }

  const plans: Array<{ signal: Signal['kind']; mode: CaptureMode | undefined; expect: string }> = [
    { signal: 'warning', mode: 'onDelete', expect: 'intent:live' },
    { signal: 'warning', mode: 'softDelete', expect: 'intent:live' },
    { signal: 'warning', mode: 'trash', expect: 'scanTrash' },
    { signal: 'warning', mode: undefined, expect: 'nothing' },
    { signal: 'soft', mode: 'softDelete', expect: 'intent:soft' },
    { signal: 'soft', mode: 'onDelete', expect: 'nothing' },
    { signal: 'soft', mode: undefined, expect: 'nothing' },
    { signal: 'gone', mode: undefined, expect: 'intent:orphan' },
    { signal: 'gone', mode: 'trash', expect: 'intent:orphan' },
    { signal: 'undone', mode: 'softDelete', expect: 'cancel' },
  ];
  for (const c of plans) {
    test(`${c.signal} under ${c.mode ?? 'no policy'} → ${c.expect}`, () => {
      const plan = planFor({ kind: c.signal, instanceId: VM }, c.mode === undefined ? undefined : policy(c.mode), 'admitted');
      assert.equal(plan.do === 'intent' ? `intent:${plan.kind}` : plan.do, c.expect);
      if (plan.do === 'intent' && plan.kind !== 'orphan') {
        // The snapshot is all a reconciler needs, and it survives a round trip through the ledger.
        const d = parseDecision(JSON.stringify(plan.decision));
        assert.deepEqual(d, plan.decision);
        assert.equal(d.retentionMs, 42_000);
        assert.equal(d.flatten, true);
        assert.equal(d.releaseResources, true);
        assert.equal(d.racing, plan.kind === 'live');
      }
    });
  }

  const limits: Array<{ capacity: Policy['capacity']; count: number; bytes: number; expect: 'admitted' | 'full' }> = [
    { capacity: { onFull: 'evictOldest', maxCount: 1 }, count: 5, bytes: 0, expect: 'admitted' },
    { capacity: { onFull: 'refuse' }, count: 5, bytes: 5, expect: 'admitted' },
    { capacity: { onFull: 'refuse', maxCount: 2 }, count: 1, bytes: 0, expect: 'admitted' },
    { capacity: { onFull: 'refuse', maxCount: 2 }, count: 2, bytes: 0, expect: 'full' },
    { capacity: { onFull: 'refuse', maxBytes: 100 }, count: 9, bytes: 99, expect: 'admitted' },
    { capacity: { onFull: 'refuse', maxBytes: 100 }, count: 1, bytes: 100, expect: 'full' },
  ];
  for (const c of limits) {
    test(`admission ${JSON.stringify(c.capacity)} holding ${c.count}/${c.bytes} B → ${c.expect}`, () => {
      const p = policy('onDelete', c.capacity);
      assert.equal(admission(p, { count: c.count, bytes: c.bytes }), c.expect);
      const plan = planFor({ kind: 'warning', instanceId: VM }, p, admission(p, { count: c.count, bytes: c.bytes }));
      assert.ok(plan.do === 'intent' && plan.decision !== undefined);
      assert.equal(plan.decision.capacity, c.expect);
      // The recorded limits give the same verdict when admission is checked again later.
      assert.equal(admits(plan.decision.limits, { count: c.count, bytes: c.bytes }), c.expect === 'admitted');
    });
  }

  test('a trash entry is planned only under a trash-mode policy wanting its role', () => {
    assert.equal(planForTrashEntry(policy('trash'), (d) => d.root, 'admitted')?.mode, 'trash');
    assert.equal(planForTrashEntry(policy('trash'), (d) => d.volumes, 'admitted'), undefined);
    assert.equal(planForTrashEntry(policy('onDelete'), () => true, 'admitted'), undefined);
    assert.equal(planForTrashEntry(undefined, () => true, 'admitted'), undefined);
  });

  test('intent ids are one per cloud, kind and subject', () => {
    assert.equal(intentId('cern', 'live', VM), intentId('cern', 'live', VM));
    assert.notEqual(intentId('cern', 'live', VM), intentId('cern', 'soft', VM));
    assert.notEqual(intentId('cern', 'live', VM), intentId('gva', 'live', VM));
  });
});
