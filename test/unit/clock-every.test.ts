import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock, every, settle } from '../../operator/kube/runtime/clock.ts';

test('every runs at once, then the interval after each run ends, never two runs at once, and nothing after cancel', async () => {
  const clock = new FakeClock();
  const starts: number[] = [];
  let running = 0;
  let overlapped = false;
  let release: (() => void) | undefined;
  const timer = every(clock, 1_000, async () => {
    if (running > 0) overlapped = true;
    running++;
    starts.push(clock.now().getTime());
    await new Promise<void>((r) => { release = r; });
    running--;
  });
  await settle();
  assert.equal(starts.length, 1, 'the first run starts at once');
  await clock.advance(5_000);
  assert.equal(starts.length, 1, 'no second run while the first one is still going');
  release?.();
  await settle();
  await clock.advance(999);
  assert.equal(starts.length, 1);
  await clock.advance(1);
  assert.equal(starts.length, 2, 'the next run comes one interval after the previous one ended');
  assert.equal(starts[1]! - starts[0]!, 6_000);
  release?.();
  await settle();
  timer.cancel();
  await clock.advance(10_000);
  assert.equal(starts.length, 2, 'nothing runs after cancel');
  assert.equal(overlapped, false);
});

test('a run that fails does not stop the schedule', async () => {
  const clock = new FakeClock();
  let runs = 0;
  const timer = every(clock, 100, async () => {
    runs++;
    if (runs === 1) throw new Error('transient');
  });
  await settle();
  await clock.advance(100);
  await settle();
  assert.equal(runs, 2);
  timer.cancel();
});
