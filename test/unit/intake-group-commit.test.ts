// The intake's batching is a group commit: what arrives while a transaction
// commits goes into the next one, so a slow commit makes batches larger
// instead of queueing many small ones behind it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import { BatchingApplier } from '../../operator/intake/pipeline.ts';
import { deriveAll, pendingDerivation } from '../../operator/ledger/derive-pending.ts';
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

const trickle = async (applier: BatchingApplier, from: number, count: number, gapMs: number): Promise<Array<Promise<string>>> => {
  const out: Array<Promise<string>> = [];
  for (let i = from; i < from + count; i++) {
    const n = notification([instanceEvent('create.end', { id: `vm-${i}` }, [fixed(`10.1.${i >> 8}.${i & 255}`, `port-${i}`)])], at(i), { messageId: `d-${i}` });
    out.push(applier.apply({ notification: n, body: '{}' }));
    if (gapMs > 0) await sleep(gapMs);
  }
  return out;
};

/** Applies `count` deliveries `gapMs` apart and answers the size of each transaction. */
async function batchesOf(options: { maxBatch: number; lingerMs: number; maxLingerMs?: number }, count: number, gapMs: number): Promise<number[]> {
  const ledger = openLedgerDb('sqlite::memory:');
  try {
    await migrateToLatest(ledger);
    const sizes = new Map<unknown, number>();
    const applier = new BatchingApplier(ledger.db, { ...options, inTransaction: async (trx) => void sizes.set(trx, (sizes.get(trx) ?? 0) + 1) });
    await Promise.all(await trickle(applier, 0, count, gapMs));
    await applier.drain();
    return [...sizes.values()];
  } finally {
    await ledger.close();
  }
}

test('a batch waits while deliveries keep arriving, so a steady stream fills it instead of being cut one linger after its first delivery', async () => {
  // 60 deliveries 5 ms apart: about 300 ms of stream, a gap never near the 100 ms linger. Cut one linger
  // after the first delivery, as before, this gave three or more transactions.
  const sizes = await batchesOf({ maxBatch: 100, lingerMs: 100, maxLingerMs: 10_000 }, 60, 5);
  assert.equal(sizes.reduce((a, b) => a + b, 0), 60);
  // Two at most: a pause of the test process longer than the linger may cut the stream once.
  assert.ok(sizes.length <= 2, `${sizes.length} transactions: ${sizes.join(' ')}`);
});

test('a stream that never pauses is still applied once its first delivery has waited maxLingerMs', async () => {
  const sizes = await batchesOf({ maxBatch: 1_000, lingerMs: 100, maxLingerMs: 60 }, 60, 5);
  assert.equal(sizes.reduce((a, b) => a + b, 0), 60);
  assert.ok(sizes.length >= 3, `${sizes.length} transactions for about 300 ms of deliveries: ${sizes.join(' ')}`);
});

test('a full batch is applied at once, without waiting for the linger', async () => {
  const started = performance.now();
  const sizes = await batchesOf({ maxBatch: 10, lingerMs: 60_000 }, 30, 0);
  assert.deepEqual(sizes, [10, 10, 10]);
  assert.ok(performance.now() - started < 30_000, 'no batch waited for the minute-long linger');
});

test('what is left over after a full batch waits for the deliveries that follow, instead of going alone', async () => {
  const ledger = openLedgerDb('sqlite::memory:');
  try {
    await migrateToLatest(ledger);
    const sizes = new Map<unknown, number>();
    const applier = new BatchingApplier(ledger.db, { maxBatch: 10, lingerMs: 2_000, inTransaction: async (trx) => void sizes.set(trx, (sizes.get(trx) ?? 0) + 1) });
    const first = await trickle(applier, 0, 12, 0);
    await sleep(50);
    const rest = await trickle(applier, 12, 8, 0);
    await Promise.all([...first, ...rest]);
    await applier.drain();
    // As the intake's batches were cut: 800 of a prefetch of 1,600, then the 24 left over alone.
    assert.deepEqual([...sizes.values()], [10, 10]);
  } finally {
    await ledger.close();
  }
});

