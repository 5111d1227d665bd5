// `trace ip` without the query builder (ledger/trace-direct.ts) gives exactly
// traceAddress's answer on generated histories, or steps aside (undefined) for
// what it does not handle: routers' SNAT addresses, a ledger missing a
// migration, no ledger file yet.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrateToLatest, openLedgerDb, type LedgerDb } from '../../operator/ledger/db.ts';
import { applyBatch } from '../../operator/ledger/apply.ts';
import { traceAddress } from '../../operator/ledger/trace.ts';
import { MIGRATION_NAMES, OPEN_END_SQL, traceDirect } from '../../operator/ledger/trace-direct.ts';
import { migrationProvider, OPEN_END } from '../../operator/ledger/migrations.ts';
import { decodeHistory, generateHistory } from '../support/histories.ts';

describe('trace ip without the query builder', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qop-trace-direct-'));
  const url = `sqlite:${join(dir, 'ledger.db')}`;
  let ledger: LedgerDb;
  const queries: Array<{ cloud: string; address: string; at: number }> = [];
  before(async () => {
    ledger = openLedgerDb(url);
    await migrateToLatest(ledger);
    for (let seed = 1; seed <= 6; seed++) {
      const h = generateHistory(seed, 40);
      const cloud = `g${seed}`;
      await applyBatch(ledger.db, decodeHistory(h, cloud));
      for (const q of h.queries) queries.push({ cloud, ...q });
    }
  });
  after(async () => {
    await ledger.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the migrations it requires are the ledger\'s, and its open end is the trace index\'s', async () => {
    for (const engine of ['sqlite', 'postgres'] as const) assert.deepEqual(Object.keys(await migrationProvider(engine).getMigrations()).sort(), [...MIGRATION_NAMES].sort());
    assert.equal(OPEN_END_SQL, OPEN_END.toString());
  });

  test('on generated histories, every answer is traceAddress\'s, or none where routers are involved', async () => {
    let answered = 0;
    let stepped = 0;
    // Every third question, asked in its cloud and in all: each opens the file, as a process would.
    for (const [i, q] of queries.entries()) {
      if (i % 3 !== 0) continue;
      for (const cloud of [q.cloud, undefined]) {
        const at = new Date(q.at);
        const full = await traceAddress(ledger.db, q.address, at, cloud);
        const direct = await traceDirect(url, q.address, at, cloud);
        if (full.holders.some((h) => h.kind === 'router-gateway')) {
          assert.equal(direct, undefined, `${q.address} at ${at.toISOString()}`);
          stepped += 1;
        } else {
          assert.deepEqual(direct, full, `${q.address} at ${at.toISOString()} in ${cloud ?? 'every cloud'}`);
          answered += 1;
        }
      }
    }
    // The histories exercise both branches.
    assert.ok(answered > 50 && stepped > 0, `${answered} answered, ${stepped} stepped aside`);
  });

  test('steps aside for no ledger file, an in-memory ledger, a missing migration, an unknown URL', async () => {
    const at = new Date('2026-05-01T12:00:00Z');
    assert.equal(await traceDirect(`sqlite:${join(dir, 'none.db')}`, '10.0.0.5', at), undefined);
    assert.equal(await traceDirect('sqlite::memory:', '10.0.0.5', at), undefined);
    assert.equal(await traceDirect('mysql://x', '10.0.0.5', at), undefined);
    const behindUrl = `sqlite:${join(dir, 'behind.db')}`;
    const behind = openLedgerDb(behindUrl);
    try {
      await migrateToLatest(behind);
      assert.deepEqual(await traceDirect(behindUrl, '10.0.0.5', at), { address: '10.0.0.5', at: at.toISOString(), holders: [] });
      await behind.db.deleteFrom('kysely_migration' as never).where('name' as never, '=', '0010_cases' as never).execute();
      assert.equal(await traceDirect(behindUrl, '10.0.0.5', at), undefined);
    } finally {
      await behind.close();
    }
  });
});
