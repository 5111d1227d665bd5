// The Cloud status controller only reads: every 30 s it reports whether the
// watched pools send deletions to the trash, and never writes a pool setting
// (arming is done once, by the leader, when it starts leading a cloud).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import { CaptureEngine } from '../../operator/capture/engine.ts';
import { CloudCapture } from '../../operator/capture/cloud-capture.ts';
import { cloudController } from '../../operator/kube/controllers/cloud.ts';
import { createMetrics } from '../../operator/http/metrics.ts';
import type { Operator } from '../../operator/operator.ts';
import type { Cloud } from '../../operator/resources/cloud.ts';
import type { ReconcileContext } from '../../operator/kube/runtime/controller.ts';
import type { StatusUpdate } from '../../operator/kube/runtime/status.ts';
import { FakeClock } from '../../operator/kube/runtime/clock.ts';
import { silentLogger } from '../../operator/log.ts';
import { FakeBlockStore } from '../support/fake-block-store.ts';

describe('Cloud status controller', () => {
  test('repeated status refreshes read the pools\' trash settings and never write them', async () => {
    const ledger = openLedgerDb('sqlite::memory:');
    await migrateToLatest(ledger);
    const blocks = new FakeBlockStore();
    const clock = new FakeClock();
    for (const arm of [true, false]) {
      const capture = new CloudCapture({
        config: { cloud: 'lab', cloudType: 'openstack', watchedPools: ['vms', 'volumes'], trash: { arm, expireSeconds: 86_400, scanIntervalSeconds: 600 } },
        db: ledger.db, blocks, engine: new CaptureEngine({ db: ledger.db, blocks, quarantine: { pool: 'quarantine' }, logger: silentLogger }),
        policies: () => [], logger: silentLogger, clock,
      });
      // Only what the controller reads of the operator: one started cloud, healthy ledger and broker.
      const cloud = { metadata: { name: 'lab' }, spec: { amqp: { alternateExchange: '' } } } as unknown as Cloud;
      const operator = {
        clouds: new Map([['lab', { cloud, capture, ceph: { driver: 'librbd' }, intake: { consumer: { queueDepth: async () => 0, queue: 'q', alternateExchange: undefined } } }]]),
        metrics: createMetrics(ledger.db, { isLeader: () => true, queueDepth: async () => [] }),
        ledgerHealth: { state: { up: true } },
      } as unknown as Operator;
      const updates: StatusUpdate[] = [];
      const ctx = { key: 'lab', clock, log: silentLogger, signal: new AbortController().signal, status: async (u: StatusUpdate) => void updates.push(u), event: async () => undefined } as unknown as ReconcileContext;
      const c = cloudController(operator, ledger.db);
      const writes = () => blocks.calls.filter((x) => x.op === 'setPoolConfig').length;
      const before = writes();
      for (let i = 0; i < 5; i++) assert.deepEqual(await c.reconcile(cloud, ctx), { requeueAfterMs: 30_000 });
      assert.equal(writes(), before, `arm: ${arm}: a status refresh wrote a pool setting`);
      const trash = updates.at(-1)?.conditions?.find((x) => x.type === 'TrashArmed');
      // The pools start unarmed (first pass); the second pass finds them armed by the first's armTrash.
      assert.equal(trash?.status, arm ? 'False' : 'True');
      await capture.armTrash();
      assert.equal(writes() > before, arm, `arm: ${arm}: armTrash writes only when spec.ceph.trash.arm`);
      await c.reconcile(cloud, ctx);
      assert.equal(updates.at(-1)?.conditions?.find((x) => x.type === 'TrashArmed')?.status, 'True');
    }
    await ledger.close();
  });
});
