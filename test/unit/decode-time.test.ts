import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lenientTimestamp, parseEpochSeconds, parseTimestamp } from '../../operator/intake/decode/time.ts';

describe('parseTimestamp reads every format the clouds send (naive = UTC)', () => {
  const accepted: [string, string, string][] = [
    ['oslo envelope, naive with space and microseconds', '2016-06-14 19:45:48.649772', '2016-06-14T19:45:48.649Z'],
    ['oslo envelope when microseconds are 0', '2016-06-14 19:45:48', '2016-06-14T19:45:48.000Z'],
    ['Nova versioned ISO with Z', '2012-10-29T13:42:11Z', '2012-10-29T13:42:11.000Z'],
    ['Nova legacy created_at with +00:00', '2016-08-17 15:10:12+00:00', '2016-08-17T15:10:12.000Z'],
    ['Nova legacy launched_at with .000000', '2016-08-17T15:10:33.000000', '2016-08-17T15:10:33.000Z'],
    ['Neutron naive ISO', '2016-03-21T16:36:56', '2016-03-21T16:36:56.000Z'],
    ['non-UTC offset', '2016-03-21T18:36:56+02:00', '2016-03-21T16:36:56.000Z'],
    ['negative offset without colon', '2016-03-21T11:36:56.5-0500', '2016-03-21T16:36:56.500Z'],
    ['nanosecond fraction truncated to ms', '2016-03-21T16:36:56.123456789Z', '2016-03-21T16:36:56.123Z'],
    ['one fraction digit', '2016-03-21 16:36:56.7', '2016-03-21T16:36:56.700Z'],
    ['leap day', '2024-02-29 00:00:00', '2024-02-29T00:00:00.000Z'],
  ];
  for (const [what, text, iso] of accepted) {
    it(what, () => {
      const parsed = parseTimestamp(text);
      assert.ok(parsed.ok, `rejected ${text}`);
      assert.equal(parsed.date?.toISOString(), iso);
    });
  }

  it('an empty string (Nova legacy "unset") is no date, not an error', () => {
    assert.deepEqual(parseTimestamp(''), { ok: true, date: undefined });
  });

  const rejected: [string, string][] = [
    ['the garbled 2014 ceilometer sample', '2014-05-3107: 19: 43.463101'],
    ['date only', '2016-03-21'],
    ['impossible day', '2015-02-29 00:00:00'],
    ['day past the month', '2026-02-30T10:00:00Z'],
    ['month 13', '2016-13-01T00:00:00'],
    ['hour 24', '2016-01-01T24:00:00'],
    ['second 60', '2016-01-01T23:59:60'],
    ['offset hour 24', '2016-01-01T00:00:00+24:00'],
    ['trailing junk', '2016-01-01T00:00:00Zjunk'],
    ['Python None', 'None'],
    ['epoch seconds', '1727952499'],
  ];
  for (const [what, text] of rejected) {
    it(`rejects ${what}`, () => {
      const parsed = parseTimestamp(text);
      assert.equal(parsed.ok, false);
      if (!parsed.ok) assert.ok(parsed.reason.includes(JSON.stringify(text)), parsed.reason);
    });
  }
});

describe('parseEpochSeconds reads OpenNebula times', () => {
  it('seconds since the epoch', () => {
    const parsed = parseEpochSeconds('1727952499');
    assert.ok(parsed.ok);
    assert.equal(parsed.date?.toISOString(), '2024-10-03T10:48:19.000Z');
  });
  it('0 means unset', () => {
    assert.deepEqual(parseEpochSeconds('0'), { ok: true, date: undefined });
  });
  for (const text of ['', '-1', '17.5', 'now', '2016-01-01']) {
    it(`rejects ${JSON.stringify(text)}`, () => {
      assert.equal(parseEpochSeconds(text).ok, false);
    });
  }
});

describe('lenientTimestamp keeps a bad optional field from sinking the message', () => {
  it('null and undefined are silently absent', () => {
    const warnings: string[] = [];
    assert.equal(lenientTimestamp(null, 'f', warnings), undefined);
    assert.equal(lenientTimestamp(undefined, 'f', warnings), undefined);
    assert.deepEqual(warnings, []);
  });
  it('a malformed value becomes a warning naming the field', () => {
    const warnings: string[] = [];
    assert.equal(lenientTimestamp('yesterday', 'payload.launched_at', warnings), undefined);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /^payload\.launched_at: /);
  });
});
