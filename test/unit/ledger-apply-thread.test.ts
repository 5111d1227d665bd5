// The SQLite ledger's apply thread (operator/ledger/apply-thread.ts) writes
// what applyBatch on the caller's thread writes, runs its hook inside each
// batch's transaction with the configuration of that batch, and reports a
// failed batch without losing the next.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { DatabaseSync } from 'node:sqlite';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { applyBatch, type Recorded } from '../../operator/ledger/apply.ts';
import { ApplyThread, ledgerApplier } from '../../operator/ledger/apply-thread.ts';
import { decodeHistory, generateHistory } from '../support/histories.ts';
import { at, fixed, instanceEvent, notification } from '../support/events.ts';

async function withLedgers(n: number, fn: (ledgers: LedgerDb[], dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'qop-apply-thread-'));
  const ledgers = Array.from({ length: n }, (_, i) => openLedgerDb(`sqlite:${join(dir, `l${i}.db`)}`));
  try {
    for (const l of ledgers) await migrateToLatest(l);
    await fn(ledgers, dir);
  } finally {
    for (const l of ledgers) await l.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every derived and recorded row, without surrogate ids. */
async function dump(l: LedgerDb): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const [table, order] of [['notifications', 'message_id'], ['address_intervals', 'slot, valid_from'], ['address_changes', 'slot, at, ord'], ['instances', 'instance_id'], ['ports', 'port_id'], ['slot_snapshots', 'owner, at']] as const) {
    const rows = await sql<Record<string, unknown>>`SELECT * FROM ${sql.table(table)} ORDER BY ${sql.raw(order)}`.execute(l.db);
    out[table] = rows.rows.map(({ id: _id, notification_id: _n, ...rest }) => rest);
  }
  return out;
}

const batchesOf = <T>(xs: readonly T[], size: number): T[][] => Array.from({ length: Math.ceil(xs.length / size) }, (_, i) => xs.slice(i * size, (i + 1) * size));

test('batches applied in the thread give the ledger and outcomes that applyBatch gives on this thread', async () => {
  await withLedgers(2, async ([threaded, here]) => {
    const thread = await ApplyThread.start(`sqlite:${threaded!.file as string}`);
    try {
      for (let seed = 1; seed <= 6; seed++) {
        const recorded = decodeHistory(generateHistory(seed), `c${seed}`);
        // Each message twice, so that duplicates come back as such.
        for (const batch of batchesOf([...recorded, ...recorded.slice(0, 5)], 7)) {
          assert.deepEqual(await thread.apply(batch), await applyBatch(here!.db, batch));
        }
      }
    } finally {
      await thread.close();
    }
    const [a, b] = [await dump(threaded!), await dump(here!)];
    assert.ok((a['address_intervals'] ?? []).length > 50, 'the histories derive intervals');
    assert.deepEqual(a, b);
  });
});

test('a second thread copies the WAL into the database file while batches commit: the apply thread does not checkpoint', async () => {
  await withLedgers(1, async ([ledger]) => {
    const file = ledger!.file as string;
    const before = statSync(file).size;
    const thread = await ApplyThread.start(`sqlite:${file}`, undefined, { checkpointEveryMs: 10 });
    try {
      for (let seed = 1; seed <= 3; seed++) for (const batch of batchesOf(decodeHistory(generateHistory(seed), `c${seed}`), 20)) await thread.apply(batch);
      // The apply thread's own bound (64,000 pages) is far away: only the checkpoint thread writes the file.
      for (let i = 0; i < 200 && statSync(file).size <= before; i++) await sleep(25);
      assert.ok(statSync(file).size > before, `the database file stayed at ${before} bytes`);
    } finally {
      await thread.close();
    }
  });
});

const vm = (i: number): Recorded => ({
  notification: notification([instanceEvent('create.end', { id: `vm-${i}` }, [fixed(`10.1.0.${i}`, `port-${i}`)])], at(i), { messageId: `m-${i}` }),
  body: `{"i":${i}}`,
});

