// The one migration set and the interval lookup behave the same on the
// embedded SQLite ledger and on PostgreSQL.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompiledQuery, sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import { migrationProvider } from '../../operator/ledger/migrations.ts';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { traceAddress, traceQuery } from '../../operator/ledger/trace.ts';
import { holderOf, type HolderSource } from '../../operator/ledger/trace-holder.ts';
import { unpackRows, type PackedRow } from '../../operator/ledger/trace-packed.ts';
import { createTestDatabase, type TestDatabase } from '../support/pg.ts';
import { openLedger } from '../support/ledger-engines.ts';
import { INSTANCE_COPIES } from '../../operator/ledger/instance-copies.ts';

interface Target {
  name: string;
  open(): Promise<{ url: string; cleanup(): Promise<void> }>;
}

const targets: Target[] = [
  {
    name: 'sqlite (node:sqlite)',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'qop-ledger-'));
      return { url: `sqlite:${join(dir, 'ledger.db')}`, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'postgres',
    async open() {
      const tdb: TestDatabase = await createTestDatabase();
      return { url: tdb.url, cleanup: () => tdb.drop() };
    },
  },
];

/** Whether the index on address_changes (cloud, holder_key) that 0024 replaces is there. */
async function hasHolderIndex(l: LedgerDb): Promise<boolean> {
  const r = l.engine === 'sqlite'
    ? await sql<{ n: number }>`SELECT count(*) AS n FROM sqlite_master WHERE name = 'address_changes_holder'`.execute(l.db)
    : await sql<{ n: string }>`SELECT count(*) AS n FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'address_changes_holder'`.execute(l.db);
  return Number(r.rows[0]?.n) > 0;
}

