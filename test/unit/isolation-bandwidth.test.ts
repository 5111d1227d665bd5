// The pieces a paced isolation copy is made of: the token bucket on the
// injected clock, the joining of read pieces into whole-object writes, and
// the diff stream `rbd import-diff` is fed.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { TokenBucket, paced } from '../../operator/capture/bandwidth.ts';
import { coalesced } from '../../operator/ceph/extents.ts';
import { readDiffStream, writeDiffStream } from '../../operator/ceph/rbd-diff-stream.ts';
import { FakeClock } from '../../operator/kube/runtime/clock.ts';
import type { ExtentData } from '../../operator/domain/block-store.ts';
import { rng } from '../support/histories.ts';

const MiB = 1024 * 1024;

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function* from<T>(xs: T[]): AsyncGenerator<T> {
  yield* xs;
}

describe('token bucket', () => {
  test('lets a burst go at once, then holds the rate; waiters are served in order', async () => {
    const clock = new FakeClock('2026-05-01T00:00:00Z');
    const bucket = new TokenBucket(clock, 4 * MiB);
    const done: number[] = [];
    const t0 = clock.now().getTime();
    const takes = [0, 1, 2, 3, 4].map(() => bucket.take(4 * MiB).then(() => done.push((clock.now().getTime() - t0) / 1000)));
    for (let i = 0; i < 50 && done.length < 5; i++) await clock.advance(100);
    await Promise.all(takes);
    // The first goes on the full bucket, then one every second.
    assert.deepEqual(done.map((s) => Math.round(s * 10) / 10), [0, 1, 2, 3, 4]);
  });

  test('paced pieces keep the rate over a long copy; the burst is at least one object (4 MiB)', async () => {
    const clock = new FakeClock('2026-05-01T00:00:00Z');
    const bucket = new TokenBucket(clock, 0.5 * MiB);
    const pieces = Array.from({ length: 10 }, (_, i) => ({ offset: i * MiB, data: Buffer.alloc(MiB) }));
    const t0 = clock.now().getTime();
    let got = 0;
    const run = (async () => { for await (const p of paced(from(pieces), bucket)) got += p.data.length; })();
    while (got < 10 * MiB) await clock.advance(200);
    await run;
    // 4 MiB of burst (one object, more than the half second's worth), then 6 MiB at 0.5 MiB/s.
    const seconds = (clock.now().getTime() - t0) / 1000;
    assert.ok(seconds >= 12 && seconds <= 12.5, `${seconds} s`);
    assert.throws(() => new TokenBucket(clock, 0), RangeError);
  });

  test('an abort stops a waiting take', async () => {
    const clock = new FakeClock('2026-05-01T00:00:00Z');
    const bucket = new TokenBucket(clock, MiB);
    await bucket.take(4 * MiB);
    const ac = new AbortController();
    const waiting = bucket.take(MiB, ac.signal);
    ac.abort(new Error('stopped'));
    await clock.advance(2000);
    await assert.rejects(waiting, /stopped/);
  });
});

describe('whole-object writes from read pieces', () => {
  test('pieces are joined where they touch and cut at object boundaries, the bytes unchanged', async () => {
    const next = rng(11);
    const r = { int: (n: number) => Math.floor(next() * n) };
    for (let h = 0; h < 30; h++) {
      const size = 64 * 1024;
      const object = 8 * 1024;
      const disk = randomBytes(size);
      const pieces: ExtentData[] = [];
      for (let at = r.int(2000); at < size; ) {
        const length = Math.min(size - at, 1 + r.int(9000));
        pieces.push({ offset: at, data: disk.subarray(at, at + length) });
        at += length + (r.int(3) === 0 ? r.int(5000) : 0);
      }
      const out = await collect(coalesced(from(pieces), object));
      const rebuilt = Buffer.alloc(size);
      const expected = Buffer.alloc(size);
      for (const p of pieces) p.data.copy(expected, p.offset);
      let end = 0;
      for (const p of out) {
        assert.ok(p.offset >= end && p.data.length > 0 && p.data.length <= object);
        assert.equal(Math.floor(p.offset / object), Math.floor((p.offset + p.data.length - 1) / object), 'within one object');
        p.data.copy(rebuilt, p.offset);
        end = p.offset + p.data.length;
      }
      assert.ok(rebuilt.equals(expected));
    }
    await assert.rejects(collect(coalesced(from([{ offset: 10, data: Buffer.alloc(5) }, { offset: 12, data: Buffer.alloc(5) }]), 8)), RangeError);
  });

  test('the diff stream written for rbd import-diff reads back as the same pieces', async () => {
    const pieces = [{ offset: 0, data: randomBytes(100) }, { offset: 4 * MiB, data: randomBytes(4 * MiB) }, { offset: 9 * MiB + 3, data: randomBytes(7) }];
    const stream = Buffer.concat(await collect(writeDiffStream(from(pieces))));
    assert.ok(stream.subarray(0, 12).equals(Buffer.from('rbd diff v1\n')));
    assert.equal(stream.at(-1), 'e'.charCodeAt(0));
    const records = await collect(readDiffStream(from([stream.subarray(0, 5), stream.subarray(5)])));
    const back = Buffer.alloc(10 * MiB);
    const want = Buffer.alloc(10 * MiB);
    for (const p of pieces) p.data.copy(want, p.offset);
    for (const rec of records) {
      assert.equal(rec.kind, 'data');
      if (rec.kind === 'data') rec.data.copy(back, rec.offset);
    }
    assert.ok(back.equals(want));
  });
});
