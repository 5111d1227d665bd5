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

describe('parseTimestamp answers as its grammar does, on generated near-timestamps', () => {
  // The grammar as a regular expression, and the Date round trip that catches impossible days: what the
  // character-by-character reader must agree with on every input, accepted or not, and with the same reason.
  const GRAMMAR = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/;
  function reference(text: string): ReturnType<typeof parseTimestamp> {
    if (text === '') return { ok: true, date: undefined };
    const m = GRAMMAR.exec(text);
    if (m === null) return { ok: false, reason: `unrecognised timestamp ${JSON.stringify(text)}` };
    const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
    const frac = m[7];
    const zone = m[8];
    const utc = Date.UTC(year, month - 1, day, hour, minute, second, frac === undefined ? 0 : Number(frac.padEnd(3, '0').slice(0, 3)));
    const probe = new Date(utc);
    if (probe.getUTCFullYear() !== year || probe.getUTCMonth() !== month - 1 || probe.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) {
      return { ok: false, reason: `impossible date/time ${JSON.stringify(text)}` };
    }
    let offset = 0;
    if (zone !== undefined && zone !== 'Z') {
      const digits = zone.slice(1).replace(':', '');
      const hours = Number(digits.slice(0, 2));
      const minutes = Number(digits.slice(2));
      if (hours > 23 || minutes > 59) return { ok: false, reason: `bad zone offset in ${JSON.stringify(text)}` };
      offset = (zone.startsWith('-') ? -1 : 1) * (hours * 60 + minutes);
    }
    return { ok: true, date: new Date(utc - offset * 60_000) };
  }

  it('agrees on 100,000 mutations of real stamps (characters replaced, inserted, deleted)', () => {
    const seeds = [
      '2016-06-14 19:45:48.649772', '2012-10-29T13:42:11Z', '2016-08-17 15:10:12+00:00', '2016-03-21T11:36:56.5-0500',
      '2024-02-29T23:59:59.123456789+23:59', '2000-02-29 00:00:00', '1900-02-29 00:00:00', '0099-12-31T00:00:00', '2026-04-31T12:00:00Z',
    ];
    const alphabet = [...'0123456789-:T Z+.x\u0660'];
    let state = 20261206;
    const next = (n: number) => {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      return state % n;
    };
    for (let k = 0; k < 100_000; k++) {
      let text = seeds[next(seeds.length)] as string;
      for (let edits = next(4); edits > 0; edits--) {
        const at = next(text.length + 1);
        const op = next(3);
        const c = alphabet[next(alphabet.length)] as string;
        text = op === 0 ? text.slice(0, at) + c + text.slice(at + 1) : op === 1 ? text.slice(0, at) + c + text.slice(at) : text.slice(0, at) + text.slice(at + 1);
      }
      assert.deepEqual(parseTimestamp(text), reference(text), JSON.stringify(text));
    }
  });
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
