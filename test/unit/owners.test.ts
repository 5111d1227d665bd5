// The owner summary of an attribution (operator/logs/owners.ts), against a
// plain reference written for clarity rather than speed, on random
// attributions: owners that share a project or a user, holders without an
// instance, names known on some holders only, several holders of one owner
// on one line, and names that sort differently by code unit and by locale
// (the order is by code unit, whatever the machine's locale).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { summarizeOwners, type Attributed, type OwnerFacts, type OwnerSummary } from '../../operator/logs/owners.ts';
import { rng } from '../support/histories.ts';

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function reference(attributed: readonly Attributed[]): OwnerSummary[] {
  const byOwner = new Map<string, { s: OwnerSummary; instances: Map<string, string | null>; hosts: Set<string>; addresses: Set<string>; first: number; last: number }>();
  for (const { line, holders } of attributed) {
    const seen = new Set<string>();
    for (const h of holders) {
      const project = h.instance?.project ?? h.project;
      const user = h.instance?.user ?? null;
      const key = JSON.stringify([h.cloud, project, user]);
      let o = byOwner.get(key);
      if (o === undefined) {
        o = { s: { cloud: h.cloud, project, user, instances: [], hosts: [], addresses: [], firstLine: '', lastLine: '', lines: 0 }, instances: new Map(), hosts: new Set(), addresses: new Set(), first: Infinity, last: -Infinity };
        byOwner.set(key, o);
      }
      if (h.instance !== null) o.instances.set(h.instance.id, h.instance.name ?? o.instances.get(h.instance.id) ?? null);
      if (h.instance?.host != null) o.hosts.add(h.instance.host);
      o.addresses.add(line.address);
      if (seen.has(key)) continue;
      seen.add(key);
      o.s.lines += 1;
      o.first = Math.min(o.first, line.at.getTime());
      o.last = Math.max(o.last, line.at.getTime());
    }
  }
  const summaries: OwnerSummary[] = [];
  for (const o of byOwner.values()) {
    const ids = [...o.instances.keys()].sort(byText);
    summaries.push({
      cloud: o.s.cloud, project: o.s.project, user: o.s.user,
      instances: ids.map((id) => ({ id, name: o.instances.get(id) ?? null })),
      hosts: [...o.hosts].sort(byText), addresses: [...o.addresses].sort(byText),
      firstLine: new Date(o.first).toISOString(), lastLine: new Date(o.last).toISOString(), lines: o.s.lines,
    });
  }
  // Most lines first; then cloud, project and user (stable: first seen first among equals).
  const key = (o: OwnerSummary) => [o.cloud, o.project ?? '', o.user ?? ''];
  return summaries.sort((a, b) => {
    if (a.lines !== b.lines) return b.lines - a.lines;
    const [ka, kb] = [key(a), key(b)];
    for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return byText(ka[i] as string, kb[i] as string);
    return 0;
  });
}

function randomAttribution(seed: number): Attributed[] {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  // Upper and lower case, a hyphen and an accent: the locale's order is not the code units'.
  const words = ['a', 'B', 'b', 'é', 'e', 'Z', 'a-b', 'ab', '10', '9', 'null'];
  const nullable = (p: number) => (r() < p ? null : pick(words));
  const instances = Array.from({ length: 1 + Math.floor(r() * 12) }, (_, i) => ({ id: `${pick(words)}-${i}`, project: nullable(0.2), user: nullable(0.3), host: nullable(0.3) }));
  const out: Attributed[] = [];
  const made: OwnerFacts[] = [];
  const lines = Math.floor(r() * 60);
  for (let n = 0; n < lines; n++) {
    const holders: OwnerFacts[] = [];
    const count = Math.floor(r() * 5);
    for (let k = 0; k < count; k++) {
      // Attribution shares a holder among the lines it answers: some holders here come again, the same object.
      if (made.length > 0 && r() < 0.4) {
        holders.push(pick(made));
        continue;
      }
      const i = r() < 0.2 ? null : pick(instances);
      const h = {
        cloud: pick(['cern', 'CERN', 'desy']),
        project: nullable(0.3),
        instance: i === null ? null : { id: i.id, name: nullable(0.5), project: i.project, user: i.user, host: i.host },
      };
      made.push(h);
      holders.push(h);
    }
    out.push({ line: { source: 'f', lineNo: n + 1, text: '', address: pick(['10.0.0.1', '10.0.0.2', '2001:db8::1', '188.185.1.1']), at: new Date(1_700_000_000_000 + Math.floor(r() * 1e6)) }, holders });
  }
  return out;
}

test('the owner summary equals the plain reference on 500 random attributions', () => {
  for (let seed = 1; seed <= 500; seed++) {
    const a = randomAttribution(seed);
    assert.deepEqual(summarizeOwners(a), reference(a), `seed ${seed}`);
  }
});

test('owners and instances in code-unit order, whatever the locale', () => {
  const line = { source: 'f', lineNo: 1, text: '', address: '10.0.0.1', at: new Date('2026-05-01T16:00:00Z') };
  const holder = (user: string, id: string) => ({ cloud: 'c', project: 'p', instance: { id, name: null, project: 'p', user, host: null } });
  const owners = summarizeOwners([{ line, holders: [holder('bob', 'b'), holder('Carol', 'a'), holder('alice', 'B'), holder('alice', 'A')] }]);
  assert.deepEqual(owners.map((o) => o.user), ['Carol', 'alice', 'bob']);
  assert.deepEqual(owners[1]?.instances.map((i) => i.id), ['A', 'B']);
});

test('one owner holding an address twice over on a line counts the line once', () => {
  const line = { source: 'f', lineNo: 1, text: '', address: '10.0.0.1', at: new Date('2026-05-01T16:00:00Z') };
  const vm = { id: 'vm', name: null, project: 'p', user: 'u', host: 'h' };
  const [owner] = summarizeOwners([{ line, holders: [{ cloud: 'c', project: 'p', instance: vm }, { cloud: 'c', project: 'p', instance: { ...vm, name: 'web' } }] }]);
  assert.equal(owner?.lines, 1);
  assert.deepEqual(owner?.instances, [{ id: 'vm', name: 'web' }]);
});
