// The intake's batching is a group commit: what arrives while a transaction
// commits goes into the next one, so a slow commit makes batches larger
// instead of queueing many small ones behind it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import { BatchingApplier } from '../../operator/intake/pipeline.ts';
import { at, fixed, instanceEvent, notification } from '../support/events.ts';

test('deliveries arriving during a slow commit are applied together, in order, each once', async () => {
  const ledger = openLedgerDb('sqlite::memory:');
  try {
    await migrateToLatest(ledger);
    const batches: number[] = [];
    const seen = new Set<unknown>();
    let current = 0;
    let arrived = 0;
    const N = 240;
    // Runs once per applied notification inside the transaction: the first of each batch holds the commit
    // until 20 more deliveries have arrived (or all have), however slowly the machine runs the test.
    const inTransaction = async (trx: unknown) => {
      if (!seen.has(trx)) {
        seen.add(trx);
        const from = arrived;
        batches.push(0);
        current = batches.length - 1;
        while (arrived < Math.min(N, from + 20)) await sleep(1);
      }
      batches[current] = (batches[current] ?? 0) + 1;
    };
    const applier = new BatchingApplier(ledger.db, { maxBatch: 100, lingerMs: 1, inTransaction });
    const outcomes: Array<Promise<string>> = [];
    for (let i = 0; i < N; i++) {
      const n = notification([instanceEvent('create.end', { id: `vm-${i}` }, [fixed(`10.0.${i >> 8}.${i & 255}`, `port-${i}`)])], at(i), { messageId: `m-${i}` });
      outcomes.push(applier.apply({ notification: n, body: '{}' }));
      arrived += 1;
      // Deliveries trickle in, each a few timer ticks after the previous one.
      await sleep(2);
    }
    assert.deepEqual(new Set(await Promise.all(outcomes)), new Set(['applied']));
    await applier.drain();
    assert.equal(batches.reduce((a, b) => a + b, 0), N, 'each delivery applied exactly once');
    // A batch cut at every timer tick would give about one transaction per delivery; grouped, each holds about 20.
    assert.ok(batches.length <= 20, `${batches.length} transactions for ${N} deliveries: ${batches.join(' ')}`);
    assert.ok(Math.max(...batches) <= 100, 'no batch beyond maxBatch');
    const rows = await ledger.db.selectFrom('notifications').select('message_id').orderBy('id').execute();
    assert.deepEqual(rows.map((r) => r.message_id), Array.from({ length: N }, (_, i) => `m-${i}`), 'committed in arrival order');
  } finally {
    await ledger.close();
  }
});
