// Closed capture intents are pruned after their retention, level-triggered on
// the leader: open ones never, other clouds' never, and pruning brings back no
// capture (a copy of the warning is a duplicate notification; an adopted trash
// entry is known by its quarantine).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { applyBatch } from '../../operator/ledger/apply.ts';
import { CaptureEngine } from '../../operator/capture/engine.ts';
import { CloudCapture, INTENT_RETENTION_MS } from '../../operator/capture/cloud-capture.ts';
import { recordCaptureIntents, putIntent, IntentStore } from '../../operator/capture/intents.ts';
import { intentId } from '../../operator/capture/lifecycle.ts';
import type { Policy } from '../../operator/domain/policy.ts';
import type { DecodedNotification } from '../../operator/domain/events.ts';
import { FakeClock } from '../../operator/kube/runtime/clock.ts';
import { silentLogger } from '../../operator/log.ts';
import { FakeBlockStore } from '../support/fake-block-store.ts';
import { notification, instanceEvent } from '../support/events.ts';

const VM = '6f1b7a52-3c1e-4d7b-9a57-0d9a5c1f2e11';
const VM2 = '0a3c9e44-5d2b-4c1a-8f6e-2b7d9c0e1f22';
const DAY = 86_400_000;
const HOUR = 3_600_000;
const content = Buffer.from('evidence\n'.repeat(512));

function policy(mode: 'onDelete' | 'trash'): Policy {
  return {
    name: 'legal', selector: {}, capture: { mode, disks: { root: true, ephemeral: true, volumes: true }, flatten: false, releaseResources: false },
    retentionMs: 365 * DAY, capacity: { onFull: 'evictOldest' }, sweep: { schedule: '0 3 * * *', timeZone: 'UTC', dryRun: false },
  };
}

async function setup(mode: 'onDelete' | 'trash' = 'onDelete') {
  const ledger = openLedgerDb('sqlite::memory:');
  await migrateToLatest(ledger);
  const blocks = new FakeBlockStore();
  for (const vm of [VM, VM2]) await blocks.importImage({ stream: Readable.from([content]) }, { pool: 'vms', image: `${vm}_disk` });
  const clock = new FakeClock('2026-05-01T16:30:00Z');
  const policies = [policy(mode)];
  const engine = new CaptureEngine({ db: ledger.db, blocks, quarantine: { pool: 'quarantine' }, logger: silentLogger, clock: () => clock.now() });
  const capture = new CloudCapture({
    config: { cloud: 'cern', cloudType: 'openstack', watchedPools: ['vms'], trash: { arm: false, expireSeconds: 0, scanIntervalSeconds: 86_400 } },
    // Relists and scans a day apart: a month passes on the fake clock without a million timers.
    db: ledger.db, blocks, engine, policies: () => policies, logger: silentLogger, clock, relistMs: DAY,
  });
  const deliver = async (n: DecodedNotification) => {
    const outcomes = await applyBatch(ledger.db, [{ notification: n, body: '{}' }], (trx, m) => recordCaptureIntents(trx, m, { cloud: 'cern', policies: () => policies }));
    capture.onNotification(n);
    return outcomes;
  };
  return { ledger, blocks, clock, capture, deliver };
}

const intents = (l: LedgerDb) => l.db.selectFrom('capture_intents').select(['id', 'cloud', 'kind', 'state']).orderBy('id').execute();

describe('capture intent pruning', () => {
  test('closed intents go after the retention, open ones and other clouds\' stay; pruning runs by itself on the leader', async () => {
    const { ledger, clock, capture, deliver } = await setup();
    const at = clock.now();
    // An open intent older than any retention, a cancelled one, and another cloud's closed one.
    await putIntent(ledger.db, { cloud: 'cern', kind: 'live', subject: 'stuck', instanceId: 'stuck', messageId: null, announcedAt: at, decision: undefined }, new Date(at.getTime() - 400 * DAY));
    await putIntent(ledger.db, { cloud: 'cern', kind: 'orphan', subject: 'gone', instanceId: 'gone', messageId: null, announcedAt: at, decision: undefined }, at);
    await new IntentStore(ledger.db).close(intentId('cern', 'orphan', 'gone'), 'cancelled', 'test', at);
    await putIntent(ledger.db, { cloud: 'desy', kind: 'live', subject: VM2, instanceId: VM2, messageId: null, announcedAt: at, decision: undefined }, at);
    await new IntentStore(ledger.db).close(intentId('desy', 'live', VM2), 'done', 'test', at);
    capture.start();
    await deliver(notification([instanceEvent('delete.start', { id: VM })], at));
    await capture.idle();
    const before = await intents(ledger);
    assert.deepEqual(before.filter((i) => i.cloud === 'cern').map((i) => i.state).sort(), ['cancelled', 'done', 'open']);
    // Within the retention nothing closed goes.
    await clock.advance(INTENT_RETENTION_MS - HOUR);
    await capture.idle();
    assert.equal((await intents(ledger)).length, before.length);
    // The hourly pass after the retention takes the closed ones of this cloud only.
    await clock.advance(2 * HOUR);
    await capture.idle();
    const after = await intents(ledger);
    assert.deepEqual(after.map((i) => [i.cloud, i.state]).sort(), [['cern', 'open'], ['desy', 'done']]);
    await capture.stop();
    await ledger.close();
  });

  test('a follower prunes nothing', async () => {
    const { ledger, clock, capture, deliver } = await setup();
    capture.follow();
    await deliver(notification([instanceEvent('delete.start', { id: VM })], clock.now()));
    await capture.idle();
    await clock.advance(INTENT_RETENTION_MS + 2 * HOUR);
    await capture.idle();
    assert.equal((await intents(ledger)).length, 1);
    await capture.close();
    await ledger.close();
  });

  test('after pruning, a copy of the warning and a new trash scan capture nothing twice', async () => {
    for (const mode of ['onDelete', 'trash'] as const) {
      const { ledger, blocks, clock, capture, deliver } = await setup(mode);
      capture.start();
      await capture.idle();
      const warning = notification([instanceEvent('delete.start', { id: VM })], clock.now());
      if (mode === 'trash') await blocks.moveToTrash({ pool: 'vms', image: `${VM}_disk` });
      await deliver(warning);
      await clock.advance(50);
      await capture.idle();
      const captured = await ledger.db.selectFrom('quarantines').select('id').execute();
      assert.equal(captured.length, 1, mode);
      assert.ok((await intents(ledger)).every((i) => i.state === 'done'), mode);
      assert.ok((await capture.prune()) === 0, `${mode}: nothing within the retention`);
      await clock.advance(INTENT_RETENTION_MS + 2 * HOUR);
      await capture.idle();
      assert.deepEqual(await intents(ledger), [], mode);
      assert.deepEqual(await deliver(warning), ['duplicate'], mode);
      await clock.advance(DAY);
      await capture.idle();
      assert.deepEqual(await intents(ledger), [], `${mode}: no intent comes back`);
      assert.equal((await ledger.db.selectFrom('quarantines').select('id').execute()).length, 1, mode);
      await capture.stop();
      await ledger.close();
    }
  });
});
