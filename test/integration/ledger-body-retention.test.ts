// Notification bodies expire on a retention of their own, on both engines:
// the notifications rows, their digests and the derived intervals stay; held
// bodies stay; every expiry is in the audit trail.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import { openLedgerDb, migrateToLatest, type LedgerDb } from '../../operator/ledger/db.ts';
import { migrationProvider } from '../../operator/ledger/migrations.ts';
import { applyBatch } from '../../operator/ledger/apply.ts';
import { traceAddress } from '../../operator/ledger/trace.ts';
import { pruneBodies, retentionFromDays, BodyRetentionError } from '../../operator/ledger/body-retention.ts';
import { ensureBodyPartitions } from '../../operator/ledger/body-partitions.ts';
import { upsertHold } from '../../operator/capture/holds.ts';
import type { DecodedNotification } from '../../operator/domain/events.ts';
import { ledgerEngines as engines, openLedger } from '../support/ledger-engines.ts';
import { fixed, instanceEvent, notification } from '../support/events.ts';


const day = (iso: string) => new Date(`${iso}T12:00:00Z`);
const NOW = day('2026-06-15');
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

for (const engine of engines) {
  describe(`notification body retention on ${engine.name}`, () => {
    let ledger: LedgerDb;
    let close = async () => {};
    before(async () => { ({ ledger, close } = await openLedger(engine)); });
    after(() => close());

    const boot = (id: string, address: string, when: Date): DecodedNotification =>
      notification([instanceEvent('create.end', { id, project: `p-${id}` }, [fixed(address, `port-${id}`)])], when, { cloud: 'c1', messageId: `m-${id}-${when.getTime()}` });
    const bodies = async () => (await ledger.db.selectFrom('notification_bodies').select('notification_id').orderBy('notification_id').execute()).map((r) => r.notification_id);
    const audits = () => ledger.db.selectFrom('audit').select(['action', 'details']).where('action', '=', 'notification-bodies.pruned').execute();

    test('bodies past the retention go, held ones and everything else stay, and the trail says so', async () => {
      const ns = [
        boot('vm-jan', '10.0.0.1', day('2026-01-10')),
        boot('vm-held', '10.0.0.2', day('2026-01-11')),
        boot('vm-feb', '10.0.0.3', day('2026-02-10')),
        boot('vm-apr', '10.0.0.4', day('2026-04-10')),
        boot('vm-jun', '10.0.0.5', day('2026-06-01')),
      ];
      await applyBatch(ledger.db, ns.map((n) => ({ notification: n, body: `{"id":"${n.messageId}"}` })));
      // Months before the partitions existed went to the default partition; creating them moves those rows in.
      if (ledger.engine === 'postgres') await ensureBodyPartitions(ledger.db as never, day('2026-01-01').getTime(), NOW.getTime());
      await upsertHold(ledger.db, { name: 'case-1', caseId: 'C-1', reason: 'abuse', selector: { instances: ['vm-held'] }, actor: 'sec' }, day('2026-06-01'));
      const before = await traceAddress(ledger.db, '10.0.0.1', day('2026-03-01'), 'c1');
      assert.equal(before.holders[0]?.instance?.id, 'vm-jan');
      const ids = await ledger.db.selectFrom('notifications').select(['id', 'message_id']).orderBy('id').execute();
      assert.equal(ids.length, 5);

      const keepMs = retentionFromDays(90);
      const dry = await pruneBodies(ledger.db, ledger.engine, { keepMs, now: NOW, actor: 'sec', dryRun: true });
      assert.deepEqual([dry.removed, dry.keptUnderHold], [2, 1]);
      assert.equal((await bodies()).length, 5, 'a dry run deletes nothing');
      assert.equal((await audits()).length, 0, 'a dry run records nothing');

      const r = await pruneBodies(ledger.db, ledger.engine, { keepMs, now: NOW, actor: 'sec' });
      assert.deepEqual([r.removed, r.keptUnderHold], [2, 1]);
      // vm-jan and vm-feb's bodies went; vm-held's (held), vm-apr's and vm-jun's stay.
      assert.deepEqual(await bodies(), [ids[1]!.id, ids[3]!.id, ids[4]!.id]);
      if (ledger.engine === 'postgres') {
        assert.deepEqual(r.cutoff.toISOString(), '2026-03-01T00:00:00.000Z', 'whole months only');
        assert.deepEqual(r.partitionsDropped, ['notification_bodies_y2026m01', 'notification_bodies_y2026m02']);
      } else {
        assert.equal(r.cutoff.getTime(), NOW.getTime() - keepMs);
      }
      // The rows, their digests and what was derived from them stay.
      const rows = await ledger.db.selectFrom('notifications').select(['message_id', 'body_sha256']).orderBy('id').execute();
      assert.deepEqual(rows.map((x) => x.body_sha256), ns.map((n) => sha(`{"id":"${n.messageId}"}`)));
      assert.deepEqual(await traceAddress(ledger.db, '10.0.0.1', day('2026-03-01'), 'c1'), before);
      const trail = await audits();
      assert.equal(trail.length, 1);
      const details = JSON.parse(trail[0]!.details) as { removed: number; keptUnderHold: number; retentionDays: number; cutoff: string };
      assert.deepEqual([details.removed, details.keptUnderHold, details.retentionDays, details.cutoff], [2, 1, 90, r.cutoff.toISOString()]);

      const again = await pruneBodies(ledger.db, ledger.engine, { keepMs, now: NOW, actor: 'sec' });
      assert.equal(again.removed, 0);
      assert.equal((await audits()).length, 1, 'nothing removed, nothing recorded');
    });

    test('a retention under one day is refused', () => {
      assert.throws(() => retentionFromDays(0.5), BodyRetentionError);
      assert.throws(() => retentionFromDays(Number.NaN), BodyRetentionError);
    });

    test('bodies of a ledger from before 0012 move to their table, and get their digest before they expire', async () => {
      const t = await engine.open();
      const old = openLedgerDb(t.url);
      try {
        const all = await migrationProvider(old.engine).getMigrations();
        const upTo = Object.fromEntries(Object.entries(all).filter(([name]) => name < '0012'));
        const { error } = await new Migrator({ db: old.db, provider: { getMigrations: async () => upTo } }).migrateToLatest();
        assert.equal(error, undefined);
        await sql`INSERT INTO notifications (cloud, source, message_id, id_kind, event_type, publisher, occurred_at, received_at, outcome, body)
          VALUES ('c1', 'nova', 'm-old', 'message-id', 'compute.instance.create.end', NULL, ${day('2026-01-05').getTime()}, ${day('2026-01-05').getTime()}, 'applied', '{"old":true}')`.execute(old.db);
        assert.ok((await migrateToLatest(old)).includes('0012_notification_bodies'));
        const moved = await old.db.selectFrom('notification_bodies').select(['body', 'received_at']).execute();
        assert.deepEqual(moved, [{ body: '{"old":true}', received_at: day('2026-01-05').getTime() }]);
        const r = await pruneBodies(old.db, old.engine, { keepMs: retentionFromDays(30), now: NOW, actor: 'sec' });
        assert.equal(r.removed, 1);
        const row = await old.db.selectFrom('notifications').select('body_sha256').executeTakeFirstOrThrow();
        assert.equal(row.body_sha256, sha('{"old":true}'));
      } finally {
        await old.close();
        await t.cleanup();
      }
    });
  });
}