test('with derivation left to passes, a pass runs once deliveries pause, and while they do not, at least every maxLagMs but not after every batch', async () => {
  const ledger = openLedgerDb('sqlite::memory:');
  try {
    await migrateToLatest(ledger);
    let passes = 0;
    let batches = 0;
    const counted = new Set<unknown>();
    const applier = new BatchingApplier(ledger.db, {
      maxBatch: 5, lingerMs: 1,
      inTransaction: async (trx) => {
        if (!counted.has(trx)) {
          counted.add(trx);
          batches += 1;
        }
      },
      derivation: { maxLagMs: 60, idleMs: 30, pass: async () => { passes += 1; await deriveAll(ledger.db); } },
    });
    // A steady trickle: never idle for 30 ms, so only the lag bound starts passes.
    const steady = await trickle(applier, 0, 150, 2);
    await Promise.all(steady);
    const during = passes;
    assert.ok(during >= 2, `${during} passes during ${batches} batches`);
    assert.ok(during < batches / 2, `${during} passes for ${batches} batches: passes must take several batches at once`);
    // Then a pause: the rest is derived without a drain.
    for (let waited = 0; (await pendingDerivation(ledger.db)).rows > 0; waited += 5) {
      assert.ok(waited < 5_000, 'derived once deliveries paused');
      await sleep(5);
    }
    const held = await ledger.db.selectFrom('address_intervals').select('address').where('address', 'like', '10.1.%').execute();
    assert.equal(held.length, 150);
    await applier.drain();
  } finally {
    await ledger.close();
  }
});

test('a pass that fails is reported and tried again; drain derives what is left', async () => {
  const ledger = openLedgerDb('sqlite::memory:');
  try {
    await migrateToLatest(ledger);
    const errors: string[] = [];
    let failing = true;
    const applier = new BatchingApplier(ledger.db, {
      maxBatch: 10, lingerMs: 1,
      derivation: {
        maxLagMs: 20, idleMs: 5,
        pass: async () => {
          if (failing) throw new Error('ledger unavailable');
          await deriveAll(ledger.db);
        },
        onError: (err) => errors.push(err instanceof Error ? err.message : String(err)),
      },
    });
    await Promise.all(await trickle(applier, 0, 20, 0));
    for (let waited = 0; errors.length < 2; waited += 5) {
      assert.ok(waited < 5_000, 'the failed pass is tried again');
      await sleep(5);
    }
    assert.equal((await pendingDerivation(ledger.db)).rows > 0, true, 'nothing derived while passes fail');
    failing = false;
    await applier.drain();
    assert.deepEqual(await pendingDerivation(ledger.db), { rows: 0, oldestAt: null });
    assert.equal((await ledger.db.selectFrom('address_intervals').select('id').execute()).length, 20);
  } finally {
    await ledger.close();
  }
});

test('derivePending derives what batches before a restart left', async () => {
  const ledger = openLedgerDb('sqlite::memory:');
  try {
    await migrateToLatest(ledger);
    const before = new BatchingApplier(ledger.db, { maxBatch: 10, lingerMs: 1, derivation: { maxLagMs: 60_000, idleMs: 60_000, pass: async () => undefined } });
    await Promise.all(await trickle(before, 0, 12, 0));
    assert.ok((await pendingDerivation(ledger.db)).rows > 0);
    const after = new BatchingApplier(ledger.db, { derivation: { maxLagMs: 60_000, idleMs: 60_000, pass: () => deriveAll(ledger.db) } });
    await after.derivePending();
    assert.deepEqual(await pendingDerivation(ledger.db), { rows: 0, oldestAt: null });
    assert.equal((await ledger.db.selectFrom('address_intervals').select('id').execute()).length, 12);
  } finally {
    await ledger.close();
  }
});
