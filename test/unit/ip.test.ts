import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalIp, isIpv4 } from '../../operator/domain/ip.ts';
import { rng } from '../support/histories.ts';

test('IPv4: strict dotted quad', () => {
  for (const ok of ['0.0.0.0', '10.0.0.5', '255.255.255.255', '188.185.194.218']) assert.equal(canonicalIp(ok), ok);
  for (const bad of ['999.1.1.1', '1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1.2.3.4 x', '', '1..2.3', 'a.b.c.d']) assert.equal(canonicalIp(bad), undefined, bad);
  assert.equal(isIpv4('10.0.0.5'), true);
});

test('IPv6: one canonical spelling (RFC 5952)', () => {
  const cases: Array<[string, string]> = [
    ['2001:DB8:0:0::5', '2001:db8::5'],
    ['2001:db8::5', '2001:db8::5'],
    ['2001:0db8:0000:0000:0000:0000:0000:0005', '2001:db8::5'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['::', '::'],
    ['::1', '::1'],
    ['fe80::', 'fe80::'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['0:0:0:0:0:FFFF:C000:0201', '::ffff:192.0.2.1'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
  ];
  for (const [input, want] of cases) assert.equal(canonicalIp(input), want, input);
  for (const bad of ['2001:db8::5::1', '2001:db8:0:0:0:0:0:0:5', '12345::', ':::', '2001:db8::g', 'fe80::1%eth0', '1:2:3:4:5:6:7', '::ffff:999.0.0.1']) assert.equal(canonicalIp(bad), undefined, bad);
});

test('every spelling of a random IPv6 address has the same canonical form, which is a fixed point', () => {
  const r = rng(7);
  for (let k = 0; k < 2000; k += 1) {
    const groups = Array.from({ length: 8 }, () => (r() < 0.4 ? 0 : Math.floor(r() * 0x10000)));
    const full = groups.map((g) => g.toString(16).padStart(4, '0').toUpperCase()).join(':');
    const canonical = canonicalIp(full);
    assert.ok(canonical !== undefined, full);
    assert.equal(canonicalIp(canonical), canonical);
    assert.equal(canonicalIp(groups.map((g) => g.toString(16)).join(':')), canonical);
    assert.equal(canonical, canonical.toLowerCase());
    assert.ok(!/(^|:)0[0-9a-f]/.test(canonical), canonical);
  }
});
