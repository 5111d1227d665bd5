import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock, settle } from '../../operator/kube/runtime/clock.ts';
import { WorkQueue } from '../../operator/kube/runtime/queue.ts';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

test('a key added many times while waiting is processed once', async () => {
  const seen: string[] = [];
  const q = new WorkQueue({ clock: new FakeClock(), process: async (k) => void seen.push(k) });
  q.add('a');
  q.add('b');
  q.add('a');
  q.add('a');
  q.start();
  await q.idle();
  assert.deepEqual(seen, ['a', 'b']);
});

test('one key is never processed twice at once; an add during processing runs it again afterwards', async () => {
  const gate = deferred();
  let running = 0;
  let maxRunning = 0;
  let runs = 0;
  const q = new WorkQueue({
    clock: new FakeClock(),
    concurrency: 4,
    process: async () => {
      running++;
      runs++;
      maxRunning = Math.max(maxRunning, running);
      if (runs === 1) await gate.promise;
      running--;
    },
  });
  q.start();
  q.add('k');
  await settle();
  q.add('k');
  q.add('k');
  await settle();
  assert.equal(runs, 1, 'the second add waits for the first run');
  gate.resolve();
  await q.idle();
  assert.equal(runs, 2, 'adds during a run collapse into one more run');
  assert.equal(maxRunning, 1);
});

test('different keys run concurrently up to the limit', async () => {
  const gate = deferred();
  let running = 0;
  let maxRunning = 0;
  const q = new WorkQueue({
    clock: new FakeClock(),
    concurrency: 2,
    process: async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await gate.promise;
      running--;
    },
  });
  q.start();
  for (const k of ['a', 'b', 'c', 'd']) q.add(k);
  await settle();
  assert.equal(running, 2);
  gate.resolve();
  await q.idle();
  assert.equal(maxRunning, 2);
});

test('addAfter waits on the clock, and the earliest of several delays wins', async () => {
  const clock = new FakeClock();
  const seen: string[] = [];
  const q = new WorkQueue({ clock, process: async (k) => void seen.push(`${k}@${clock.now().getTime() - new Date('2026-01-01T00:00:00Z').getTime()}`) });
  q.start();
  q.addAfter('a', 5_000);
  q.addAfter('a', 2_000);
  q.addAfter('a', 9_000);
  await clock.advance(1_999);
  assert.deepEqual(seen, []);
  await clock.advance(1);
  assert.deepEqual(seen, ['a@2000']);
  await clock.advance(10_000);
  assert.deepEqual(seen, ['a@2000'], 'later delays were dropped');
});

test('cancelDelayed drops a pending delayed add; stop drops everything and waits for running work', async () => {
  const clock = new FakeClock();
  const gate = deferred();
  const seen: string[] = [];
  const q = new WorkQueue({
    clock,
    process: async (k) => {
      seen.push(k);
      if (k === 'slow') await gate.promise;
    },
  });
  q.start();
  q.addAfter('x', 1_000);
  q.cancelDelayed('x');
  q.add('slow');
  await settle();
  q.addAfter('y', 1_000);
  const stopped = q.stop();
  let done = false;
  void stopped.then(() => (done = true));
  await settle();
  assert.equal(done, false, 'stop waits for the running key');
  gate.resolve();
  await stopped;
  await clock.advance(5_000);
  assert.deepEqual(seen, ['slow']);
  q.add('z');
  await settle();
  assert.deepEqual(seen, ['slow'], 'a stopped queue takes no work');
});

test('a throwing process does not stop the queue', async () => {
  const seen: string[] = [];
  const q = new WorkQueue({
    clock: new FakeClock(),
    process: async (k) => {
      seen.push(k);
      if (k === 'bad') throw new Error('boom');
    },
  });
  q.start();
  q.add('bad');
  q.add('good');
  await q.idle();
  assert.deepEqual(seen, ['bad', 'good']);
});
