// Observed facts in the derivation, as properties over generated histories of
// one slot: a random truth of who held it, a random share of its reports lost,
// and passes that compare a listing (the truth at the pass) with what the facts
// derive so far, as reconciliation does. Whatever is lost, the answer at a pass
// and after the last one is the truth; the uncertain part of an interval never
// starts before the previous pass; and the facts derive the same intervals in
// any order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deriveIntervals, type ChangePoint, type DerivedInterval } from '../../operator/domain/intervals.ts';
import { rng } from '../support/histories.ts';

const HOLDERS = ['A', 'B', 'C'];

function point(op: ChangePoint['op'], at: number, holder: string, id: string, since?: number | null): ChangePoint {
  return {
    at, seq: 0, op, holderKey: holder, ...(since === undefined ? {} : { since }),
    holder: { address: '192.0.2.1', kind: 'fixed', instanceId: holder === '' ? null : holder, port: null, mac: null, network: null, project: null, messageId: id },
  };
}

const covering = (xs: readonly DerivedInterval[], t: number) => xs.filter((i) => i.from <= t && (i.to === null || i.to > t));
const certainAt = (i: DerivedInterval, t: number) => (i.certainFrom === undefined || t >= i.certainFrom) && (i.certainTo === undefined || t <= i.certainTo);

function history(seed: number) {
  const r = rng(seed);
  const changes: Array<{ at: number; holder: string | null }> = [];
  let t = 0;
  for (let k = 0; k < 12; k += 1) {
    t += 10 + Math.floor(r() * 100);
    changes.push({ at: t, holder: r() < 0.3 ? null : HOLDERS[Math.floor(r() * HOLDERS.length)] as string });
  }
  const truth = (at: number) => [...changes].reverse().find((c) => c.at <= at)?.holder ?? null;
  const reports = changes.flatMap((c, k) => (r() < 0.35 ? [] : [c.holder === null ? point('release_any', c.at, '', `m${k}`) : point('bind', c.at, c.holder, `m${k}`)]));
  const passes = [...new Set([0, ...changes.map((c) => c.at + 1 + Math.floor(r() * 5)).filter(() => r() < 0.3), t + 50])].sort((a, b) => a - b);
  return { changes, truth, reports, passes, end: t + 50, r };
}

/** Reconciliation passes over the history: seen when the listing shows a holder the facts lack, unseen when they hold one the listing does not show. */
function reconcile(h: ReturnType<typeof history>): ChangePoint[] {
  const observed: ChangePoint[] = [];
  let previous: number | null = null;
  for (const p of h.passes) {
    const derived = deriveIntervals([...h.reports.filter((x) => x.at <= p), ...observed]);
    const shown = h.truth(p);
    const held = covering(derived, p);
    if (shown !== null && !held.some((i) => i.instanceId === shown)) observed.push(point('seen', p, shown, `pass-${p}`, previous));
    else for (const i of held) if (i.to === null && i.instanceId !== shown) observed.push(point('unseen', p, i.instanceId ?? '', `pass-${p}`, previous));
    previous = p;
  }
  return observed;
}

test('whatever is lost, the certain answer at every pass and after the last one is the truth', () => {
  for (let seed = 1; seed <= 300; seed += 1) {
    const h = history(seed);
    const derived = deriveIntervals([...h.reports, ...reconcile(h)]);
    const last = h.passes.at(-1) as number;
    for (const t of [...h.passes.slice(1), last + 1, last + 1000]) {
      const certain = covering(derived, t).filter((i) => certainAt(i, t)).map((i) => i.instanceId);
      const expected = h.truth(t);
      assert.deepEqual(certain, expected === null ? [] : [expected], `seed ${seed}, t ${t}`);
    }
    // After the last pass nothing is uncertain any more.
    assert.ok(covering(derived, last + 1).every((i) => certainAt(i, last + 1)), `seed ${seed}`);
  }
});

test('an observed start or end is uncertain only back to the previous pass', () => {
  for (let seed = 1; seed <= 300; seed += 1) {
    const h = history(seed);
    const observed = reconcile(h);
    const derived = deriveIntervals([...h.reports, ...observed]);
    for (const i of derived) {
      if (i.certainFrom !== undefined) {
        const pass = h.passes.indexOf(i.certainFrom);
        assert.ok(pass >= 0, `seed ${seed}: an uncertain start ends at a pass`);
        if (pass > 0) assert.ok(i.from >= (h.passes[pass - 1] as number), `seed ${seed}: the window starts at or after the previous pass`);
      }
      if (i.certainTo !== undefined && i.to !== null) {
        const pass = h.passes.indexOf(i.to);
        assert.ok(pass >= 0, `seed ${seed}: an uncertain end is a pass`);
        if (pass > 0) assert.ok(i.certainTo >= (h.passes[pass - 1] as number) || i.certainTo === i.from, `seed ${seed}: the window starts at or after the previous pass`);
      }
    }
  }
});

test('an unseen fact closes only the holder the listing missed', () => {
  const derived = deriveIntervals([point('bind', 10, 'A', 'm1'), point('bind', 30, 'B', 'm2'), point('unseen', 40, 'A', 'pass-40', 20)]);
  assert.deepEqual(derived.map((i) => [i.instanceId, i.from, i.to]), [['A', 10, 30], ['B', 30, null]], 'B, bound while the listing ran, stays');
  const any = deriveIntervals([point('bind', 10, 'A', 'm1'), point('unseen', 40, '', 'pass-40', 20)]);
  assert.deepEqual(any.map((i) => [i.instanceId, i.from, i.to, i.certainTo]), [['A', 10, 40, 20]]);
});

test('reports and observed facts derive the same intervals in any order', () => {
  for (let seed = 1; seed <= 200; seed += 1) {
    const h = history(seed);
    const facts = [...h.reports, ...reconcile(h)];
    const expected = deriveIntervals(facts);
    const shuffled = [...facts];
    for (let i = shuffled.length - 1; i > 0; i -= 1) {
      const j = Math.floor(h.r() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j] as ChangePoint, shuffled[i] as ChangePoint];
    }
    assert.deepEqual(deriveIntervals(shuffled.map((p, k) => ({ ...p, seq: k }))), expected, `seed ${seed}`);
  }
});
