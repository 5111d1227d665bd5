import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../operator/log.ts';
import { FakeClock, settle } from '../../operator/kube/runtime/clock.ts';
import { ApiError, MemoryObjectClient } from '../../operator/kube/runtime/fakes.ts';
import { type ChangeKind, Informer, type KubeObject } from '../../operator/kube/runtime/informer.ts';

function hold(name: string, namespace = 'cases', spec: object = { caseId: 'c1' }): KubeObject {
  return { apiVersion: 'quarantine.forensics.dev/v1alpha1', kind: 'QuarantineHold', metadata: { name, namespace }, spec };
}

function setup(resyncMs = 60_000) {
  const clock = new FakeClock();
  const api = new MemoryObjectClient(() => clock.now());
  const changes: Array<[string, ChangeKind]> = [];
  const informer = new Informer<KubeObject>({
    source: api,
    clock,
    log: silentLogger,
    resyncMs,
    retryMs: 1_000,
    onChange: (key, kind) => changes.push([key, kind]),
  });
  return { clock, api, changes, informer };
}

test('start lists into the cache, then watch events keep it current', async () => {
  const { api, changes, informer } = setup();
  api.create(hold('a'));
  await informer.start();
  assert.equal(informer.synced, true);
  assert.deepEqual(changes, [['cases/a', 'add']]);
  await settle();
  assert.equal(api.watcherCount, 1);

  api.create(hold('b'));
  api.updateSpec('cases/a', { caseId: 'c2' });
  api.delete('cases/b');
  assert.deepEqual(changes.slice(1), [
    ['cases/b', 'add'],
    ['cases/a', 'update'],
    ['cases/b', 'delete'],
  ]);
  assert.deepEqual((informer.get('cases/a')?.['spec'] as { caseId: string }).caseId, 'c2');
  assert.equal(informer.get('cases/b'), undefined);
  informer.stop();
  assert.equal(api.watcherCount, 0);
});

test('a watch the server ends cleanly is reopened at once; one that fails or ends at once after backoff', async () => {
  const { clock, api, informer } = setup();
  await informer.start();
  await clock.advance(30_000);
  api.endWatches();
  await settle();
  assert.equal(api.watcherCount, 1, 'reopened at once after a clean end');

  // A watch that ends as soon as it is opened is not reopened in a tight loop.
  api.endWatches();
  await settle();
  assert.equal(api.watcherCount, 0, 'ended at once: wait before reopening');
  await clock.advance(1_000);
  assert.equal(api.watcherCount, 1);
  await clock.advance(20_000);

  api.failNext.set('watch', new ApiError(500, 'boom'));
  api.endWatches(new Error('connection reset'));
  await settle();
  assert.equal(api.watcherCount, 0, 'a failed watch waits before the next try');
  await clock.advance(1_000);
  assert.equal(api.failNext.size, 0, 'the first retry came after 1 s');
  assert.equal(api.watcherCount, 0, 'and failed');
  await clock.advance(1_999);
  assert.equal(api.watcherCount, 0);
  await clock.advance(1);
  assert.equal(api.watcherCount, 1, 'reopened after the doubled backoff');
  informer.stop();
});

test('an expired resourceVersion (410) makes the informer list again', async () => {
  const { api, informer } = setup();
  await informer.start();
  await settle();
  const lists = api.calls.filter((c) => c === 'list').length;
  api.endWatches(new ApiError(410, 'too old resource version'));
  await settle();
  assert.equal(api.calls.filter((c) => c === 'list').length, lists + 1);
  assert.equal(api.watcherCount, 1);
  informer.stop();
});

test('the periodic relist catches changes and deletions the watch missed, and offers every key again', async () => {
  const { clock, api, changes, informer } = setup(30_000);
  api.create(hold('a'));
  api.create(hold('b'));
  api.create(hold('c'));
  await informer.start();
  await settle();
  changes.length = 0;

  api.dropWatchEvents = true;
  api.updateSpec('cases/a', { caseId: 'changed' });
  api.delete('cases/b');
  api.dropWatchEvents = false;
  assert.deepEqual(changes, [], 'the watch missed them');
  assert.equal((informer.get('cases/a')?.['spec'] as { caseId: string }).caseId, 'c1');

  await clock.advance(30_000);
  assert.deepEqual(changes.sort(), [
    ['cases/a', 'update'],
    ['cases/b', 'delete'],
    ['cases/c', 'resync'],
  ]);
  assert.equal((informer.get('cases/a')?.['spec'] as { caseId: string }).caseId, 'changed');
  assert.equal(api.watcherCount, 1, 'one watch after the relist, not two');
  informer.stop();
});

test('a failing first list is retried with backoff and start() resolves once it succeeds', async () => {
  const { clock, api, informer } = setup();
  api.failNext.set('list', new ApiError(503, 'unavailable'));
  let started = false;
  const starting = informer.start().then(() => (started = true));
  await settle();
  assert.equal(started, false);
  await clock.advance(1_000);
  await starting;
  assert.equal(started, true);
  informer.stop();
});
