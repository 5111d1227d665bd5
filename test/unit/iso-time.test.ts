import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isoTime } from '../../operator/ledger/iso-time.ts';

test('isoTime writes what Date.prototype.toISOString writes', () => {
  const edges = [0, 1, 999, 1000, 86_399_999, 86_400_000, 951_782_400_000, 951_868_799_999, 4_107_542_400_000,
    253_402_300_799_999, 253_402_300_800_000, -1, -86_400_001, 8.64e15, -8.64e15, 1.5, 1e12 + 0.5];
  for (const v of edges) assert.equal(isoTime(v), new Date(v).toISOString(), String(v));
  // Seeded, so a failure names a value that fails again.
  let x = 123456789;
  for (let i = 0; i < 200_000; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const v = Math.floor((x / 2 ** 31) * 253_402_300_800_000) + (i % 1000);
    assert.equal(isoTime(v), new Date(v).toISOString(), String(v));
  }
  assert.throws(() => isoTime(Number.NaN), RangeError);
});
