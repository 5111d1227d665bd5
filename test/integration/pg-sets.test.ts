// The apply path's bulk inserts on PostgreSQL (operator/ledger/pg-sets.ts):
// rows go as one JSON text and bodies as one bytea, and what is read back
// must be exactly what was given, whatever the strings hold.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { insertBodies, insertRows } from '../../operator/ledger/pg-sets.ts';
import { withPgLedger } from '../support/pg.ts';

// Strings a notification may carry: JSON's own escapes, control characters, characters outside the BMP,
// and text that looks like an escape (a backslash, then `ud800`).
const AWKWARD = ['plain', 'quote " and \\ backslash', 'line\nbreak\ttab\r', 'ünïcødé 中文 🚀', '\\ud800 is text here', '', "it's", '{"json": [1, "two"]}', '\u0001\u001f'];

const event = (i: number, s: string) => ({ cloud: 'cern', instance_id: `vm-${i}`, message_id: `m-${i}`, at: 1_777_651_200_123 + i, event_type: s, action: 'update' });

test('PostgreSQL: rows inserted in bulk read back as given, strings, numbers and nulls alike', () => withPgLedger(async ({ db }) => {
  const rows = AWKWARD.map((s, i) => ({
    cloud: 'cern', slot: `port:p-${i}|10.0.0.${i}`, at: 1_777_651_200_123 + i, op: 'bind', holder_key: s, address: `10.0.0.${i}`, kind: 'fixed',
    // Undefined and null both mean NULL.
    instance_id: i % 2 === 0 ? s : undefined, port: null, mac: null, network: s, project: null, message_id: `m-${i}`, ord: i * 1000,
  }));
  await insertRows(db, 'address_changes', rows);
  const got = await db.selectFrom('address_changes').select(['slot', 'at', 'holder_key', 'instance_id', 'network', 'message_id', 'ord']).orderBy('at').execute();
  assert.deepEqual(
    got.map((r) => ({ ...r, at: Number(r.at) })),
    rows.map((r) => ({ slot: r.slot, at: r.at, holder_key: r.holder_key, instance_id: r.instance_id ?? null, network: r.network, message_id: r.message_id, ord: r.ord })),
  );
}));

test('PostgreSQL: RETURNING and ON CONFLICT work as the tail of a bulk insert', () => withPgLedger(async ({ db }) => {
  await insertRows(db, 'instance_events', [event(1, 'a')]);
  const returned = await insertRows<'instance_events', { message_id: string }>(db, 'instance_events', [event(1, 'a'), event(2, 'b')],
    sql`ON CONFLICT (cloud, instance_id, message_id) DO NOTHING RETURNING message_id`);
  assert.deepEqual(returned.map((r) => r.message_id), ['m-2']);
}));

test('PostgreSQL: a lone surrogate is stored as U+FFFD, as SQLite stores it', () => withPgLedger(async ({ db }) => {
  await insertRows(db, 'instance_events', [event(1, 'before\ud800after'), event(2, 'fine')]);
  const got = await db.selectFrom('instance_events').select(['message_id', 'event_type']).orderBy('message_id').execute();
  assert.deepEqual(got, [{ message_id: 'm-1', event_type: 'before\uFFFDafter' }, { message_id: 'm-2', event_type: 'fine' }]);
}));

test('PostgreSQL: a number that is not finite is refused, not written as NULL', () => withPgLedger(async ({ db }) => {
  await assert.rejects(insertRows(db, 'instance_events', [{ ...event(1, 'a'), at: Number.NEGATIVE_INFINITY }]), /instance_events\.at is -Infinity/);
  assert.equal((await db.selectFrom('instance_events').select('message_id').execute()).length, 0);
}));

test('PostgreSQL: bodies inserted in bulk read back byte for byte', () => withPgLedger(async ({ db }) => {
  const bodies = [...AWKWARD, '\uFEFF{"with": "a BOM"}', 'x'.repeat(70_000)].map((body, i) => ({ notification_id: i + 1, received_at: 1_777_651_200_000 + i, body }));
  await insertBodies(db, bodies);
  await insertBodies(db, []);
  const got = await db.selectFrom('notification_bodies').select(['notification_id', 'received_at', 'body']).orderBy('notification_id').execute();
  assert.deepEqual(got.map((r) => ({ notification_id: Number(r.notification_id), received_at: Number(r.received_at), body: r.body })), bodies);
}));
