// Random mutations of every upstream sample through the decoders: whatever
// the bytes, the decoder answers with a notification or a DecodeError, never
// with any other exception. Seeded (QTEST_FUZZ_SEED to replay), bounded in
// count and in time.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { it } from 'node:test';
import { decodeNotificationOrThrow, DecodeError, type DeliveryMeta } from '../../operator/intake/decode/index.ts';
import { rng } from '../support/histories.ts';

const ROOT = join(import.meta.dirname, '..', 'fixtures', 'upstream');
const SEED = Number(process.env['QTEST_FUZZ_SEED'] ?? 0x5eed13);
const PER_FIXTURE = Number(process.env['QTEST_FUZZ_CASES'] ?? 400);
const BUDGET_MS = 30_000;

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

const TOKENS = ['{', '}', '[', ']', '"', '\\', ':', ',', '<', '>', '</', '/>', '&', '&#0;', '&#x110000;', '<![CDATA[', ']]>', '<!--', '<!DOCTYPE a>',
  'null', 'true', '-1e999', '1e309', '"oslo.version"', '"oslo.message"', '"2.0"', '"payload"', '"event_type"', '"timestamp"', '"99999-01-01 00:00:00"',
  '"0000-00-00 00:00:00"', '"NaN"', '\u0000', '\uFFFF', '\uD800', '==', '=', 'A'.repeat(4096), '['.repeat(2000), '<A>'.repeat(300)];

function mutate(input: Buffer, next: () => number, pool: Buffer[]): Buffer {
  const pick = (n: number) => Math.floor(next() * n);
  let b = Buffer.from(input);
  const rounds = 1 + pick(4);
  for (let r = 0; r < rounds; r++) {
    const at = pick(b.length + 1);
    switch (pick(9)) {
      case 0: { // flip bits in a few bytes
        for (let k = 0; k < 1 + pick(8) && b.length > 0; k++) {
          const i = pick(b.length);
          b[i] = (b[i] ?? 0) ^ (1 << pick(8));
        }
        break;
      }
      case 1: b = b.subarray(0, at); break;
      case 2: b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + pick(64)))]); break;
      case 3: b = Buffer.concat([b.subarray(0, at), Buffer.from(TOKENS[pick(TOKENS.length)] ?? ''), b.subarray(at)]); break;
      case 4: { // duplicate a slice
        const len = pick(Math.min(256, b.length - at) + 1);
        b = Buffer.concat([b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len)]);
        break;
      }
      case 5: { // random bytes
        const junk = Buffer.alloc(1 + pick(16));
        for (let i = 0; i < junk.length; i++) junk[i] = pick(256);
        b = Buffer.concat([b.subarray(0, at), junk, b.subarray(at)]);
        break;
      }
      case 6: { // splice with another sample
        const other = pool[pick(pool.length)] ?? Buffer.alloc(0);
        const from = pick(other.length + 1);
        b = Buffer.concat([b.subarray(0, at), other.subarray(from, from + pick(512))]);
        break;
      }
      case 7: b = Buffer.from(b.toString('base64')); break;
      case 8: { // wrap in an oslo 2.0 envelope, as its inner message
        b = Buffer.from(JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': b.toString('utf8') }));
        break;
      }
    }
  }
  return b;
}

it(`decoders survive random mutations of every upstream sample (seed ${SEED})`, () => {
  const files = walk(ROOT).filter((f) => !f.endsWith('.md')).sort();
  assert.ok(files.length >= 40, 'the upstream samples are where they should be');
  const pool = files.map((f) => readFileSync(f));
  const next = rng(SEED);
  const deadline = Date.now() + BUDGET_MS;
  const failures: string[] = [];
  let cases = 0;
  const reasons = new Map<string, number>();
  outer: for (const [i, file] of files.entries()) {
    const sample = pool[i] ?? Buffer.alloc(0);
    for (let n = 0; n < PER_FIXTURE; n++) {
      if (Date.now() > deadline) break outer;
      const body = mutate(sample, next, pool);
      for (const openNebula of [false, true]) {
        const meta: DeliveryMeta = { cloud: 'fuzz', receivedAt: new Date('2026-12-03T10:00:00Z'), exchange: openNebula ? 'opennebula' : 'nova' };
        cases += 1;
        try {
          decodeNotificationOrThrow(body, meta);
          reasons.set('decoded', (reasons.get('decoded') ?? 0) + 1);
        } catch (err) {
          if (err instanceof DecodeError) reasons.set(err.reason, (reasons.get(err.reason) ?? 0) + 1);
          else if (failures.length < 10) failures.push(`${relative(ROOT, file)} #${n}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
          else failures.push('');
        }
      }
    }
  }
  assert.ok(cases >= files.length * 2, `only ${cases} cases ran in the time budget`);
  assert.deepEqual(failures.filter((f) => f !== ''), [], `${failures.length} unhandled exceptions in ${cases} cases`);
  // The mutations must reach more than the first check: several verdicts, some successes.
  assert.ok(reasons.size >= 5, JSON.stringify([...reasons]));
});
