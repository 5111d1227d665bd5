// The packed trace rows (ledger/trace-packed.ts): split back into exactly the
// plain columns, or refused where the packing is ambiguous.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PACKED_TRACE_COLUMNS, TRACE_FIELDS, packedHolders, unpackRow, unpackRows } from '../../operator/ledger/trace-packed.ts';
import { TRACE_COLUMNS } from '../../operator/ledger/trace-index.ts';
import { holderOf, type HolderSource } from '../../operator/ledger/trace-holder.ts';

const plain: Record<string, string | number | null> = {
  cloud: 'c1', slot: 'port:p1|10.0.0.5', kind: 'fixed', network: 'n1', port: 'p1', mac: null, project: 'proj', valid_from: 1_735_758_988_820, valid_to: null,
  instance_id: 'vm-1', from_certain: 1000, to_certain: null, name: 'vm one', instance_project: 'proj', user_id: 'u1', host: null, deleted_at: 1_736_618_321_402,
  user_name: 'alice', user_name_source: 'keystone', user_name_at: 5, project_name: null, project_name_source: null, project_name_at: null, gone_after: 7, gone_by: 8,
};

/** What PostgreSQL's format() and num_nulls() make of a row. */
function pack(row: Record<string, string | number | null>): { packed: string; nulls: number } {
  const values = TRACE_FIELDS.map((f) => row[f.name]);
  return { packed: values.map((v) => (v === null || v === undefined ? '' : String(v))).join('\x1f'), nulls: values.filter((v) => v === null).length };
}

test('the packed select list formats every trace column, in TRACE_COLUMNS\' order', () => {
  assert.equal(TRACE_FIELDS.length, TRACE_COLUMNS.split(',').length);
  assert.equal(TRACE_FIELDS.length, 25);
  for (const f of TRACE_FIELDS) assert.ok(PACKED_TRACE_COLUMNS.includes(`${f.sql},`) || PACKED_TRACE_COLUMNS.includes(`${f.sql})`), f.sql);
  assert.match(PACKED_TRACE_COLUMNS, /^format\(E'%s(\\x1f%s){24}', /);
});

test('a packed row unpacks to the plain row, nulls and bigints included', () => {
  assert.deepEqual({ ...unpackRow(pack(plain)) }, plain);
  const allNull = Object.fromEntries(Object.keys(plain).map((k) => [k, ['cloud', 'slot', 'kind', 'valid_from'].includes(k) ? plain[k] ?? null : null]));
  assert.deepEqual({ ...unpackRow(pack(allNull)) }, allNull);
  assert.deepEqual(unpackRows([pack(plain), pack(allNull)])?.map((r) => ({ ...r })), [plain, allNull]);
  // num_nulls comes as a number from pg; a string would do too.
  assert.deepEqual({ ...unpackRow({ ...pack(plain), nulls: String(pack(plain).nulls) as unknown as number }) }, plain);
});

test('an empty text or a value holding the separator is refused, and so is the whole answer', () => {
  for (const name of ['', 'a\x1fb', '\x1f']) {
    const odd = { ...plain, name };
    assert.equal(unpackRow(pack(odd)), undefined, JSON.stringify(name));
    assert.equal(unpackRows([pack(plain), pack(odd)]), undefined);
  }
  // Both at once.
  assert.equal(unpackRow(pack({ ...plain, name: '', host: 'x\x1fy', user_id: null })), undefined);
  assert.deepEqual(unpackRows([]), []);
});

test('the holders built straight from packed rows are holderOf\'s on the unpacked rows, usual or not', () => {
  const usual = { ...plain, from_certain: null, user_name: null, user_name_source: null, user_name_at: null, gone_after: null, gone_by: null };
  const variants = [
    usual, plain, { ...usual, instance_id: null, name: null, instance_project: null, user_id: null, deleted_at: null },
    { ...usual, instance_project: null, valid_to: 1_736_618_321_402 }, { ...usual, to_certain: 1_736_618_321_000, valid_to: 1_736_618_321_402 },
    { ...usual, gone_after: 7 }, { ...usual, gone_after: 7, gone_by: 9 }, { ...usual, project_name: 'pn', project_name_source: 'keystone', project_name_at: 4 },
  ];
  for (const at of [1_735_758_988_000, 1_735_758_989_000, 1_736_618_321_100]) {
    const rows = variants.map(pack);
    assert.deepEqual(packedHolders(rows, at), variants.map((v) => holderOf(v as unknown as HolderSource, at)));
    // Same properties in the same order: the JSON is the same text.
    assert.equal(JSON.stringify(packedHolders(rows, at)), JSON.stringify(variants.map((v) => holderOf(v as unknown as HolderSource, at))));
  }
  assert.equal(packedHolders([pack({ ...usual, name: '' })], 0), undefined);
  assert.equal(packedHolders([pack(usual), pack({ ...usual, kind: 'router-gateway', slot: 'router-gw:r1|10.0.0.5' })], 0), undefined);
});