for (const target of targets) {
  describe(`ledger database on ${target.name}`, () => {
    let ledger: LedgerDb;
    let close = async () => {};

    before(async () => { ({ ledger, close } = await openLedger(target, { migrate: false })); });
    after(() => close());

    test('migrations apply once and a second run is a no-op', async () => {
      assert.deepEqual(await migrateToLatest(ledger), ['0001_init', '0002_quarantine', '0003_trace_index', '0004_trace_index_pg', '0005_ledger_facts', '0006_canonical_addresses', '0007_audit_keyed', '0008_capture_intents', '0009_isolation', '0010_cases', '0011_reconciliation', '0012_notification_bodies', '0013_transfers', '0014_trace_span_index', '0015_fact_order_identity_names', '0016_name_sources', '0017_trace_covering_indexes', '0018_trace_instance_copies', '0019_ingest_indexes', '0020_drop_instances_trace', '0021_instance_copy_statements', '0022_derive_pending', '0023_derivation_lock', '0024_holder_slots']);
      assert.deepEqual(await migrateToLatest(ledger), []);
      // 0020: the instances index of 0017 has no reader since 0018, so ingest no longer writes it.
      const indexes = ledger.engine === 'postgres'
        ? await sql<{ name: string }>`SELECT indexname AS name FROM pg_indexes WHERE tablename = 'instances'`.execute(ledger.db)
        : await sql<{ name: string }>`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'instances'`.execute(ledger.db);
      assert.ok(!indexes.rows.some((r) => r.name === 'instances_trace'), `instances_trace left: ${indexes.rows.map((r) => r.name).join(', ')}`);
    });

    test('migration 0006 rewrites addresses and their slot keys in the canonical form', async () => {
      const t = await target.open();
      const old = openLedgerDb(t.url);
      try {
        const { error } = await new Migrator({ db: old.db, provider: migrationProvider(old.engine) }).migrateTo('0005_ledger_facts');
        assert.equal(error, undefined);
        const iv = { cloud: 'c1', kind: 'fixed', network: 'n', port: 'p1', mac: null, instance_id: 'vm-a', project: 'p', valid_from: 1000, valid_to: null, opened_by: null, closed_by: null };
        await old.db.insertInto('address_intervals').values([
          { ...iv, slot: 'port:p1|2001:DB8:0:0::5', address: '2001:DB8:0:0::5' },
          { ...iv, slot: 'fip:f1', address: '2001:0db8::0:7', kind: 'floating' },
          { ...iv, slot: 'port:p1|10.0.0.5', address: '10.0.0.5' },
        ]).execute();
        await old.db.insertInto('address_changes').values({
          cloud: 'c1', slot: 'port:p1|2001:DB8:0:0::5', at: 1000, op: 'bind', holder_key: 'vm-a', address: '2001:DB8:0:0::5', kind: 'fixed',
          instance_id: 'vm-a', port: 'p1', mac: null, network: 'n', project: 'p', message_id: 'm1',
        }).execute();
        assert.ok((await migrateToLatest(old)).includes('0006_canonical_addresses'));
        const rows = await old.db.selectFrom('address_intervals').select(['slot', 'address']).orderBy('slot').execute();
        assert.deepEqual(rows, [{ slot: 'fip:f1', address: '2001:db8::7' }, { slot: 'port:p1|10.0.0.5', address: '10.0.0.5' }, { slot: 'port:p1|2001:db8::5', address: '2001:db8::5' }]);
        const changes = await old.db.selectFrom('address_changes').select(['slot', 'address']).execute();
        assert.deepEqual(changes, [{ slot: 'port:p1|2001:db8::5', address: '2001:db8::5' }]);
        // Both spellings now find it.
        for (const spelling of ['2001:db8::5', '2001:DB8:0:0:0:0:0:5']) assert.equal((await traceAddress(old.db, spelling, new Date(1500))).holders.length, 1);
      } finally {
        await old.close();
        await t.cleanup();
      }
    });

    test('migration 0024 records the (holder, slot) pairs of the facts there are, and drops the holder index', async () => {
      const t = await target.open();
      const old = openLedgerDb(t.url);
      try {
        const { error } = await new Migrator({ db: old.db, provider: migrationProvider(old.engine) }).migrateTo('0023_derivation_lock');
        assert.equal(error, undefined);
        const fact = { cloud: 'c1', op: 'bind', address: '10.0.0.5', kind: 'fixed', instance_id: null, port: null, mac: null, network: null, project: null, message_id: 'm' };
        await old.db.insertInto('address_changes').values([
          { ...fact, slot: 'port:p1|10.0.0.5', at: 1, holder_key: 'vm-a' },
          { ...fact, slot: 'port:p1|10.0.0.5', at: 2, holder_key: 'vm-a' },
          { ...fact, slot: 'port:p1|10.0.0.5', at: 3, holder_key: 'vm-b' },
          { ...fact, slot: 'fip:f1', at: 4, holder_key: 'p1', address: '192.0.2.1', kind: 'floating' },
          { ...fact, slot: 'fip:f1', at: 5, op: 'release_any', holder_key: '', address: '192.0.2.1', kind: 'floating' },
          { ...fact, cloud: 'c2', slot: 'port:p1|10.0.0.5', at: 1, holder_key: 'vm-a' },
        ]).execute();
        assert.deepEqual(await migrateToLatest(old), ['0024_holder_slots']);
        const pairs = await old.db.selectFrom('holder_slots').select(['cloud', 'holder_key', 'slot']).orderBy('cloud').orderBy('holder_key').orderBy('slot').execute();
        assert.deepEqual(pairs, [
          { cloud: 'c1', holder_key: 'p1', slot: 'fip:f1' },
          { cloud: 'c1', holder_key: 'vm-a', slot: 'port:p1|10.0.0.5' },
          { cloud: 'c1', holder_key: 'vm-b', slot: 'port:p1|10.0.0.5' },
          { cloud: 'c2', holder_key: 'vm-a', slot: 'port:p1|10.0.0.5' },
        ]);
        assert.equal(await hasHolderIndex(old), false);
      } finally {
        await old.close();
        await t.cleanup();
      }
    });

    test('a ledger that already has later migrations still takes 0005 and 0006', async () => {
      const t = await target.open();
      const l = openLedgerDb(t.url);
      try {
        const all = await migrationProvider(l.engine).getMigrations();
        const without = Object.fromEntries(Object.entries(all).filter(([name]) => !name.startsWith('0005') && !name.startsWith('0006')));
        const { error } = await new Migrator({ db: l.db, provider: { getMigrations: async () => without } }).migrateToLatest();
        assert.equal(error, undefined);
        assert.deepEqual(await migrateToLatest(l), ['0005_ledger_facts', '0006_canonical_addresses']);
        // 0005 after 0024 leaves out the index that 0024's pairs replace.
        assert.equal(await hasHolderIndex(l), false);
      } finally {
        await l.close();
        await t.cleanup();
      }
    });

    test('a notification is unique per cloud and message id', async () => {
      const row = {
        cloud: 'c1', source: 'nova', message_id: 'm-1', id_kind: 'message-id', event_type: 'instance.create.end',
        publisher: 'nova-compute:h1', occurred_at: 1_700_000_000_000, received_at: 1_700_000_000_500, outcome: 'applied', body_sha256: null,
      };
      await ledger.db.insertInto('notifications').values(row).execute();
      const again = await ledger.db.insertInto('notifications').values(row).onConflict((oc) => oc.columns(['cloud', 'message_id']).doNothing()).executeTakeFirst();
      assert.equal(Number(again.numInsertedOrUpdatedRows ?? 0n), 0);
      await assert.rejects(ledger.db.insertInto('notifications').values(row).execute());
      await ledger.db.insertInto('notifications').values({ ...row, cloud: 'c2' }).execute();
      const all = await ledger.db.selectFrom('notifications').select(['cloud', 'occurred_at']).orderBy('cloud').execute();
      assert.deepEqual(all, [{ cloud: 'c1', occurred_at: 1_700_000_000_000 }, { cloud: 'c2', occurred_at: 1_700_000_000_000 }]);
    });

    test('the interval lookup answers who held an address at a time, [from, to)', async () => {
      const base = { cloud: 'c1', slot: 'fip:1', address: '188.185.194.218', kind: 'floating', network: 'ext', mac: null, project: 'p', opened_by: null, closed_by: null };
      await ledger.db.insertInto('address_intervals').values([
        { ...base, port: 'port-a', instance_id: 'vm-a', valid_from: 1000, valid_to: 2000 },
        { ...base, port: 'port-b', instance_id: 'vm-b', valid_from: 2000, valid_to: null },
      ]).execute();
      const at = async (t: number) =>
        (await ledger.db.selectFrom('address_intervals').select('instance_id')
          .where('address', '=', '188.185.194.218').where('valid_from', '<=', t)
          .where((eb) => eb.or([eb('valid_to', 'is', null), eb('valid_to', '>', t)]))
          .execute()).map((r) => r.instance_id);
      assert.deepEqual(await at(999), []);
      assert.deepEqual(await at(1000), ['vm-a']);
      assert.deepEqual(await at(1999), ['vm-a']);
      assert.deepEqual(await at(2000), ['vm-b']);
      assert.deepEqual(await at(9_999_999_999_999), ['vm-b']);
      const traced = async (t: number) => (await traceAddress(ledger.db, '188.185.194.218', new Date(t))).holders.map((h) => h.instance?.id);
      assert.deepEqual(await traced(999), []);
      assert.deepEqual(await traced(1999), ['vm-a']);
      assert.deepEqual(await traced(2000), ['vm-b']);
      assert.deepEqual(await traced(9_999_999_999_999), ['vm-b']);
    });

    test("an interval carries its instance's columns, whichever is written first and however the instance changes later (0018)", async () => {
      const address = '188.185.194.77';
      const base = { cloud: 'c1', address, kind: 'floating', network: 'ext', mac: null, project: 'p', opened_by: null, closed_by: null, valid_to: null };
      const instance = (id: string, host: string) => ({
        cloud: 'c1', instance_id: id, name: `${id}-name`, project: 'p', user_id: 'u', host, image: null, flavor: null, state: 'active',
        created_at: 500, deleted_at: null, deleted_by: null, first_seen_at: 500, last_event_at: 500,
      });
      const seen = async () => (await traceAddress(ledger.db, address, new Date(5000))).holders.map((h) => `${h.instance?.id}:${h.instance?.name}:${h.instance?.host}:${h.instance?.deletedAt}`);
      // Before its instance: no name yet.
      await ledger.db.insertInto('address_intervals').values({ ...base, slot: 'fip:x1', port: 'port-x1', instance_id: 'vm-x1', valid_from: 1000 }).execute();
      assert.deepEqual(await seen(), ['vm-x1:null:null:null']);
      await ledger.db.insertInto('instances').values(instance('vm-x1', 'h1')).execute();
      // After its instance.
      await ledger.db.insertInto('instances').values(instance('vm-x2', 'h2')).execute();
      await ledger.db.insertInto('address_intervals').values({ ...base, slot: 'fip:x2', port: 'port-x2', instance_id: 'vm-x2', valid_from: 2000 }).execute();
      assert.deepEqual(await seen(), ['vm-x1:vm-x1-name:h1:null', 'vm-x2:vm-x2-name:h2:null']);
      // An upsert that changes a column, an update, names.
      await ledger.db.insertInto('instances').values(instance('vm-x1', 'h9')).onConflict((oc) => oc.columns(['cloud', 'instance_id']).doUpdateSet({ host: 'h9' })).execute();
      await ledger.db.updateTable('instances').set({ deleted_at: 4000, user_name: 'alice', user_name_source: 'keystone', user_name_at: 3000, gone_after: 100, gone_by: 200 })
        .where('instance_id', '=', 'vm-x2').execute();
      assert.deepEqual(await seen(), ['vm-x1:vm-x1-name:h9:null', 'vm-x2:vm-x2-name:h2:1970-01-01T00:00:04.000Z']);
      const x2 = (await traceAddress(ledger.db, address, new Date(5000))).holders[1]?.instance;
      assert.deepEqual({ user: x2?.user, userName: x2?.userName, goneBetween: x2?.goneBetween }, { user: 'u', userName: 'alice', goneBetween: ['1970-01-01T00:00:00.100Z', '1970-01-01T00:00:00.200Z'] });
      await ledger.db.deleteFrom('address_intervals').where('address', '=', address).execute();
      await ledger.db.deleteFrom('instances').where('instance_id', 'in', ['vm-x1', 'vm-x2']).execute();
    });

    test('the packed trace rows (trace-packed.ts) give the plain rows\' answer, and step aside where they cannot be undone exactly', async () => {
      const address = '10.0.0.9';
      const base = { cloud: 'c1', address, kind: 'fixed', network: 'n', mac: 'fa:16:3e:00:00:01', project: 'p', opened_by: null, closed_by: null };
      const instance = (id: string, over: Record<string, string | number | null>) => ({
        cloud: 'c1', instance_id: id, name: `${id}-name`, project: 'q', user_id: 'u', host: 'h', image: null, flavor: null, state: 'active',
        created_at: 500, deleted_at: null, deleted_by: null, first_seen_at: 500, last_event_at: 500, ...over,
      });
      const plainAnswer = async (t: number) => (await ledger.db.executeQuery(traceQuery(ledger.db, address, new Date(t), undefined, true))).rows
        .map((r) => holderOf(r as HolderSource, t));
      const packedRows = async (t: number) => (await ledger.db.executeQuery(traceQuery(ledger.db, address, new Date(t)))).rows as PackedRow[];
      const same = async (t: number) => assert.deepEqual((await traceAddress(ledger.db, address, new Date(t))).holders, await plainAnswer(t));
      // Every column set or null somewhere: names with their sources, gone windows, uncertain bounds, no instance, an instance without a row.
      await ledger.db.insertInto('instances').values([
        instance('vm-1', {}),
        instance('vm-2', { name: null, project: null, host: null, deleted_at: 9000, user_name: 'alice', user_name_source: 'keystone', user_name_at: 3000,
          project_name: 'proj', project_name_source: 'keystone', project_name_at: 3100, gone_after: 8000, gone_by: 9000 }),
      ]).execute();
      await ledger.db.insertInto('address_intervals').values([
        { ...base, slot: 'port:p1|10.0.0.9', port: 'p1', instance_id: 'vm-1', valid_from: 1000, valid_to: null },
        { ...base, slot: 'port:p2|10.0.0.9', port: 'p2', network: 'n2', instance_id: 'vm-2', valid_from: 1500, valid_to: 9000, from_certain: 1200, to_certain: 8500 },
        { ...base, slot: 'port:p3|10.0.0.9', port: 'p3', network: null, mac: null, project: null, instance_id: null, valid_from: 2000, valid_to: 7000 },
        { ...base, slot: 'port:p4|10.0.0.9', port: 'p4', network: 'n4', instance_id: 'vm-none', valid_from: 2500, valid_to: null },
      ]).execute();
      for (const t of [1100, 1300, 5000, 8700, 9500]) await same(t);
      if (ledger.engine === 'postgres') {
        assert.equal((await packedRows(5000)).length, 4);
        assert.notEqual(unpackRows(await packedRows(5000)), undefined);
      }
      // A name that is the empty text (a null would read the same packed) and one holding the separator: the plain rows answer.
      for (const name of ['', 'a\x1fb']) {
        await ledger.db.updateTable('instances').set({ name }).where('instance_id', '=', 'vm-1').execute();
        if (ledger.engine === 'postgres') assert.equal(unpackRows(await packedRows(5000)), undefined);
        await same(5000);
        assert.equal((await traceAddress(ledger.db, address, new Date(5000))).holders[0]?.instance?.name, name);
      }
      await ledger.db.deleteFrom('address_intervals').where('address', '=', address).execute();
      await ledger.db.deleteFrom('instances').where('instance_id', 'in', ['vm-1', 'vm-2']).execute();
    });

    test("one statement writing many instances keeps each interval's copies: new, changed, unchanged, re-keyed and deleted (0021)", async () => {
      const instance = (id: string, host: string, name = `${id}-name`) => ({
        cloud: 'c2', instance_id: id, name, project: 'p', user_id: 'u', host, image: null, flavor: null, state: 'active',
        created_at: 500, deleted_at: null, deleted_by: null, first_seen_at: 500, last_event_at: 500,
      });
      const ids = ['m1', 'm2', 'm3', 'm4', 'm5', 'm6'];
      await ledger.db.insertInto('address_intervals').values(ids.flatMap((id, i) => [0, 1].map((k) => ({
        cloud: 'c2', slot: `fip:${id}-${k}`, address: `10.9.${i}.${k}`, kind: 'fixed', network: 'n', port: null, mac: null, instance_id: id, project: 'p',
        opened_by: null, closed_by: null, valid_from: 1000, valid_to: null,
      })))).execute();
      // Every interval's copies equal its instance's columns, null where it has none.
      const mismatches = async () => {
        const r = await sql<{ slot: string }>`SELECT a.slot FROM address_intervals AS a LEFT JOIN instances AS i ON i.cloud = a.cloud AND i.instance_id = a.instance_id
          WHERE a.cloud = 'c2' AND NOT (${sql.join(INSTANCE_COPIES.map((c) => sql`a.${sql.ref(c.copy)} IS NOT DISTINCT FROM i.${sql.ref(c.column)}`), sql` AND `)})`.execute(ledger.db);
        return r.rows.map((x) => x.slot).sort();
      };
      const copied = async (id: string) => (await ledger.db.selectFrom('address_intervals').select(['instance_name', 'instance_host']).where('cloud', '=', 'c2').where('instance_id', '=', id).execute())
        .map((r) => `${r.instance_name}@${r.instance_host}`);
      const upsert = (rows: ReturnType<typeof instance>[]) => ledger.db.insertInto('instances').values(rows)
        .onConflict((oc) => oc.columns(['cloud', 'instance_id']).doUpdateSet({ host: sql.ref('excluded.host'), name: sql.ref('excluded.name'), last_event_at: sql.ref('excluded.last_event_at') })).execute();
      await upsert(ids.slice(0, 4).map((id) => instance(id, 'h1')));
      assert.deepEqual(await mismatches(), []);
      // One statement: m1 changed, m2 unchanged but rewritten, m5 new; m3 and m4 untouched.
      await upsert([instance('m1', 'h2'), { ...instance('m2', 'h1'), last_event_at: 900 }, instance('m5', 'h5')]);
      assert.deepEqual(await mismatches(), []);
      assert.deepEqual(await copied('m1'), ['m1-name@h2', 'm1-name@h2']);
      assert.deepEqual(await copied('m5'), ['m5-name@h5', 'm5-name@h5']);
      // An update of several rows, one of them re-keyed: m4's intervals lose their instance, m6's gain one.
      await ledger.db.updateTable('instances').set({ name: 'renamed' }).where('cloud', '=', 'c2').where('instance_id', 'in', ['m2', 'm3']).execute();
      await ledger.db.updateTable('instances').set({ instance_id: 'm6' }).where('cloud', '=', 'c2').where('instance_id', '=', 'm4').execute();
      assert.deepEqual(await mismatches(), []);
      assert.deepEqual(await copied('m3'), ['renamed@h1', 'renamed@h1']);
      assert.deepEqual(await copied('m4'), ['null@null', 'null@null']);
      assert.deepEqual(await copied('m6'), ['m4-name@h1', 'm4-name@h1']);
      await ledger.db.deleteFrom('instances').where('cloud', '=', 'c2').where('instance_id', 'in', ['m1', 'm6']).execute();
      assert.deepEqual(await mismatches(), []);
      assert.deepEqual(await copied('m1'), ['null@null', 'null@null']);
      await ledger.db.deleteFrom('address_intervals').where('cloud', '=', 'c2').execute();
      await ledger.db.deleteFrom('instances').where('cloud', '=', 'c2').execute();
    });

    test('the trace index answers the length class, the start window and the open-or-later check inside the index', async () => {
      if (ledger.engine === 'postgres') {
        // The query traceAddress sends; seqscan off because the table is tiny.
        const q = traceQuery(ledger.db, '188.185.194.218', new Date(1500));
        const plan = await ledger.db.connection().execute(async (c) => {
          await sql`SET enable_seqscan = off`.execute(c);
          await sql`SET enable_bitmapscan = off`.execute(c);
          const r = await c.executeQuery<{ 'QUERY PLAN': string }>(CompiledQuery.raw(`EXPLAIN ${q.sql}`, [...q.parameters]));
          await sql`RESET enable_seqscan`.execute(c);
          await sql`RESET enable_bitmapscan`.execute(c);
          return r.rows.map((x) => x['QUERY PLAN']).join('\n');
        });
        assert.match(plan, /Index Cond: .*CASE WHEN .*valid_from > .*COALESCE\(valid_to, '9223372036854775807'::bigint\)\)? > /, plan);
        // 0018: the holders' instances come from their intervals' copies, not from instances.
        assert.doesNotMatch(plan, /on instances/, plan);
        assert.doesNotMatch(plan, /Seq Scan on address_intervals|Filter: .*valid_to/, plan);
      } else {
        const q = traceQuery(ledger.db, '188.185.194.218', new Date(1500));
        const plan = (await ledger.db.executeQuery(CompiledQuery.raw(`EXPLAIN QUERY PLAN ${q.sql}`, [...q.parameters]))).rows
          .map((r) => (r as { detail: string }).detail).join('\n');
        // Covering (0017), with the instance's columns copied onto the interval (0018): a holder is one index entry.
        assert.match(plan, /SEARCH a USING COVERING INDEX address_intervals_trace \(address=\? AND <expr>=\? AND valid_from>\? AND valid_from<\?\)/, plan);
        assert.doesNotMatch(plan, /instances/, plan);
      }
    });
  });
}
