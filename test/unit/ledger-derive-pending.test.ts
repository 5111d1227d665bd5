// Derivation left to passes (operator/ledger/derive-pending.ts): the same
// intervals, row for row, as deriving every batch in its own transaction,
// whatever batches a pass takes together; what is pending survives a restart
// and a failed pass.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import type { LedgerSchema } from '../../operator/ledger/schema.ts';
import { applyBatch } from '../../operator/ledger/apply.ts';
import { EVER, touched } from '../../operator/ledger/derive.ts';
import { deriveAll, derivePass, encodeTouched, mergeTouched, parseTouched, pendingDerivation } from '../../operator/ledger/derive-pending.ts';
import type { Touched } from '../../operator/ledger/derive.ts';
import { generateHistory, rng, schedules } from '../support/histories.ts';
import { decodeRaw, type RawMessage } from '../support/cloud-messages.ts';

async function intervalsOf(db: Kysely<LedgerSchema>, cloud: string): Promise<string[]> {
  const rows = await db.selectFrom('address_intervals').selectAll().where('cloud', '=', cloud).execute();
  return rows.map(({ id: _id, cloud: _cloud, ...r }) => JSON.stringify(r)).sort();
}

test('what a batch touched survives its JSON form, times "from the start" included', () => {
  const t = touched();
  t.slots.set('port:p1|10.0.0.5', 1_000);
  t.slots.set('fip:f1', EVER);
  t.instances.add('vm-1');
  t.ports.add('p1');
  t.routers.add('r1');
  t.ends.set('vm-1', 2_000);
  t.portChanges.set('p2', EVER);
  t.lists.set('instance:vm-2', 3_000);
  assert.deepEqual(parseTouched(encodeTouched(t)), t);
  // A row recorded before lists were kept: its instances and ports stand for every slot of them.
  const older = parseTouched('{"slots":[],"instances":["vm-1"],"ports":[],"routers":[],"ends":[],"portChanges":[]}');
  assert.deepEqual([...older.instances], ['vm-1']);
  assert.equal(older.lists.size, 0);
  assert.throws(() => parseTouched('{"slots":[["a","x"]],"instances":[],"ports":[],"routers":[],"ends":[],"portChanges":[]}'));
  assert.throws(() => parseTouched('{"slots":[]}'));
});

test('merging what batches touched keeps every key of every batch at its earliest time, in any order of the batches', () => {
  // The histories below reach some keys of a merge (an instance's end, a port's change) only together with
  // others that re-derive the same slots; this checks the merge itself, key by key.
  const maps = ['slots', 'ends', 'portChanges', 'lists'] as const;
  const sets = ['instances', 'ports', 'routers'] as const;
  for (let seed = 1; seed <= 200; seed++) {
    const next = rng(seed);
    const pick = (n: number) => Math.floor(next() * n);
    const parts: Touched[] = Array.from({ length: 1 + pick(5) }, () => {
      const t = touched();
      for (const m of maps) for (let i = pick(4); i > 0; i--) t[m].set(`k${pick(6)}`, next() < 0.1 ? EVER : pick(1_000));
      for (const k of sets) for (let i = pick(4); i > 0; i--) t[k].add(`k${pick(6)}`);
      return t;
    });
    const merged = touched();
    for (const t of parts) mergeTouched(merged, t);
    const reversed = touched();
    for (const t of [...parts].reverse()) mergeTouched(reversed, t);
    for (const m of maps) {
      const want = new Map<string, number>();
      for (const t of parts) for (const [k, v] of t[m]) want.set(k, Math.min(want.get(k) ?? Infinity, v));
      assert.deepEqual(new Map([...merged[m]].sort()), new Map([...want].sort()), `${m}, seed ${seed}`);
      assert.deepEqual(new Map([...reversed[m]].sort()), new Map([...want].sort()), `${m} in reverse, seed ${seed}`);
    }
    for (const k of sets) {
      const want = new Set(parts.flatMap((t) => [...t[k]]));
      assert.deepEqual([...merged[k]].sort(), [...want].sort(), `${k}, seed ${seed}`);
      assert.deepEqual([...reversed[k]].sort(), [...want].sort(), `${k} in reverse, seed ${seed}`);
    }
    // And through the JSON form a pass reads.
    assert.deepEqual(parseTouched(encodeTouched(merged)), merged);
  }
});