test('the hook runs in each batch\'s transaction with the configuration current at that batch; a failed batch leaves nothing and the next applies', async () => {
  await withLedgers(1, async ([ledger]) => {
    let config: unknown = { policies: ['a'] };
    const applier = await ledgerApplier(ledger!, { module: new URL('../support/apply-thread-hook.ts', import.meta.url).href, init: 'cloud-1', config: () => config });
    const apply = applier.apply;
    assert.ok(apply !== undefined, 'a SQLite file is applied in a thread');
    try {
      assert.deepEqual(await apply([vm(1), vm(2)]), ['applied', 'applied']);
      config = { policies: ['b'] };
      assert.deepEqual(await apply([vm(3)]), ['applied']);
      config = 'fail';
      await assert.rejects(apply([vm(4), vm(5)]), (err: Error) => err.name === 'RangeError' && err.message === 'told to fail at m-4');
      config = { policies: [] };
      assert.deepEqual(await apply([vm(4)]), ['applied']);
    } finally {
      await applier.close();
    }
    const seen = await sql<{ message_id: string; init: string; config: string }>`SELECT * FROM hook_seen ORDER BY message_id`.execute(ledger!.db);
    assert.deepEqual(seen.rows.map((r) => `${r.message_id} ${r.init} ${r.config}`), [
      'm-1 cloud-1 {"policies":["a"]}', 'm-2 cloud-1 {"policies":["a"]}', 'm-3 cloud-1 {"policies":["b"]}', 'm-4 cloud-1 {"policies":[]}',
    ]);
    const ids = await ledger!.db.selectFrom('notifications').select('message_id').orderBy('message_id').execute();
    assert.deepEqual(ids.map((r) => r.message_id), ['m-1', 'm-2', 'm-3', 'm-4'], 'the failed batch left no notification');
  });
});

test('a thread that ends fails the batch it held; the next batch gets a new thread', async () => {
  await withLedgers(1, async ([ledger]) => {
    let config: unknown = 'ok';
    const applier = await ledgerApplier(ledger!, { module: new URL('../support/apply-thread-hook.ts', import.meta.url).href, init: 'cloud-1', config: () => config });
    const apply = applier.apply;
    assert.ok(apply !== undefined);
    try {
      assert.deepEqual(await apply([vm(1)]), ['applied']);
      config = 'exit';
      await assert.rejects(apply([vm(2)]), (err: Error) => err.name === 'ApplyThreadExited');
      config = 'ok again';
      assert.deepEqual(await apply([vm(2), vm(3)]), ['applied', 'applied']);
    } finally {
      await applier.close();
    }
    const seen = await sql<{ message_id: string; config: string }>`SELECT message_id, config FROM hook_seen ORDER BY message_id`.execute(ledger!.db);
    assert.deepEqual(seen.rows.map((r) => `${r.message_id} ${r.config}`), ['m-1 "ok"', 'm-2 "ok again"', 'm-3 "ok again"']);
  });
});

test('a batch that meets another connection\'s write lock past the busy timeout waits for it instead of failing', async () => {
  await withLedgers(1, async ([ledger]) => {
    const thread = await ApplyThread.start(`sqlite:${ledger!.file as string}`);
    const other = new DatabaseSync(ledger!.file as string);
    try {
      other.exec('BEGIN IMMEDIATE');
      let settled = false;
      const applied = thread.apply([vm(1)]).finally(() => {
        settled = true;
      });
      // Past the connection's busy_timeout of 5 s.
      await sleep(6000);
      assert.equal(settled, false, 'the batch waited for the lock');
      other.exec('COMMIT');
      assert.deepEqual(await applied, ['applied']);
    } finally {
      other.close();
      await thread.close();
    }
  });
});

test('an in-memory SQLite ledger and PostgreSQL are applied on the caller\'s thread', async () => {
  const memory = openLedgerDb('sqlite::memory:');
  try {
    assert.equal((await ledgerApplier(memory)).apply, undefined);
    assert.equal((await ledgerApplier({ engine: 'postgres' })).apply, undefined);
  } finally {
    await memory.close();
  }
});
