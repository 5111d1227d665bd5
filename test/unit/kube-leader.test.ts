import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../operator/log.ts';
import type { LeaseStore } from '../../operator/kube/runtime/api.ts';
import { FakeClock } from '../../operator/kube/runtime/clock.ts';
import { ApiError, MemoryLeaseStore } from '../../operator/kube/runtime/fakes.ts';
import { LeaderElector } from '../../operator/kube/runtime/leader.ts';

const timing = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

/** A view of the shared store that can be cut off, as a replica on the wrong side of a partition. */
function reachable(store: LeaseStore): LeaseStore & { down: boolean } {
  const view = {
    down: false,
    get: () => (view.down ? Promise.reject(new ApiError(503, 'unreachable')) : store.get()),
    create: (s: Parameters<LeaseStore['create']>[0]) => (view.down ? Promise.reject(new ApiError(503, 'unreachable')) : store.create(s)),
    update: (rv: string, s: Parameters<LeaseStore['update']>[1]) => (view.down ? Promise.reject(new ApiError(503, 'unreachable')) : store.update(rv, s)),
  };
  return view;
}

function elector(name: string, store: LeaseStore, clock: FakeClock, log: string[]) {
  return new LeaderElector({
    store,
    identity: name,
    clock,
    log: silentLogger,
    ...timing,
    onStartedLeading: () => void log.push(`${name}+@${clock.now().getTime() / 1000 - Date.parse('2026-01-01T00:00:00Z') / 1000}`),
    onStoppedLeading: () => void log.push(`${name}-@${clock.now().getTime() / 1000 - Date.parse('2026-01-01T00:00:00Z') / 1000}`),
  });
}

test('one of two candidates acquires the lease and keeps it while it renews', async () => {
  const clock = new FakeClock();
  const store = new MemoryLeaseStore();
  const log: string[] = [];
  const a = elector('a', store, clock, log);
  const b = elector('b', store, clock, log);
  a.start();
  await clock.advance(0);
  b.start();
  await clock.advance(60_000);
  assert.deepEqual(log, ['a+@0']);
  assert.equal(a.isLeader, true);
  assert.equal(b.isLeader, false);
  assert.equal(b.leader, 'a');
  assert.equal(store.current?.spec.holderIdentity, 'a');
  assert.equal(store.current?.spec.leaseDurationSeconds, 15);
  assert.equal(store.current?.spec.renewTime?.getTime(), clock.now().getTime(), 'renewed on every retry period');
  await a.stop();
  await b.stop();
});

test('stop() stops the work first, then releases the lease, and the other candidate takes over within a retry period', async () => {
  const clock = new FakeClock();
  const store = new MemoryLeaseStore();
  const log: string[] = [];
  const a = elector('a', store, clock, log);
  const b = elector('b', store, clock, log);
  a.start();
  await clock.advance(0);
  b.start();
  await clock.advance(10_000);
  await a.stop();
  assert.equal(store.current?.spec.holderIdentity, '');
  await clock.advance(2_000);
  assert.deepEqual(log, ['a+@0', 'a-@10', 'b+@12']);
  assert.equal(store.current?.spec.leaseTransitions, 1);
  await b.stop();
});

test('a leader cut off from the apiserver stops leading at the renew deadline, before anyone else may take over', async () => {
  const clock = new FakeClock();
  const store = new MemoryLeaseStore();
  const log: string[] = [];
  const viewA = reachable(store);
  const a = elector('a', viewA, clock, log);
  const b = elector('b', store, clock, log);
  a.start();
  await clock.advance(0);
  b.start();
  await clock.advance(4_000);
  viewA.down = true; // last successful renewal at 4 s
  await clock.advance(30_000);
  assert.deepEqual(log, ['a+@0', 'a-@14', 'b+@20'], 'a gives up at 4+10 s; b waits 15 s from the last change it saw (at 4 s) and acquires on its next round');
  viewA.down = false;
  await clock.advance(10_000);
  assert.equal(a.isLeader, false, 'a does not take back a lease that b keeps renewing');
  await a.stop();
  await b.stop();
});

test("a renewal with a stale resourceVersion gets 409 and ends leadership at once", async () => {
  const clock = new FakeClock();
  const store = new MemoryLeaseStore();
  const log: string[] = [];
  const a = elector('a', store, clock, log);
  a.start();
  await clock.advance(0);
  // Someone else writes the lease (as after taking it over while a was stalled).
  const current = store.current!;
  await store.update(current.resourceVersion, { ...current.spec, holderIdentity: 'intruder', renewTime: clock.now() });
  await clock.advance(2_000);
  assert.deepEqual(log, ['a+@0', 'a-@2']);
  assert.equal(a.isLeader, false);
  await clock.advance(2_000);
  assert.equal(a.leader, 'intruder', 'the next round reads the lease afresh');
  assert.deepEqual(log, ['a+@0', 'a-@2'], 'and leaves it to its renewing holder');
  await a.stop();
});

test('expiry is judged from when this replica saw the lease change, not from the holder’s renewTime', async () => {
  const clock = new FakeClock();
  const store = new MemoryLeaseStore();
  // The holder's clock is an hour behind: by renewTime the lease looks long expired.
  await store.create({ holderIdentity: 'skewed', leaseDurationSeconds: 15, renewTime: new Date(clock.now().getTime() - 3_600_000) });
  const log: string[] = [];
  const b = elector('b', store, clock, log);
  b.start();
  await clock.advance(14_000);
  assert.deepEqual(log, [], 'not before 15 s of silence as b measures it');
  await clock.advance(2_000);
  assert.deepEqual(log, ['b+@16']);
  await b.stop();
});

test('two candidates racing to create the lease: exactly one wins', async () => {
  const clock = new FakeClock();
  const store = new MemoryLeaseStore();
  const log: string[] = [];
  const a = elector('a', store, clock, log);
  const b = elector('b', store, clock, log);
  a.start();
  b.start();
  await clock.advance(20_000);
  assert.equal(log.length, 1);
  assert.equal([a.isLeader, b.isLeader].filter(Boolean).length, 1);
  await a.stop();
  await b.stop();
});

test('timings must leave room: leaseDuration > renewDeadline > retryPeriod', () => {
  assert.throws(
    () => new LeaderElector({ store: new MemoryLeaseStore(), identity: 'x', log: silentLogger, leaseDurationMs: 5_000, renewDeadlineMs: 5_000, onStartedLeading() {}, onStoppedLeading() {} }),
    /leaseDuration > renewDeadline > retryPeriod/,
  );
});
