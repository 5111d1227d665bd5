// The layering the README's architecture paragraph promises, checked on the
// import graph of operator/: dependencies point inward, and no module can reach
// itself through its value imports. A new import that breaks a rule fails here
// with the offending edge, not later as a tangle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../../operator');

interface Edge { from: string; to: string; typeOnly: boolean }

function sources(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

function edges(): Edge[] {
  const out: Edge[] = [];
  for (const file of sources(root)) {
    const src = readFileSync(file, 'utf8');
    const from = relative(root, file);
    for (const m of src.matchAll(/^(import|export)\s+(type\s+)?[^;]*?from\s+'(\.[^']+)'/gms)) {
      out.push({ from, to: relative(root, resolve(dirname(file), m[3]!)), typeOnly: m[2] !== undefined });
    }
    for (const m of src.matchAll(/import\(\s*'(\.[^']+)'\s*\)/g)) {
      out.push({ from, to: relative(root, resolve(dirname(file), m[1]!)), typeOnly: false });
    }
  }
  return out;
}

const area = (path: string) => path.split('/')[0]!.replace(/\.ts$/, '');

/** What each inner area may import (besides itself); type imports count too: a type is a dependency. */
const allowed: Record<string, readonly string[]> = {
  domain: [],
  resources: ['domain'],
  logs: ['domain'],
  ceph: ['domain'],
  ledger: ['domain', 'log'],
  clouds: ['domain', 'ceph', 'resources', 'log', 'secrets'],
  intake: ['domain', 'ledger', 'resources', 'log', 'clouds'],
};
/** The outer areas no inner module may import. */
const outer = ['capture', 'http', 'kube', 'cli', 'operator', 'main'];

test('inner areas import only what lies further in', () => {
  const all = edges();
  assert.ok(all.length > 100, `the scan found ${all.length} imports: the pattern no longer matches the code`);
  const wrong = all.filter((e) => {
    const a = area(e.from), b = area(e.to);
    if (a === b || !(a in allowed)) return false;
    return !allowed[a]!.includes(b);
  });
  assert.deepEqual(wrong.map((e) => `${e.from} -> ${e.to}`), []);
});

test('capture, the only user of the block store and ledger together, does not reach into http, cli or the composition', () => {
  const wrong = edges().filter((e) => area(e.from) === 'capture' && ['http', 'cli', 'operator', 'main'].includes(area(e.to)));
  assert.deepEqual(wrong.map((e) => `${e.from} -> ${e.to}`), []);
  // Of kube/, capture may use only the generic runtime (keyed queue, clock), never controllers or the API.
  const kube = edges().filter((e) => area(e.from) === 'capture' && area(e.to) === 'kube' && !/^kube\/runtime\/(queue|clock)\.ts$/.test(e.to));
  assert.deepEqual(kube.map((e) => `${e.from} -> ${e.to}`), []);
});

test('no inner area imports an outer one', () => {
  const wrong = edges().filter((e) => area(e.from) in allowed && outer.includes(area(e.to)));
  assert.deepEqual(wrong.map((e) => `${e.from} -> ${e.to}`), []);
});

test('no module reaches itself through value imports', () => {
  const graph = new Map<string, string[]>();
  for (const e of edges()) if (!e.typeOnly) graph.set(e.from, [...(graph.get(e.from) ?? []), e.to]);
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (node: string, path: string[]) => {
    if (state.get(node) === 'done') return;
    if (state.get(node) === 'open') { cycles.push([...path.slice(path.indexOf(node)), node].join(' -> ')); return; }
    state.set(node, 'open');
    for (const next of graph.get(node) ?? []) visit(next, [...path, node]);
    state.set(node, 'done');
  };
  for (const node of graph.keys()) visit(node, []);
  assert.deepEqual(cycles, []);
});
