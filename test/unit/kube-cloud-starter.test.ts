// Starting and stopping clouds on a replica as a reconciler: table-driven
// over what the API server holds, with a fake clock for the retries.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { CloudStarter, type DesiredCloud } from '../../operator/kube/cloud-starter.ts';
import { Cloud } from '../../operator/resources/cloud.ts';
import { FakeClock } from '../../operator/kube/runtime/clock.ts';
import { silentLogger } from '../../operator/log.ts';

function cloud(name: string, prefetch = 200): Cloud {
  return Cloud.parse({
    apiVersion: 'quarantine.forensics.dev/v1alpha1', kind: 'Cloud', metadata: { name },
    spec: { type: 'openstack', amqp: { urlSecretRef: { name: 'amqp', key: 'url' }, prefetch } },
  });
}

function harness(failures = 0) {
  const clock = new FakeClock();
  const calls: string[] = [];
  let failLeft = failures;
  const world = new Map<string, DesiredCloud>();
  const starter = new CloudStarter({
    clock, logger: silentLogger, retryMs: 1_000, maxRetryMs: 4_000, desired: (n) => world.get(n),
    host: {
      async addCloud(c) {
        calls.push(`add ${c.metadata.name}/${c.spec.amqp.prefetch}`);
        if (failLeft-- > 0) throw new Error('broker unreachable');
      },
      async removeCloud(n) {
        calls.push(`remove ${n}`);
      },
    },
  });
  starter.start();
  return { clock, calls, world, starter };
}

describe('cloud starter', () => {
  const cases: Array<{ name: string; steps: Array<DesiredCloud>; expect: string[]; running: string[] }> = [
    { name: 'a new Cloud is started', steps: [{ valid: true, cloud: cloud('cern') }], expect: ['add cern/200'], running: ['cern'] },
    { name: 'the same spec again changes nothing', steps: [{ valid: true, cloud: cloud('cern') }, { valid: true, cloud: cloud('cern') }], expect: ['add cern/200'], running: ['cern'] },
    { name: 'a spec change restarts it', steps: [{ valid: true, cloud: cloud('cern') }, { valid: true, cloud: cloud('cern', 50) }], expect: ['add cern/200', 'remove cern', 'add cern/50'], running: ['cern'] },
    { name: 'a deleted Cloud is stopped', steps: [{ valid: true, cloud: cloud('cern') }, undefined], expect: ['add cern/200', 'remove cern'], running: [] },
    { name: 'a Cloud turned invalid is stopped', steps: [{ valid: true, cloud: cloud('cern') }, { valid: false, reason: 'bad' }], expect: ['add cern/200', 'remove cern'], running: [] },
    { name: 'an unknown name does nothing', steps: [undefined], expect: [], running: [] },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const h = harness();
      for (const want of c.steps) {
        h.world.set('cern', want);
        h.starter.enqueue('cern');
        await h.starter.idle();
      }
      assert.deepEqual(h.calls, c.expect);
      assert.deepEqual(h.starter.running, c.running);
      await h.starter.stop();
    });
  }

  test('a failed start is undone and retried with growing delays until it works', async () => {
    const h = harness(3);
    h.world.set('cern', { valid: true, cloud: cloud('cern') });
    h.starter.enqueue('cern');
    await h.starter.idle();
    assert.deepEqual(h.calls, ['add cern/200', 'remove cern']);
    await h.clock.advance(999);
    assert.equal(h.calls.length, 2, 'not before the first delay');
    await h.clock.advance(1);
    await h.starter.idle();
    await h.clock.advance(2_000);
    await h.starter.idle();
    await h.clock.advance(4_000);
    await h.starter.idle();
    assert.deepEqual(h.calls, ['add cern/200', 'remove cern', 'add cern/200', 'remove cern', 'add cern/200', 'remove cern', 'add cern/200']);
    assert.deepEqual(h.starter.running, ['cern']);
    await h.starter.stop();
  });
});