test('12 random histories in every arrival schedule: passes over any run of batches give the intervals of deriving each batch, row for row', async () => {
  const ledger = openLedgerDb('sqlite::memory:');
  try {
    await migrateToLatest(ledger);
    for (let seed = 301; seed <= 312; seed += 1) {
      const h = generateHistory(seed, 40);
      const passHere = rng(seed);
      // Besides the property's schedules, event order cut into small batches: a slot's later facts arrive in a
      // later batch than its earlier ones, so a pass over both must replay from the earlier.
      const cut: RawMessage[][] = [];
      for (const m of h.messages) {
        if (cut.length === 0 || passHere() < 0.5) cut.push([]);
        (cut.at(-1) as RawMessage[]).push(m);
      }
      for (const [k, s] of [...schedules(h, seed), { name: 'event order in small batches', batches: cut }].entries()) {
        const now = `now-${seed}-${k}`;
        const later = `later-${seed}-${k}`;
        for (const batch of s.batches) {
          await applyBatch(ledger.db, batch.map((m) => decodeRaw(m, now)));
          await applyBatch(ledger.db, batch.map((m) => decodeRaw(m, later)), undefined, { deferDerivation: { at: 0 } });
          if (passHere() < 0.4) await derivePass(ledger.db, { cloud: later });
        }
        await deriveAll(ledger.db, { cloud: later });
        assert.deepEqual(await intervalsOf(ledger.db, later), await intervalsOf(ledger.db, now), `seed ${seed}, ${s.name}`);
      }
    }
    assert.equal((await pendingDerivation(ledger.db)).rows, 0);
  } finally {
    await ledger.close();
  }
});

test('batches left to derive when the ledger is closed are derived after it is opened again, and a pass only takes its own cloud', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'qop-derive-'));
  try {
    const url = `sqlite:${join(dir, 'ledger.sqlite')}`;
    const h = generateHistory(7, 30);
    let ledger = openLedgerDb(url);
    await migrateToLatest(ledger);
    await applyBatch(ledger.db, h.messages.map((m) => decodeRaw(m, 'now')));
    for (const cloud of ['a', 'b']) await applyBatch(ledger.db, h.messages.map((m) => decodeRaw(m, cloud)), undefined, { deferDerivation: { at: 5_000 } });
    assert.deepEqual(await pendingDerivation(ledger.db, 'a'), { rows: 1, oldestAt: 5_000 });
    assert.deepEqual(await intervalsOf(ledger.db, 'a'), []);
    await ledger.close();

    ledger = openLedgerDb(url);
    await migrateToLatest(ledger);
    assert.equal(await deriveAll(ledger.db, { cloud: 'a' }), 1);
    assert.deepEqual(await intervalsOf(ledger.db, 'a'), await intervalsOf(ledger.db, 'now'));
    assert.deepEqual(await intervalsOf(ledger.db, 'b'), [], 'the other cloud is left to its own passes');
    assert.deepEqual(await pendingDerivation(ledger.db), { rows: 1, oldestAt: 5_000 });
    await deriveAll(ledger.db);
    assert.deepEqual(await intervalsOf(ledger.db, 'b'), await intervalsOf(ledger.db, 'now'));
    assert.deepEqual(await pendingDerivation(ledger.db), { rows: 0, oldestAt: null });
    await ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a pass that fails derives nothing and leaves every row it read for the next one', async () => {
  const ledger = openLedgerDb('sqlite::memory:');
  try {
    await migrateToLatest(ledger);
    const h = generateHistory(11, 30);
    await applyBatch(ledger.db, h.messages.map((m) => decodeRaw(m, 'now')));
    await applyBatch(ledger.db, h.messages.map((m) => decodeRaw(m, 'c')), undefined, { deferDerivation: { at: 1 } });
    await ledger.db.insertInto('derive_pending').values({ cloud: 'c', recorded_at: 2, touched: '{"slots":"not a list"}' }).execute();
    await assert.rejects(derivePass(ledger.db, { cloud: 'c' }));
    assert.equal((await pendingDerivation(ledger.db, 'c')).rows, 2);
    assert.deepEqual(await intervalsOf(ledger.db, 'c'), []);
    await ledger.db.deleteFrom('derive_pending').where('recorded_at', '=', 2).execute();
    await deriveAll(ledger.db, { cloud: 'c' });
    assert.deepEqual(await intervalsOf(ledger.db, 'c'), await intervalsOf(ledger.db, 'now'));
  } finally {
    await ledger.close();
  }
});
