// A re-derived slot keeps the interval rows that did not change (derive.ts,
// writeIntervals): only rows no derived interval matches are deleted, and only
// derived intervals no row matches are inserted. The rows that stay keep
// their instance copies current through the triggers (instance-copies.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Kysely } from 'kysely';
import { openLedgerDb, migrateToLatest } from '../../operator/ledger/db.ts';
import type { LedgerSchema } from '../../operator/ledger/schema.ts';
import { applyBatch } from '../../operator/ledger/apply.ts';
import { neutronFloatingIp, novaInstance } from '../sim/openstack-messages.ts';
import { decodeRaw, osloDelivery } from '../support/cloud-messages.ts';

const CLOUD = 'test';
const FIP = { id: '0f5e1c4a-7d8e-4c63-9c61-3f0a2b6e9d11', address: '188.185.194.218', network: 'ext-net', project: 'p-1' };
const at = (minute: number) => new Date(Date.UTC(2026, 2, 2, 8, minute));

async function apply(db: Kysely<LedgerSchema>, bodies: Array<{ body: string; exchange: 'nova' | 'neutron'; at: Date }>): Promise<void> {
  await applyBatch(db, bodies.map((b) => decodeRaw(osloDelivery(b.body, b.exchange, new Date(b.at.getTime() + 1_000)), CLOUD)));
}

const move = (minute: number, port: number) => ({
  body: neutronFloatingIp(FIP, 'update.end', at(minute), { portId: `port-${port}`, fixedAddress: `10.0.0.${port}`, instanceId: `vm-${port}` }),
  exchange: 'neutron' as const,
  at: at(minute),
});

async function withLedger(fn: (db: Kysely<LedgerSchema>) => Promise<void>): Promise<void> {
  const ledger = openLedgerDb('sqlite::memory:');
  try {
    await migrateToLatest(ledger);
    await fn(ledger.db);
  } finally {
    await ledger.close();
  }
}

async function rows(db: Kysely<LedgerSchema>): Promise<Array<{ id: number; valid_from: number; valid_to: number | null; port: string | null; instance_name: string | null }>> {
  return db.selectFrom('address_intervals').select(['id', 'valid_from', 'valid_to', 'port', 'instance_name']).where('slot', '=', `fip:${FIP.id}`).orderBy('valid_from').execute();
}

test('a late fact that changes the newest interval of a floating IP rewrites that row only', () => withLedger(async (db) => {
  // Moved from port to port, never disassociated: the slot is re-derived from its start every time.
  await apply(db, [1, 2, 3, 4, 5].map((p) => move(p * 10, p)));
  const before = await rows(db);
  assert.deepEqual(before.map((r) => r.port), ['port-1', 'port-2', 'port-3', 'port-4', 'port-5']);
  // A disassociation after the last move, arriving late: only the open interval ends.
  await apply(db, [{ body: neutronFloatingIp(FIP, 'update.end', at(55), { portId: null }), exchange: 'neutron', at: at(55) }]);
  const after = await rows(db);
  assert.deepEqual(after.slice(0, 4), before.slice(0, 4), 'the four closed intervals keep their rows');
  assert.equal(after.length, 5);
  assert.notEqual(after[4]?.id, before[4]?.id, 'the changed interval is a new row');
  assert.equal(after[4]?.valid_to, at(55).getTime());
  // A fact before them all (an association to port 9 at minute 5): every interval after it keeps its row, one is added.
  await apply(db, [move(5, 9)]);
  const earlier = await rows(db);
  assert.deepEqual(earlier.map((r) => r.port), ['port-9', 'port-1', 'port-2', 'port-3', 'port-4', 'port-5']);
  assert.deepEqual(earlier.slice(1), after);
}));

test('a kept row follows its instance: the copies of its columns change with the instance', () => withLedger(async (db) => {
  await apply(db, [move(10, 1), move(20, 2)]);
  const first = (await rows(db))[0];
  assert.equal(first?.instance_name, null, 'the instance is not known yet');
  const vm = { id: 'vm-1', name: 'batch-worker-1', project: FIP.project, user: 'u-1', host: 'cmp001', createdAt: at(8), ports: [] };
  await apply(db, [{ body: novaInstance(vm, 'create.end', at(9)), exchange: 'nova', at: at(9) }]);
  const again = (await rows(db))[0];
  assert.equal(again?.id, first?.id, 'the row stayed');
  assert.equal(again?.instance_name, 'batch-worker-1');
}));
