// Interval derivation from change points: the order of arrival never matters.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { deriveIntervals, clipIntervals, splitByOwner, type ChangePoint, type ChangeOp } from '../../operator/domain/intervals.ts';

let seq = 0;
function p(at: number, op: ChangeOp, holderKey: string, extra: Partial<ChangePoint['holder']> = {}): ChangePoint {
  return {
    at, seq: seq++, op, holderKey,
    holder: { address: '203.0.113.7', kind: 'floating', instanceId: holderKey === '' ? null : `vm-${holderKey}`, port: holderKey || null, mac: null, network: null, project: null, messageId: `m${seq}`, ...extra },
  };
}
const spans = (points: ChangePoint[]) => deriveIntervals(points).map((i) => [i.port, i.from, i.to]);

function permutations<T>(xs: T[]): T[][] {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((rest) => [x, ...rest]));
}

describe('deriveIntervals', () => {
  test('bind opens an interval that stays open', () => {
    assert.deepEqual(spans([p(10, 'bind', 'A')]), [['A', 10, null]]);
  });
  test('a bind by another holder moves the address in one step', () => {
    assert.deepEqual(spans([p(10, 'bind', 'A'), p(20, 'bind', 'B')]), [['A', 10, 20], ['B', 20, null]]);
  });
  test('a repeated bind by the same holder changes nothing', () => {
    assert.deepEqual(spans([p(10, 'bind', 'A'), p(15, 'bind', 'A'), p(30, 'release_any', '')]), [['A', 10, 30]]);
  });
  test('release_any closes whatever is open; release closes only its own holder', () => {
    assert.deepEqual(spans([p(10, 'bind', 'A'), p(20, 'release_any', '')]), [['A', 10, 20]]);
    assert.deepEqual(spans([p(10, 'bind', 'A'), p(20, 'bind', 'B'), p(25, 'release', 'A')]), [['A', 10, 20], ['B', 20, null]]);
  });
  test('the same holder twice gives two intervals', () => {
    assert.deepEqual(spans([p(10, 'bind', 'A'), p(20, 'release_any', ''), p(30, 'bind', 'A'), p(40, 'release_any', '')]), [['A', 10, 20], ['A', 30, 40]]);
  });
  test('zero-length intervals are dropped', () => {
    assert.deepEqual(spans([p(10, 'bind', 'A'), p(10, 'bind', 'B')]), [['B', 10, null]]);
  });
  test('every arrival order of the same points gives the same intervals', () => {
    const points = [p(10, 'bind', 'A'), p(20, 'bind', 'B'), p(30, 'release_any', ''), p(40, 'bind', 'A'), p(45, 'release', 'B')];
    const expected = spans(points);
    for (const order of permutations(points)) {
      // Arrival order also decides seq; ties are impossible here, so only time matters.
      assert.deepEqual(spans(order.map((q, i) => ({ ...q, seq: i }))), expected);
    }
  });
  test('later reports fill attributes an earlier one lacked', () => {
    const d = deriveIntervals([p(10, 'bind', 'A', { network: null }), p(12, 'bind', 'A', { network: 'ext-net' })]);
    assert.equal(d[0]?.network, 'ext-net');
  });
  test('equal times are ordered by the facts, not by arrival', () => {
    const points = [p(10, 'bind', 'A'), p(20, 'bind', 'B'), p(20, 'release_any', ''), p(20, 'bind', 'C')];
    const expected = spans(points);
    for (const order of permutations(points)) assert.deepEqual(spans(order.map((q, i) => ({ ...q, seq: i }))), expected);
  });
  test('a late re-association to the same holder is not lost to an earlier one', () => {
    // bind A, release, bind A again: the second bind is a new interval in every order.
    const points = [p(10, 'bind', 'A'), p(20, 'release_any', ''), p(30, 'bind', 'A')];
    for (const order of permutations(points)) assert.deepEqual(spans(order), [['A', 10, 20], ['A', 30, null]]);
  });
  test('clipIntervals ends intervals at a terminal fact and drops those after it', () => {
    const d = deriveIntervals([p(10, 'bind', 'A'), p(20, 'release_any', ''), p(30, 'bind', 'A')]);
    assert.deepEqual(clipIntervals(d, () => 15, () => 'end').map((i) => [i.from, i.to, i.closedBy]), [[10, 15, 'end']]);
    assert.deepEqual(clipIntervals(d, () => undefined, () => null).map((i) => [i.from, i.to]), [[10, 20], [30, null]]);
  });
  test('splitByOwner names the port owner of each piece, falling back to the payload', () => {
    const [i] = deriveIntervals([p(10, 'bind', 'A', { instanceId: null })]);
    assert.ok(i !== undefined);
    const pieces = splitByOwner(i, [{ from: 15, to: 25, instanceId: 'vm-x' }], [{ from: 0, to: 20, instanceId: 'vm-f' }]);
    assert.deepEqual(pieces.map((q) => [q.from, q.to, q.instanceId]), [[10, 15, 'vm-f'], [15, 25, 'vm-x'], [25, null, null]]);
  });
});
