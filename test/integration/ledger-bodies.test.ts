// A batch's notification bodies, on both engines: each new notification is
// recorded with its body, byte for byte, and that body's digest; a body the
// ledger refuses fails the whole batch; on PostgreSQL, where the bodies go on
// a connection of their own beside the batch's transaction, a batch that fails
// after them leaves them without a notification, and the redelivery records
// each notification once, with its body; and batches at once, more than the
// pool's connections, do not wait for each other's connections.
import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { LedgerDb } from '../../operator/ledger/db.ts';
import { applyBatch, withBodyDigest, type Recorded } from '../../operator/ledger/apply.ts';
import { ledgerEngines as engines, openLedger } from '../support/ledger-engines.ts';
import { fixed, instanceEvent, notification } from '../support/events.ts';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const T0 = Date.parse('2026-12-05T10:00:00Z');

// Bodies of several scripts and lengths: what is stored must be the text as received, whichever way it was encoded.
const texts = ['{"a":1}', '{"name":"Jürgen Größe"}', '{"x":"日本語のテキスト"}', `{"emoji":"\u{1F600}","pad":"${'x'.repeat(3000)}"}`, '{"nul":"a\\u0000b"}'];

let counter = 0;
function batch(n: number, withDigest: boolean, marker = ''): Recorded[] {
  return Array.from({ length: n }, (_, i) => {
    counter += 1;
    const id = `vm-${counter}`;
    const r: Recorded = {
      notification: notification([instanceEvent('create.end', { id }, [fixed(`10.1.${Math.floor(counter / 250)}.${counter % 250}`, `port-${id}`)])], new Date(T0 + counter * 1000), { messageId: `m-${counter}` }),
      body: `${texts[i % texts.length]}${marker}`,
    };
    return withDigest ? withBodyDigest(r) : r;
  });
}

