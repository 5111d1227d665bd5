// Output in pieces (operator/cli/json-out.ts): the same text as
// JSON.stringify(value, null, 2), for values of every shape, and a report too
// long for one string written whole.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { batched, writeJson, writeJsonFile } from '../../operator/cli/json-out.ts';
import { rng } from '../support/histories.ts';

function randomValue(r: () => number, level: number): unknown {
  const pick = Math.floor(r() * (level > 3 ? 7 : 11));
  switch (pick) {
    case 0: return null;
    case 1: return r() < 0.5;
    case 2: return Math.floor(r() * 2000) - 1000 + (r() < 0.3 ? 0.25 : 0);
    case 3: return ['', 'a', 'line\nbreak', 'quote " and \\ back', 'é ☃', '\u2028'][Math.floor(r() * 6)];
    case 4: return undefined;
    case 5: return new Date(1_700_000_000_000 + Math.floor(r() * 1e9));
    case 6: return Number.NaN;
    case 7: case 8: return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, level + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = 0; i < Math.floor(r() * 4); i++) o[['k', 'a b', '"q"', '', '0', 'toJSON'][Math.floor(r() * 5)] + String(i)] = randomValue(r, level + 1);
      if (r() < 0.1) o['f'] = () => 1;
      return o;
    }
  }
}

test('writeJson writes JSON.stringify(value, null, 2) byte for byte, at every depth of streaming', () => {
  const r = rng(41);
  for (let n = 0; n < 3000; n++) {
    const v = { top: randomValue(r, 0), list: Array.from({ length: Math.floor(r() * 5) }, () => randomValue(r, 1)), empty: [], none: {}, gone: undefined };
    const value = n % 7 === 0 ? [v, randomValue(r, 0)] : v;
    for (const depth of [0, 1, 2, 5]) {
      let text = '';
      writeJson((s) => { text += s; }, value, depth);
      assert.equal(text, JSON.stringify(value, null, 2), `case ${n}, depth ${depth}`);
    }
  }
});

test('batched writes hold the same text, in pieces of about a mebibyte', () => {
  const pieces: string[] = [];
  const w = batched((s) => pieces.push(s));
  for (let i = 0; i < 100_000; i++) w.line(`line ${i} ${'x'.repeat(20)}`);
  w.end();
  assert.ok(pieces.length > 2 && pieces.length < 6, String(pieces.length));
  assert.equal(pieces.join('').split('\n').length, 100_001);
});

test('a document longer than the longest string V8 can make is written whole', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qop-json-out-'));
  try {
    // Some 600 million characters: JSON.stringify of it throws "Invalid string length".
    const line = { text: 'y'.repeat(5_000), holders: [{ cloud: 'c', from: '2026-05-01T16:00:00.000Z' }] };
    const doc = { counts: { lines: 120_000 }, lines: Array.from({ length: 120_000 }, () => line) };
    assert.throws(() => JSON.stringify(doc, null, 2), RangeError);
    const path = join(dir, 'report.json');
    writeJsonFile(path, doc);
    const buf = readFileSync(path);
    assert.ok(buf.length > 600_000_000, String(buf.length));
    const head = '{\n  "counts": {\n    "lines": 120000\n  },\n  "lines": [\n    {\n      "text": "yyy';
    const tail = '"\n        }\n      ]\n    }\n  ]\n}\n';
    assert.equal(buf.subarray(0, head.length).toString(), head);
    assert.equal(buf.subarray(buf.length - tail.length).toString(), tail);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
