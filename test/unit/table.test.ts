// Aligned columns (operator/cli/table.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderTable, writeTable } from '../../operator/cli/table.ts';

test('columns are as wide as their widest cell or header; empty cells read as a dash; trailing blanks trimmed', () => {
  assert.equal(renderTable(['A', 'LONGER'], [['abc', null], ['', 7], [true, undefined]]), 'A     LONGER\nabc   -\n-     7\ntrue  -\n');
  assert.equal(renderTable(['A'], [['x']], { headers: false }), 'x\n');
  assert.equal(renderTable(['A'], [], { headers: false }), '');
});

test('a table of a million rows is written line by line (a report of 100,000 log lines has 1.75 million)', () => {
  // Math.max(...column) overflowed the call stack here.
  const rows = Array.from({ length: 1_000_000 }, (_, i) => [`10.0.${i % 256}.${i % 250}`, i === 999_999 ? 'the-widest-cell' : 'x']);
  let lines = 0;
  let last = '';
  writeTable((s) => { lines += 1; last = s; }, ['ADDRESS', 'HOLDER'], rows);
  assert.equal(lines, 1_000_001);
  assert.equal(last, '10.0.63.249   the-widest-cell');
});