for (const engine of engines) {
  describe(`notification bodies on ${engine.name}`, () => {
    let ledger: LedgerDb;
    let close = async () => {};
    before(async () => { ({ ledger, close } = await openLedger(engine)); });
    after(() => close());
    beforeEach(async () => {
      await ledger.db.deleteFrom('notification_bodies').execute();
    });

    const stored = async () => {
      const rows = await ledger.db.selectFrom('notifications as n').leftJoin('notification_bodies as b', 'b.notification_id', 'n.id')
        .select(['n.id', 'n.message_id', 'n.body_sha256', 'b.body']).execute();
      return new Map(rows.map((r) => [r.message_id, r]));
    };
    const bodyCount = async () => Number((await sql<{ n: number | string }>`SELECT count(*) AS n FROM notification_bodies`.execute(ledger.db)).rows[0]?.n);
    const orphans = async () => Number((await sql<{ n: number | string }>`
      SELECT count(*) AS n FROM notification_bodies b WHERE NOT EXISTS (SELECT 1 FROM notifications n WHERE n.id = b.notification_id)`.execute(ledger.db)).rows[0]?.n);

    test('each new notification is recorded with its body as received and its digest, worked out ahead or not', async () => {
      for (const withDigest of [true, false]) {
        const rs = batch(23, withDigest);
        const outcomes = await applyBatch(ledger.db, rs, undefined, { deferDerivation: { at: T0 } });
        assert.deepEqual(outcomes, rs.map(() => 'applied'));
        const got = await stored();
        for (const r of rs) {
          const row = got.get(r.notification.messageId);
          assert.equal(row?.body, r.body, `body of ${r.notification.messageId}`);
          assert.equal(row?.body_sha256, sha(r.body));
        }
      }
      // A batch delivered again: duplicates, and no second body.
      const again = batch(5, true);
      await applyBatch(ledger.db, again, undefined, { deferDerivation: { at: T0 } });
      const before = await bodyCount();
      assert.deepEqual(await applyBatch(ledger.db, again, undefined, { deferDerivation: { at: T0 } }), again.map(() => 'duplicate'));
      assert.equal(await bodyCount(), before);
      assert.equal(await orphans(), 0);
    });

    test('a batch mixing new messages, messages recorded before and copies of its own: each body goes to its own notification', async () => {
      const old = batch(4, true);
      await applyBatch(ledger.db, old, undefined, { deferDerivation: { at: T0 } });
      const fresh = batch(6, true);
      const [f0, f1, f2, f3, f4, f5] = fresh as [Recorded, Recorded, Recorded, Recorded, Recorded, Recorded];
      const [o0, o1, , o3] = old as [Recorded, Recorded, Recorded, Recorded];
      // A later copy in the batch carries another body: the first copy's is the one recorded.
      const copy: Recorded = withBodyDigest({ notification: f1.notification, body: '{"copy":true}' });
      const mixed = [o0, f0, f1, o1, copy, f2, f3, o3, f4, f1, f5];
      const outcomes = await applyBatch(ledger.db, mixed, undefined, { deferDerivation: { at: T0 } });
      assert.deepEqual(outcomes, ['duplicate', 'applied', 'applied', 'duplicate', 'duplicate', 'applied', 'applied', 'duplicate', 'applied', 'duplicate', 'applied']);
      const got = await stored();
      for (const r of [...old, ...fresh]) {
        assert.equal(got.get(r.notification.messageId)?.body, r.body, `body of ${r.notification.messageId}`);
        assert.equal(got.get(r.notification.messageId)?.body_sha256, sha(r.body));
      }
      // Ids keep rising in the order of the batch, above every id before it.
      const ids = fresh.map((r) => Number(got.get(r.notification.messageId)?.id));
      const oldIds = old.map((r) => Number(got.get(r.notification.messageId)?.id));
      assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
      assert.ok(Math.min(...ids) > Math.max(...oldIds));
      assert.equal(await orphans(), 0);
    });

    test('ids are never reused: a batch after one that rolled back, or after the newest notifications were deleted, draws new ones', async () => {
      const first = batch(3, true);
      await applyBatch(ledger.db, first, undefined, { deferDerivation: { at: T0 } });
      const top = Math.max(...[...(await stored()).values()].map((r) => Number(r.id)));
      await assert.rejects(applyBatch(ledger.db, batch(5, true), async () => { throw new Error('rolled back'); }, { deferDerivation: { at: T0 } }));
      // The newest rows go (as a retention would): their ids stay taken.
      await ledger.db.deleteFrom('notification_bodies').execute();
      await ledger.db.deleteFrom('notifications').where('id', '>', top - 1).execute();
      const next = batch(3, true);
      assert.deepEqual(await applyBatch(ledger.db, next, undefined, { deferDerivation: { at: T0 } }), next.map(() => 'applied'));
      const got = await stored();
      for (const r of next) assert.ok(Number(got.get(r.notification.messageId)?.id) > top, `${r.notification.messageId} reused an id`);
    });

    test('a body the ledger refuses fails the whole batch: none of its notifications is recorded', async () => {
      if (engine.name === 'sqlite') {
        await sql`CREATE TRIGGER refuse_poison BEFORE INSERT ON notification_bodies WHEN NEW.body LIKE '%poison%' BEGIN SELECT RAISE(ABORT, 'poison body'); END`.execute(ledger.db);
      } else {
        await sql`ALTER TABLE notification_bodies ADD CONSTRAINT refuse_poison CHECK (body NOT LIKE '%poison%')`.execute(ledger.db);
      }
      try {
        const rs = [...batch(3, true), ...batch(1, true, ' poison'), ...batch(3, true)];
        await assert.rejects(applyBatch(ledger.db, rs, undefined, { deferDerivation: { at: T0 } }));
        const got = await stored();
        for (const r of rs) assert.equal(got.has(r.notification.messageId), false, `${r.notification.messageId} recorded without its batch's bodies`);
      } finally {
        if (engine.name === 'sqlite') await sql`DROP TRIGGER refuse_poison`.execute(ledger.db);
        else await sql`ALTER TABLE notification_bodies DROP CONSTRAINT refuse_poison`.execute(ledger.db);
      }
    });

    test('more batches at once than the pool has connections: each completes with its bodies', { timeout: 30_000 }, async () => {
      // Twelve transactions against a pool of ten: if each waited for a second connection for its bodies, none would get one.
      const batches = Array.from({ length: 12 }, () => batch(30, true));
      const outcomes = await Promise.all(batches.map((b) => applyBatch(ledger.db, b, undefined, { deferDerivation: { at: T0 } })));
      for (const [i, b] of batches.entries()) assert.deepEqual(outcomes[i], b.map(() => 'applied'));
      const got = await stored();
      for (const r of batches.flat()) assert.equal(got.get(r.notification.messageId)?.body, r.body);
      assert.equal(await orphans(), 0);
    });

    test('a batch that fails after its bodies records no notification; delivered again, each is recorded once with its body', async () => {
      const rs = batch(40, true);
      const failing = async () => { throw new Error('capture side failed'); };
      await assert.rejects(applyBatch(ledger.db, rs, failing, { deferDerivation: { at: T0 } }), /capture side failed/);
      const none = await stored();
      for (const r of rs) assert.equal(none.has(r.notification.messageId), false);
      // PostgreSQL committed the bodies beside the transaction that failed: copies without a notification.
      // SQLite wrote them inside it, so they went with it.
      assert.equal(await orphans(), engine.name === 'postgres' ? rs.length : 0);

      assert.deepEqual(await applyBatch(ledger.db, rs, undefined, { deferDerivation: { at: T0 } }), rs.map(() => 'applied'));
      const got = await stored();
      for (const r of rs) {
        const row = got.get(r.notification.messageId);
        assert.equal(row?.body, r.body);
        assert.equal(row?.body_sha256, sha(r.body));
      }
      const perNotification = await sql<{ notification_id: number | string; n: number | string }>`
        SELECT notification_id, count(*) AS n FROM notification_bodies GROUP BY notification_id HAVING count(*) > 1`.execute(ledger.db);
      assert.deepEqual(perNotification.rows, []);
    });
  });
}
