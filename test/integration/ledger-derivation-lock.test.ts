// PostgreSQL runs a derivation beside other writers of the ledger (the
// intake's passes, reconciliation, identity names, `quarantine ingest`), each
// on its own connection. These tests hold a derivation open at the point
// where it has written its intervals and not yet committed, and let another
// writer run meanwhile: the intervals must end as if the two had run one
// after the other (derive.ts, DERIVATION_LOCK).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql, type Kysely } from 'kysely';
import { applyBatch } from '../../operator/ledger/apply.ts';
import { EVER, lockDerivation, rederive, touched, type Touched } from '../../operator/ledger/derive.ts';
import { deriveAll } from '../../operator/ledger/derive-pending.ts';
import { observePage, portObservations, Seen, type Pass } from '../../operator/ledger/observe.ts';
import { emptyDrift } from '../../operator/domain/inventory.ts';
import type { LedgerSchema } from '../../operator/ledger/schema.ts';
import type { DecodedNotification } from '../../operator/domain/events.ts';
import { withPgLedger } from '../support/pg.ts';
import { at, fixed, instanceEvent, notification, portEvent } from '../support/events.ts';

const CLOUD = 'cern';
const SLOT = 'port:p-a|10.0.0.5';

const recorded = (ns: DecodedNotification[]) => ns.map((n) => ({ notification: n, body: n.messageId }));

/** vm-a on port p-a with 10.0.0.5, named `old-name`. */
const history = (): DecodedNotification[] => [
  notification([portEvent('create.end', { id: 'p-a', deviceId: 'vm-a', deviceOwner: 'compute:nova', fixedIps: [{ address: '10.0.0.5' }] })], at(0), { source: 'neutron' }),
  notification([instanceEvent('create.end', { id: 'vm-a', name: 'old-name' }, [fixed('10.0.0.5', 'p-a')])], at(1)),
];

function slotTouched(slot: string): Touched {
  const t = touched();
  t.slots.set(slot, EVER);
  return t;
}

function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

const settledWithin = (p: Promise<unknown>, ms: number): Promise<'settled' | 'waiting'> =>
  Promise.race([p.then(() => 'settled' as const), new Promise<'waiting'>((resolve) => setTimeout(() => resolve('waiting'), ms))]);

/**
 * A derivation of the slot held open after it wrote: the lock, the slot's
 * intervals written anew (deleted first when `rewrite`), then it waits for
 * `release` before committing.
 */
function heldDerivation(db: Kysely<LedgerSchema>, rewrite: boolean) {
  const written = gate();
  const release = gate();
  const done = db.transaction().execute(async (trx) => {
    await lockDerivation(trx);
    if (rewrite) await sql`DELETE FROM address_intervals WHERE cloud = ${CLOUD} AND slot = ${SLOT}`.execute(trx);
    await rederive(trx, CLOUD, slotTouched(SLOT));
    written.open();
    await release.promise;
  });
  return { written: written.promise, release: release.open, done };
}

type IntervalView = { instance_id: string | null; valid_from: number; valid_to: number | null; instance_name: string | null };

async function intervals(db: Kysely<LedgerSchema>): Promise<IntervalView[]> {
  const rows = await db.selectFrom('address_intervals').select(['instance_id', 'valid_from', 'valid_to', 'instance_name'])
    .where('cloud', '=', CLOUD).where('slot', '=', SLOT).orderBy('valid_from').orderBy('instance_id').execute();
  return rows.map((r) => ({ ...r, valid_from: Number(r.valid_from), valid_to: r.valid_to === null ? null : Number(r.valid_to) }));
}

/** The slot's intervals derived again from nothing, one derivation alone. */
async function fromScratch(db: Kysely<LedgerSchema>): Promise<IntervalView[]> {
  await db.transaction().execute(async (trx) => {
    await lockDerivation(trx);
    await sql`DELETE FROM address_intervals WHERE cloud = ${CLOUD} AND slot = ${SLOT}`.execute(trx);
    await rederive(trx, CLOUD, slotTouched(SLOT));
  });
  return intervals(db);
}


test('PostgreSQL: an instance renamed while a derivation inserts its intervals ends with the new name on them', () => withPgLedger(async ({ db }) => {
  // Facts recorded, not yet derived: the held derivation is the first to write the slot.
  await applyBatch(db, recorded(history()), undefined, { deferDerivation: { at: 0 } });
  const held = heldDerivation(db, false);
  await held.written;
  // Any writer of instances: the copy trigger does the rest.
  const rename = db.updateTable('instances').set({ name: 'new-name' }).where('cloud', '=', CLOUD).where('instance_id', '=', 'vm-a').execute();
  const meanwhile = await settledWithin(rename, 300);
  held.release();
  await held.done;
  await rename;
  const got = await intervals(db);
  assert.ok(got.length > 0);
  assert.deepEqual(got.map((r) => r.instance_name), got.map(() => 'new-name'), 'every interval of vm-a carries its current name');
  assert.equal(meanwhile, 'waiting', 'the rename waits for the derivation to commit');
  // A later pass finds the slot's intervals unchanged and leaves them as they are: it could not have mended a stale copy.
  await deriveAll(db, { cloud: CLOUD });
  assert.deepEqual((await intervals(db)).map((r) => r.instance_name), got.map(() => 'new-name'));
}));

test('PostgreSQL: reconciliation deriving a slot while a pass derives it leaves the slot as one derivation would', () => withPgLedger(async ({ db }) => {
  await applyBatch(db, recorded(history()));
  const held = heldDerivation(db, true);
  await held.written;
  // The cloud's listing shows the port on vm-b: reconciliation records that and derives the slot.
  const pass: Pass = { cloud: CLOUD, listing: 'ports', startedAt: at(30).getTime(), since: null, id: 'listing-1' };
  const observed = portObservations({ id: 'p-a', deviceId: 'vm-b', deviceOwner: 'compute:nova', networkId: 'net-1', project: 'proj-a', fixedIps: ['10.0.0.5'] });
  const reconcile = observePage(db, pass, at(31).getTime(), observed, new Seen(), emptyDrift());
  const meanwhile = await settledWithin(reconcile, 300);
  held.release();
  await held.done;
  await reconcile;
  assert.equal(meanwhile, 'waiting', 'reconciliation waits for the pass to commit');
  const got = await intervals(db);
  assert.ok(got.some((r) => r.instance_id === 'vm-b'), 'the observed holder is in the slot');
  assert.deepEqual(got, await fromScratch(db), 'no interval twice, none lost');
}));
