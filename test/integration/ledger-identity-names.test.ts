// The cache of Keystone names on both engines: which ids a pass reads, how a
// read replaces a cached one, and which instances take the names (none where
// a newer notification named the owner).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { applyNames, namesToRead, recordNames } from '../../operator/ledger/identity-names.ts';
import { createTestDatabase } from '../support/pg.ts';
import { migrationProvider } from '../../operator/ledger/migrations.ts';
import { Migrator } from 'kysely/migration';
import { sql } from 'kysely';

const engines: Array<{ name: string; open: () => Promise<{ url: string; cleanup: () => Promise<void> }> }> = [
  { name: 'sqlite', open: async () => ({ url: 'sqlite::memory:', cleanup: async () => undefined }) },
  { name: 'postgres', open: async () => { const t = await createTestDatabase(); return { url: t.url, cleanup: () => t.drop() }; } },
];

for (const engine of engines) {
  describe(`identity names on ${engine.name}`, () => {
    let ledger: LedgerDb;
    let cleanup: () => Promise<void>;
    before(async () => {
      const t = await engine.open();
      cleanup = t.cleanup;
      ledger = openLedgerDb(t.url);
      await migrateToLatest(ledger);
    });
    after(async () => {
      await ledger.close();
      await cleanup();
    });

    test('reads what is unnamed or stale, names instances, and keeps a newer notification\'s name', async () => {
      const row = (id: string, user: string, userName: string | null, lastEventAt: number) => ({
        cloud: 'os', instance_id: id, name: id, project: 'p-1', user_id: user, host: 'h', image: null, flavor: null, state: 'active', created_at: 1_000,
        deleted_at: null, deleted_by: null, first_seen_at: 1_000, last_event_at: lastEventAt, user_name: userName, project_name: null,
      });
      await ledger.db.insertInto('instances').values([row('i-1', 'u-1', null, 1_000), row('i-2', 'u-2', 'bob-from-nova', 5_000), row('i-3', 'u-1', null, 2_000)]).execute();
      const wanted = await namesToRead(ledger.db, 'os', 10_000, 3_600_000, 10);
      assert.deepEqual(wanted.map((w) => `${w.kind}:${w.id}`).sort(), ['project:p-1', 'user:u-1']);
      assert.equal((await namesToRead(ledger.db, 'os', 10_000, 3_600_000, 1)).length, 1, 'at most the limit');

      await recordNames(ledger.db, 'os', [{ kind: 'user', id: 'u-1', name: 'alice' }, { kind: 'project', id: 'p-1', name: 'genomics' }, { kind: 'user', id: 'u-2', name: 'bob' }], 4_000);
      assert.equal(await applyNames(ledger.db, 'os'), 5, 'two users and three projects named');
      const names = async () => (await ledger.db.selectFrom('instances').select(['instance_id', 'user_name', 'project_name']).where('cloud', '=', 'os').orderBy('instance_id').execute())
        .map((r) => [r.instance_id, r.user_name, r.project_name]);
      assert.deepEqual(await names(), [['i-1', 'alice', 'genomics'], ['i-2', 'bob-from-nova', 'genomics'], ['i-3', 'alice', 'genomics']]);
      // Where each name came from and when it was read, for the trace to show.
      const sources = async () => (await ledger.db.selectFrom('instances').select(['instance_id', 'user_name_source', 'user_name_at', 'project_name_source', 'project_name_at']).where('cloud', '=', 'os').orderBy('instance_id').execute())
        .map((r) => [r.instance_id, r.user_name_source, r.user_name_at, r.project_name_source, r.project_name_at]);
      assert.deepEqual(await sources(), [['i-1', 'keystone', 4_000, 'keystone', 4_000], ['i-2', null, null, 'keystone', 4_000], ['i-3', 'keystone', 4_000, 'keystone', 4_000]]);
      assert.deepEqual(await namesToRead(ledger.db, 'os', 10_000, 3_600_000, 10), [], 'nothing left to read within the TTL');

      // Read again later: replaces the cached row; the read is now newer than i-2's notification.
      await recordNames(ledger.db, 'os', [{ kind: 'user', id: 'u-2', name: 'bob' }, { kind: 'user', id: 'u-1', name: null }], 6_000);
      assert.equal(await applyNames(ledger.db, 'os'), 1);
      assert.deepEqual(await names(), [['i-1', 'alice', 'genomics'], ['i-2', 'bob', 'genomics'], ['i-3', 'alice', 'genomics']], 'an id now unknown keeps its last name');
      assert.deepEqual(await sources(), [['i-1', 'keystone', 4_000, 'keystone', 4_000], ['i-2', 'keystone', 6_000, 'keystone', 4_000], ['i-3', 'keystone', 4_000, 'keystone', 4_000]], 'the unknown id keeps its last read time');

      // The same name read again: the name stays, its read time moves.
      await recordNames(ledger.db, 'os', [{ kind: 'project', id: 'p-1', name: 'genomics' }], 7_000);
      assert.equal(await applyNames(ledger.db, 'os'), 3);
      assert.deepEqual(await sources(), [['i-1', 'keystone', 4_000, 'keystone', 7_000], ['i-2', 'keystone', 6_000, 'keystone', 7_000], ['i-3', 'keystone', 4_000, 'keystone', 7_000]]);
      assert.equal(await applyNames(ledger.db, 'os'), 0, 'nothing newer: nothing changes');
      const stale = await namesToRead(ledger.db, 'os', 7_000 + 3_600_001, 3_600_000, 10);
      assert.deepEqual(stale.map((w) => `${w.kind}:${w.id}`).sort(), ['project:p-1', 'user:u-1', 'user:u-2']);
      const cached = await ledger.db.selectFrom('identity_names').select(['kind', 'id', 'name']).where('cloud', '=', 'os').orderBy('kind').orderBy('id').execute();
      assert.deepEqual(cached.map((r) => [r.kind, r.id, r.name]), [['project', 'p-1', 'genomics'], ['user', 'u-1', null], ['user', 'u-2', 'bob']]);
    });

    test('migration 0016 marks names equal to a cached Keystone read as read from Keystone then, and leaves the rest without a source', async () => {
      const t = await engine.open();
      const l = openLedgerDb(t.url);
      try {
        const all = await migrationProvider(l.engine).getMigrations();
        const before = Object.fromEntries(Object.entries(all).filter(([name]) => name !== '0016_name_sources'));
        assert.equal((await new Migrator({ db: l.db, provider: { getMigrations: async () => before } }).migrateToLatest()).error, undefined);
        await sql`INSERT INTO instances (cloud, instance_id, project, user_id, first_seen_at, last_event_at, user_name, project_name)
          VALUES ('os', 'i-1', 'p-1', 'u-1', 1000, 1000, 'alice', 'genomics-from-nova'), ('os', 'i-2', 'p-1', 'u-2', 1000, 1000, NULL, NULL)`.execute(l.db);
        await recordNames(l.db, 'os', [{ kind: 'user', id: 'u-1', name: 'alice' }, { kind: 'project', id: 'p-1', name: 'genomics' }], 4_000);
        assert.deepEqual(await migrateToLatest(l), ['0016_name_sources']);
        const rows = await l.db.selectFrom('instances').select(['instance_id', 'user_name_source', 'user_name_at', 'project_name_source', 'project_name_at']).orderBy('instance_id').execute();
        assert.deepEqual(rows.map((r) => [r.instance_id, r.user_name_source, r.user_name_at, r.project_name_source, r.project_name_at]),
          [['i-1', 'keystone', 4_000, null, null], ['i-2', null, null, null, null]]);
      } finally {
        await l.close();
        await t.cleanup();
      }
    });
  });
}
