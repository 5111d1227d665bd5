// Statement pieces: power-of-two lengths keep the SQLite statement cache to a
// few texts per table, and no row is lost, repeated or reordered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pieces } from '../../operator/ledger/pieces.ts';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

test('pieces are powers of two, longest first, none over the maximum, and together the input in order', () => {
  for (const max of [1, 3, 64, 100, 400, 500]) {
    const top = 2 ** Math.floor(Math.log2(max));
    const lengths = new Set<number>();
    for (let n = 0; n <= 1200; n++) {
      const ps = pieces(range(n), max);
      assert.deepEqual(ps.flat(), range(n));
      for (const [i, p] of ps.entries()) {
        assert.ok(p.length <= top, `max ${max}, n ${n}: piece of ${p.length}`);
        assert.equal(p.length & (p.length - 1), 0, `max ${max}, n ${n}: piece of ${p.length} is no power of two`);
        if (i > 0) assert.ok(p.length <= (ps[i - 1] as number[]).length);
        lengths.add(p.length);
      }
    }
    // Every length the cache may see: log2(max) + 1 of them.
    assert.equal(lengths.size, Math.log2(top) + 1);
  }
});

test('an unbounded maximum gives one piece', () => {
  assert.deepEqual(pieces(range(437), Infinity), [range(437)]);
  assert.deepEqual(pieces([], Infinity), []);
  assert.throws(() => pieces([1], 0), /at least 1/);
});
