// Every shape of bad body ends in a DecodeError with the reason the corpus
// names, and the limits (body size, field length) hold for bodies far larger
// than the corpus could keep.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { decodeNotification, decodeNotificationOrThrow, DecodeError, DEFAULT_LIMITS, type DeliveryMeta } from '../../operator/intake/decode/index.ts';
import { isStrictBase64 } from '../../operator/intake/decode/body.ts';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'malformed');
const RECEIVED = new Date('2026-12-03T10:00:00Z');

export function malformedCorpus(): Array<{ file: string; reason: string; body: Buffer; openNebula: boolean }> {
  return readdirSync(DIR)
    .filter((f) => f.includes('--'))
    .sort()
    .map((file) => ({ file, reason: file.slice(0, file.indexOf('--')), body: readFileSync(join(DIR, file)), openNebula: file.endsWith('.xml') || file.endsWith('.b64') }));
}

const meta = (openNebula: boolean, extra: Partial<DeliveryMeta> = {}): DeliveryMeta => ({
  cloud: 'lab', receivedAt: RECEIVED, exchange: openNebula ? 'opennebula' : 'neutron', ...extra,
});

const reasonOf = (body: Uint8Array | string, m: DeliveryMeta): string => {
  const r = decodeNotification(body, m);
  return r.ok ? 'decoded' : r.error.reason;
};

describe('the malformed corpus', () => {
  const corpus = malformedCorpus();
  it('is not empty', () => assert.ok(corpus.length >= 20));
  for (const { file, reason, body, openNebula } of corpus) {
    it(file, () => {
      // Only DecodeError may come out of the decoder itself: anything else would be a defect.
      try {
        decodeNotificationOrThrow(body, meta(openNebula));
        assert.fail(`${file} decoded`);
      } catch (err) {
        assert.ok(err instanceof DecodeError, `${file}: ${String(err)}`);
        assert.equal(err.reason, reason, `${file}: ${err.message}`);
      }
    });
  }
});

describe('limits', () => {
  it('strict base64 is recognised by a linear scan', () => {
    assert.equal(isStrictBase64('QUJD'), true);
    assert.equal(isStrictBase64('QUI='), true);
    assert.equal(isStrictBase64('QQ=='), true);
    assert.equal(isStrictBase64('Q==='), false);
    assert.equal(isStrictBase64('QU=I'), false);
    assert.equal(isStrictBase64('QUJ'), false);
    assert.equal(isStrictBase64('QU\nJD'), false);
    assert.equal(isStrictBase64(''), false);
    assert.equal(isStrictBase64('QUJD-_=='), false);
  });

  it('a body of 6 MB of base64-shaped characters is a decode error, not a stack overflow', () => {
    const big = 'A'.repeat(6 * 1024 * 1024 - 1) + '!';
    const wide = { maxBodyBytes: 64 * 1024 * 1024 };
    assert.equal(reasonOf(big, meta(true, { limits: wide })), 'bad-base64');
    assert.equal(reasonOf('A'.repeat(6 * 1024 * 1024), meta(true, { limits: wide })), 'bad-xml');
    assert.equal(reasonOf(Buffer.from('B'.repeat(6 * 1024 * 1024)), meta(false, { limits: wide })), 'not-json');
  });

  it('a body over the size limit is refused unread (default a few MiB, configurable)', () => {
    assert.ok(DEFAULT_LIMITS.maxBodyBytes >= 1024 * 1024 && DEFAULT_LIMITS.maxBodyBytes <= 16 * 1024 * 1024);
    // Not even valid UTF-8: the limit comes first.
    const body = Buffer.alloc(DEFAULT_LIMITS.maxBodyBytes + 1, 0xff);
    const r = decodeNotification(body, meta(false));
    assert.ok(!r.ok && r.error.reason === 'too-large');
    assert.match(r.ok ? '' : r.error.message, /exceeds the limit/);
    assert.equal(reasonOf('{"a":1}', meta(false, { limits: { maxBodyBytes: 3 } })), 'too-large');
  });

  it('a 10 MiB instance name is refused, naming the field', () => {
    const name = 'x'.repeat(10 * 1024 * 1024);
    const sample = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'upstream', 'nova-versioned', 'instance-create-end.json'), 'utf8');
    const body = sample.replace('"display_name": "some-server"', `"display_name": "${name}"`);
    assert.ok(body.length > name.length);
    assert.equal(reasonOf(body, meta(false)), 'too-large');
    const r = decodeNotification(body, meta(false, { limits: { maxBodyBytes: 64 * 1024 * 1024 } }));
    assert.ok(!r.ok);
    assert.equal(r.error.reason, 'field-too-long');
    assert.match(r.error.message, /^events\[0\]\.instance\.name holds 10485760 characters/);
  });

  it('whatever the decoder throws ends as a decoder-failure verdict, never an exception', () => {
    const headers = new Proxy({}, { ownKeys: () => { throw new RangeError('Maximum call stack size exceeded'); } });
    const r = decodeNotification('<VM/>', meta(false, { headers }));
    assert.ok(!r.ok);
    assert.equal(r.error.reason, 'decoder-failure');
    assert.match(r.error.message, /RangeError: Maximum call stack/);
  });
});
