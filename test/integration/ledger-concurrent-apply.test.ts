// Batches applied at once, on both engines: a batch reads the instances,
// ports and routers it names, merges its events into them and writes them
// back whole, so two batches naming the same instance must not both merge
// into what they read before either committed (PostgreSQL: the clouds' locks
// of apply.ts; SQLite has one writer at a time). Each scenario holds the
// first batch open after its writes and starts the second meanwhile; on
// PostgreSQL the second goes through a pool of its own, as another process's
// batch would (batches on one pool take turns before the lock: apply.ts).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Kysely } from 'kysely';
import { openLedgerDb, type LedgerDb } from '../../operator/ledger/db.ts';
import type { LedgerSchema } from '../../operator/ledger/schema.ts';
import { applyBatch, withBodyDigest, type Recorded } from '../../operator/ledger/apply.ts';
import { deriveAll } from '../../operator/ledger/derive-pending.ts';
import { traceAddress } from '../../operator/ledger/trace.ts';
import type { DecodedNotification } from '../../operator/domain/events.ts';
import { ledgerEngines as engines, openLedger } from '../support/ledger-engines.ts';
import { fixed, instanceEvent, notification } from '../support/events.ts';

const T0 = Date.parse('2026-12-06T10:00:00Z');
const at = (min: number) => new Date(T0 + min * 60_000);
const recorded = (n: DecodedNotification): Recorded => withBodyDigest({ notification: n, body: JSON.stringify({ id: n.messageId }) });
const deferred = { deferDerivation: { at: T0 } };

/** A batch held open after its writes until `release()`; `reached` resolves once it is there. */
function holdOpen(): { hook: (trx: Kysely<LedgerSchema>) => Promise<void>; reached: Promise<void>; release: () => void } {
  let reached!: () => void;
  let release!: () => void;
  const there = new Promise<void>((r) => { reached = r; });
  const gate = new Promise<void>((r) => { release = r; });
  return { hook: async () => { reached(); await gate; }, reached: there, release };
}

for (const engine of engines) {
  describe(`batches applied at once on ${engine.name}`, () => {
    let ledger: LedgerDb;
    /** The second batch's way in: another pool on PostgreSQL, the one connection on SQLite. */
    let other: LedgerDb;
    let close = async () => {};
    before(async () => {
      let url: string;
      ({ ledger, close, url } = await openLedger(engine));
      other = engine.name === 'postgres' ? openLedgerDb(url) : ledger;
    });
    after(async () => {
      if (other !== ledger) await other.close();
      await close();
    });

    test('a deletion committed while another batch about the same instance waits is not undone by it', async () => {
      const cloud = 'c-delete';
      const over = { cloud };
      await applyBatch(ledger.db, [recorded(notification([instanceEvent('create.end', { id: 'vm-x' }, [fixed('10.9.0.5', 'port-x')])], at(0), over))], undefined, deferred);
      const first = holdOpen();
      const deletion = applyBatch(ledger.db, [recorded(notification([instanceEvent('delete.end', { id: 'vm-x', state: 'deleted' }, [], { authoritative: false })], at(20), over))], first.hook, deferred);
      await first.reached;
      // An older event of the same instance (a power-off before the deletion), in a batch of its own meanwhile.
      const update = applyBatch(other.db, [recorded(notification([instanceEvent('power_off.end', { id: 'vm-x', state: 'stopped' }, [fixed('10.9.0.5', 'port-x')])], at(10), over))], undefined, deferred);
      await new Promise((r) => setTimeout(r, 300));
      first.release();
      assert.deepEqual(await deletion, ['applied']);
      assert.deepEqual(await update, ['applied']);
      const row = await ledger.db.selectFrom('instances').select(['ended_at', 'deleted_at', 'state']).where('cloud', '=', cloud).where('instance_id', '=', 'vm-x').executeTakeFirstOrThrow();
      assert.equal(Number(row.ended_at), at(20).getTime(), 'the end recorded by the first batch');
      assert.equal(Number(row.deleted_at), at(20).getTime());
      assert.equal(row.state, 'deleted', 'the newer event\'s state');
      await deriveAll(ledger.db, { cloud });
      assert.deepEqual((await traceAddress(ledger.db, '10.9.0.5', at(30), cloud)).holders, [], 'nobody holds the address after the deletion');
      assert.equal((await traceAddress(ledger.db, '10.9.0.5', at(15), cloud)).holders[0]?.instance?.id, 'vm-x');
    });

    test('batches of one cloud on one pool take their turns before they take a connection', { timeout: 60_000 }, async () => {
      // More batches of one cloud at once than the pool has connections, each writing its bodies beside (apply.ts).
      const batches = Array.from({ length: 14 }, (_, i) => [recorded(notification([instanceEvent('create.end', { id: `vm-p${i}` }, [fixed(`10.9.1.${i}`, `port-p${i}`)])], at(i), { cloud: 'c-pool' }))]);
      const outcomes = await Promise.all(batches.map((b) => applyBatch(ledger.db, b, undefined, deferred)));
      assert.deepEqual(outcomes, batches.map(() => ['applied']));
    });

    test('an instance first seen by two batches at once keeps what each said', async () => {
      const cloud = 'c-new';
      const over = { cloud };
      const first = holdOpen();
      // Neither batch finds the instance: both would insert it whole.
      const create = applyBatch(ledger.db, [recorded(notification([instanceEvent('create.end', { id: 'vm-y', name: 'web-1' }, [fixed('10.9.0.6', 'port-y')])], at(0), over))], first.hook, deferred);
      await first.reached;
      const deletion = applyBatch(other.db, [recorded(notification([instanceEvent('delete.end', { id: 'vm-y', name: 'web-1', state: 'deleted' }, [], { authoritative: false })], at(30), over))], undefined, deferred);
      await new Promise((r) => setTimeout(r, 300));
      first.release();
      await create;
      await deletion;
      const row = await ledger.db.selectFrom('instances').select(['ended_at', 'first_seen_at', 'name']).where('cloud', '=', cloud).where('instance_id', '=', 'vm-y').executeTakeFirstOrThrow();
      assert.equal(Number(row.ended_at), at(30).getTime());
      assert.equal(Number(row.first_seen_at), at(0).getTime());
      assert.equal(row.name, 'web-1');
    });

    test('batches of different clouds do not wait for each other', async () => {
      const first = holdOpen();
      const held = applyBatch(ledger.db, [recorded(notification([instanceEvent('create.end', { id: 'vm-z' }, [fixed('10.9.0.7', 'port-z')])], at(0), { cloud: 'c-one' }))], first.hook, deferred);
      await first.reached;
      // On SQLite the connection is the held batch's until it ends: only PostgreSQL applies clouds side by side.
      if (engine.name === 'postgres') {
        const side = await applyBatch(other.db, [recorded(notification([instanceEvent('create.end', { id: 'vm-z' }, [fixed('10.9.0.7', 'port-z')])], at(0), { cloud: 'c-two' }))], undefined, deferred);
        assert.deepEqual(side, ['applied']);
      }
      first.release();
      assert.deepEqual(await held, ['applied']);
    });
  });
}
