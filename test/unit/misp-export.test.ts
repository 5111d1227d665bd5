// The MISP export of a case: for generated case reports of every shape (no
// holder, shared private addresses, routers' SNAT addresses, more lines than
// become objects), the event passes MISP's format and template checks; the
// templates we fill agree with the published ones; and the check itself
// rejects what MISP would not take.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CaseReport } from '../../operator/capture/case-report.ts';
import type { Holder } from '../../operator/ledger/trace.ts';
import { caseMisp, MAX_LINE_OBJECTS, uuid5 } from '../../operator/report/misp.ts';
import { TEMPLATES } from '../../operator/report/misp-templates.ts';
import { mispProblems } from '../support/misp.ts';
import { rng } from '../support/histories.ts';

// The shared deterministic generator (mulberry32), so a failure names its seed.
function seeded(seed: number) {
  const next = rng(seed);
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] as T };
}

const T0 = Date.parse('2026-05-01T12:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();

function report(seed: number): CaseReport {
  const r = seeded(seed);
  const instanceCount = r.int(6);
  const instances = Array.from({ length: instanceCount }, (_, i) => {
    const created = T0 + r.int(3_600_000);
    const deleted = r.next() < 0.5 ? created + r.int(7_200_000) : null;
    const addresses = [`10.0.0.${2 + r.int(4)}`, ...(r.next() < 0.5 ? [`188.185.${r.int(3)}.${r.int(255)}`] : []), ...(r.next() < 0.2 ? [`2001:db8::${i.toString(16)}`] : [])];
    return {
      cloud: r.pick(['cern', 'lab']), id: `${i}9b0c1d2-0000-4000-8000-${String(seed).padStart(12, '0').slice(-12)}`, name: r.next() < 0.8 ? `vm-${i}` : null,
      project: r.next() < 0.9 ? `proj-${r.int(3)}` : null, user: r.next() < 0.9 ? `user-${r.int(3)}` : null, host: r.next() < 0.9 ? `cmp-${r.int(9)}` : null,
      image: r.next() < 0.5 ? 'img' : null, flavor: r.next() < 0.5 ? 'm1.small' : null, state: deleted === null ? 'active' : 'deleted',
      createdAt: r.next() < 0.9 ? iso(created) : null, deletedAt: deleted === null ? null : iso(deleted), deletedBy: deleted === null ? null : 'alice', firstSeenAt: iso(created),
      addresses: addresses.map((address) => ({ address, kind: address.startsWith('10.') ? 'fixed' : 'floating', network: 'net', port: 'p', mac: r.next() < 0.7 ? `fa:16:3e:00:00:${r.int(256).toString(16).padStart(2, '0')}` : null, from: iso(created), to: deleted === null ? null : iso(deleted) })),
    };
  });
  const holderOf = (address: string): Holder[] => instances.filter((i) => i.addresses.some((a) => a.address === address)).map((i) => ({
    cloud: i.cloud, kind: address.startsWith('10.') ? 'fixed' : 'floating', network: 'net', port: 'p', mac: null, project: i.project,
    from: i.createdAt ?? i.firstSeenAt, to: i.deletedAt, instance: { id: i.id, name: i.name, project: i.project, user: i.user, host: i.host, deletedAt: i.deletedAt },
  }));
  const pool = [...new Set(instances.flatMap((i) => i.addresses.map((a) => a.address))), '192.0.2.99'];
  const lineCount = seed % 10 === 0 ? MAX_LINE_OBJECTS + 1 + r.int(50) : r.int(40);
  const lines = Array.from({ length: lineCount }, (_, n) => {
    const address = r.pick(pool);
    // A router's SNAT address has no instance of its own.
    const holders: Holder[] = address === '192.0.2.99' && r.next() < 0.5
      ? [{ cloud: 'cern', kind: 'router-gateway', network: 'ext', port: null, mac: null, project: 'proj-0', from: iso(T0), to: null, instance: null }]
      : holderOf(address);
    return { source: r.pick(['batch.log', 'conn.log', 'a "quoted" file']), line: n + 1, address, at: iso(T0 + r.int(10_800_000)), text: `line ${n} from ${address}\nwith a new line`, holders };
  });
  return {
    case: { name: `CERT-${seed}`, reason: null, createdAt: iso(T0 + 86_400_000), createdBy: 'investigator', hold: null },
    generatedAt: iso(T0 + 90_000_000),
    counts: { lines: lines.length, attributed: lines.filter((l) => l.holders.length > 0).length, unattributed: lines.filter((l) => l.holders.length === 0).length, unreadable: 0, instances: instances.length, quarantines: 0 },
    owners: [], lines, unreadable: [], instances, timeline: { from: iso(T0), to: iso(T0 + 1), addresses: [] },
    quarantines: instances.slice(0, 2).map((i) => ({ id: `q-${i.id}`, cloud: i.cloud, instance: i.id, disk: 'disk', state: 'quarantined', bytes: 1, sha256: r.next() < 0.5 ? 'b'.repeat(64) : null, digestAt: null, isolation: 'isolated', isolatedAt: null, location: 'quarantine/x', capturedAt: null, expiresAt: null, heldBy: [] })),
    holds: [], audit: [],
  };
}

describe('MISP export of a case', () => {
  test('for generated case reports of every shape, the event passes the format and template checks', () => {
    for (let seed = 1; seed <= 60; seed++) {
      const r = report(seed);
      const e = caseMisp(r);
      assert.deepEqual(mispProblems(e), [], `seed ${seed}`);
      // Every address of the report is an attribute; lines beyond the cap are said to be left out.
      const addresses = new Set(r.lines.map((l) => l.address));
      assert.deepEqual(new Set(e.Event.Attribute.filter((a) => a.type === 'ip-src').map((a) => a.value)), addresses, `seed ${seed}`);
      assert.equal(e.Event.Object.filter((o) => o.name === 'network-connection').length, Math.min(r.lines.length, MAX_LINE_OBJECTS), `seed ${seed}`);
      assert.equal(e.Event.Attribute.some((a) => a.type === 'text'), r.lines.length > MAX_LINE_OBJECTS, `seed ${seed}`);
      // The same report exports to the same event; another case to other identities.
      assert.deepEqual(caseMisp(r), e, `seed ${seed}`);
      assert.notEqual(caseMisp({ ...r, case: { ...r.case, name: `${r.case.name}-b` } }).Event.uuid, e.Event.uuid);
    }
  });

  test('the templates we fill agree with the published definitions', () => {
    const published = JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/misp/object-templates.json'), 'utf8')) as Record<string, { uuid: string; version: number; 'meta-category': string; attributes: Record<string, { 'misp-attribute': string; multiple?: boolean; categories?: string[] }> }>;
    for (const t of TEMPLATES) {
      const p = published[t.name];
      assert.ok(p !== undefined, t.name);
      assert.deepEqual([t.uuid, t.version, t.metaCategory], [p.uuid, p.version, p['meta-category']], t.name);
      for (const [relation, spec] of Object.entries(t.relations)) {
        const q: { 'misp-attribute': string; multiple?: boolean; categories?: string[] } | undefined = p.attributes[relation];
        assert.ok(q !== undefined, `${t.name}.${relation}`);
        assert.equal(spec.type, q['misp-attribute'], `${t.name}.${relation}`);
        assert.equal(spec.multiple, q.multiple === true, `${t.name}.${relation}`);
        if (q.categories !== undefined) assert.ok(q.categories.includes(spec.category), `${t.name}.${relation}`);
      }
    }
  });

  test('name-based UUIDs are RFC 4122 version 5 and differ by name', () => {
    assert.match(uuid5('a'), /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.notEqual(uuid5('a'), uuid5('b'));
    assert.equal(uuid5('a'), uuid5('a'));
  });

  test('the check rejects what MISP would not take', () => {
    const seed = [7, 8, 9, 10, 11, 12].find((n) => report(n).instances.length > 0 && report(n).lines.length > 0) ?? 0;
    const good = caseMisp(report(seed));
    assert.deepEqual(mispProblems(good), []);
    const bad = structuredClone(good);
    const device = bad.Event.Object.find((o) => o.name === 'device');
    assert.ok(device !== undefined);
    device.template_uuid = '00000000-0000-4000-8000-000000000000';
    device.Attribute.push({ ...device.Attribute[0]!, uuid: uuid5('x'), object_relation: 'vm-flavour' });
    device.Attribute.push({ ...device.Attribute[0]!, uuid: uuid5('y'), object_relation: 'MAC-address', type: 'mac-address', category: 'Other', value: 'fa:16:3e:00:00:01' });
    bad.Event.Attribute[0]!.category = 'Financial fraud';
    bad.Event.Attribute.push({ ...bad.Event.Attribute[0]!, uuid: bad.Event.uuid, category: 'Network activity', value: 'not-an-ip' });
    const problems = mispProblems(bad);
    for (const p of [/template_uuid .* is not the template's/, /vm-flavour: the template has no such relation/, /MAC-address: the template allows it once/, /MAC-address: category Other is not valid for type mac-address/, /category Financial fraud is not valid for type ip-src/, /not-an-ip is not an IP address/, /uuid .* is used twice/, /attribute_count/]) {
      assert.ok(problems.some((x) => p.test(x)), `${p} in ${JSON.stringify(problems)}`);
    }
    assert.notDeepEqual(mispProblems({ Event: { ...good.Event, published: 'no' } }), []);
    assert.notDeepEqual(mispProblems({ Event: { ...good.Event, threat_level_id: 4 } }), []);
  });
});
