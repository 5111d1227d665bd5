// attribute() writes its holders' instants from cached pieces (isoOf): the text
// must be Date.prototype.toISOString's for every instant, including the years
// the built-in writes with six digits and a sign, and invalid ones must throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isoOf } from '../../operator/ledger/attribute.ts';

test('isoOf writes what toISOString writes, on every edge of a day and of the four-digit years', () => {
  const edges = [0, -1, 1, 999, 1000, 59_999, 60_000, 3_599_999, 3_600_000, 86_399_999, 86_400_000, -86_400_000, -86_400_001,
    Date.parse('2024-02-29T23:59:59.999Z'), Date.parse('2026-05-01T16:13:00.042Z'), Date.parse('9999-12-31T23:59:59.999Z'),
    Date.parse('9999-12-31T23:59:59.999Z') + 1, Date.parse('0000-01-01T00:00:00.000Z') - 1, 8.64e15, -8.64e15];
  for (const ms of edges) assert.equal(isoOf(ms), new Date(ms).toISOString(), String(ms));
  // Every millisecond of a stretch of a day, and instants spread over two years.
  for (let ms = Date.parse('2025-03-30T00:59:58Z'); ms < Date.parse('2025-03-30T01:00:03Z'); ms++) assert.equal(isoOf(ms), new Date(ms).toISOString());
  for (let k = 0; k < 100_000; k++) {
    const ms = Date.parse('2025-01-01T00:00:00Z') + Math.floor(((k * 7919) % 100_000) * 631_152.0001);
    assert.equal(isoOf(ms), new Date(ms).toISOString());
  }
});

test('isoOf throws on an instant no Date can hold, as toISOString does', () => {
  for (const ms of [Number.NaN, 8.64e15 + 1, -8.64e15 - 1, Number.POSITIVE_INFINITY]) assert.throws(() => isoOf(ms), RangeError);
  assert.equal(isoOf(1.5), new Date(1.5).toISOString());
});
