// The thread pool size the entry point reserves for librbd calls.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { LIBRBD_ADOPT_CONCURRENCY, LIBRBD_CAPTURE_CONCURRENCY, LIBRBD_WORKER_THREADS, reserveWorkerThreads } from '../../operator/ceph/worker-threads.ts';

test('an environment without UV_THREADPOOL_SIZE gets the librbd pool; an explicit size, even smaller, is kept', () => {
  const unset: NodeJS.ProcessEnv = {};
  assert.equal(reserveWorkerThreads(unset), LIBRBD_WORKER_THREADS);
  assert.equal(unset['UV_THREADPOOL_SIZE'], String(LIBRBD_WORKER_THREADS));
  for (const chosen of ['1', '8', '512']) {
    const env: NodeJS.ProcessEnv = { UV_THREADPOOL_SIZE: chosen };
    assert.equal(reserveWorkerThreads(env), Number(chosen));
    assert.equal(env['UV_THREADPOOL_SIZE'], chosen);
  }
  for (const junk of ['', '0', '-3', 'lots', '2.5']) {
    const env: NodeJS.ProcessEnv = { UV_THREADPOOL_SIZE: junk };
    assert.equal(reserveWorkerThreads(env), LIBRBD_WORKER_THREADS, `UV_THREADPOOL_SIZE=${JSON.stringify(junk)}`);
  }
});

test('every capture and adoption running at once has a thread to wait on', () => {
  assert.ok(LIBRBD_CAPTURE_CONCURRENCY + LIBRBD_ADOPT_CONCURRENCY < LIBRBD_WORKER_THREADS);
});

test('the entry point reserves the pool before it loads the program (the size is read when the pool starts)', () => {
  const main = readFileSync(new URL('../../operator/cli/main.ts', import.meta.url), 'utf8');
  const reserve = main.indexOf('reserveWorkerThreads()');
  const program = main.indexOf("import('./program.ts')");
  assert.ok(reserve > 0 && program > reserve, 'reserveWorkerThreads() runs before program.ts is imported');
  assert.doesNotMatch(main.slice(0, reserve), /^import .*program/m);
});
