// The sparse digest is the full read's digest, whatever the layout of the
// allocated extents and however they are cut into pieces; and the export-diff
// reader of the CLI adapter takes Ceph's stream apart whatever its chunking.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { sparseSha256, SparseReadError } from '../../operator/capture/sparse-digest.ts';
import { readDiffStream, type DiffRecord } from '../../operator/ceph/rbd-diff-stream.ts';
import { normalizeExtents } from '../../operator/ceph/extents.ts';
import { RbdOutputError } from '../../operator/ceph/rbd-json.ts';
import type { ExtentData } from '../../operator/domain/block-store.ts';
import { rng } from '../support/histories.ts';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function* from<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

/** A random sparse disk, and its non-zero runs cut into random pieces. */
function generate(seed: number): { disk: Buffer; pieces: ExtentData[] } {
  const r = rng(seed);
  const size = 1 + Math.floor(r() * 40 * 1024 * 1024);
  const disk = Buffer.alloc(size);
  const pieces: ExtentData[] = [];
  let at = Math.floor(r() * 2) === 0 ? 0 : Math.floor(r() * 1024 * 1024);
  while (at < size) {
    const length = Math.min(size - at, 1 + Math.floor(r() * 300_000));
    for (let i = at; i < at + length; i += 997) disk[i] = 1 + Math.floor(r() * 255);
    // Allocated extents may hold zeros too; cut into pieces of random size.
    for (let p = at; p < at + length; ) {
      const n = Math.min(at + length - p, 1 + Math.floor(r() * 100_000));
      pieces.push({ offset: p, data: disk.subarray(p, p + n) });
      p += n;
    }
    at += length + Math.floor(r() * 5 * 1024 * 1024);
  }
  return { disk, pieces };
}

describe('sparse digest', () => {
  test('equals the SHA-256 of the full disk for generated layouts', async () => {
    for (let seed = 1; seed <= 25; seed++) {
      const { disk, pieces } = generate(seed);
      const got = await sparseSha256({ sizeBytes: disk.length, pieces: from(pieces) });
      assert.deepEqual(got, { sha256: sha(disk), bytes: disk.length, readBytes: pieces.reduce((s, p) => s + p.data.length, 0) }, `seed ${seed}`);
    }
  });

  test('an empty disk and a disk with no allocated extent hash as zeros', async () => {
    assert.equal((await sparseSha256({ sizeBytes: 0, pieces: from([]) })).sha256, sha(Buffer.alloc(0)));
    assert.equal((await sparseSha256({ sizeBytes: 3 * 1024 * 1024 + 5, pieces: from([]) })).sha256, sha(Buffer.alloc(3 * 1024 * 1024 + 5)));
  });

  test('pieces out of order, overlapping or beyond the end are refused, never hashed around', async () => {
    const piece = (offset: number, n: number): ExtentData => ({ offset, data: Buffer.alloc(n, 7) });
    await assert.rejects(sparseSha256({ sizeBytes: 100, pieces: from([piece(50, 10), piece(10, 10)]) }), SparseReadError);
    await assert.rejects(sparseSha256({ sizeBytes: 100, pieces: from([piece(10, 10), piece(15, 10)]) }), SparseReadError);
    await assert.rejects(sparseSha256({ sizeBytes: 100, pieces: from([piece(95, 10)]) }), SparseReadError);
  });

  test('a failing read fails the digest', async () => {
    async function* failing(): AsyncGenerator<ExtentData> {
      yield { offset: 0, data: Buffer.alloc(10, 1) };
      throw new Error('connection lost');
    }
    await assert.rejects(sparseSha256({ sizeBytes: 100, pieces: failing() }), /connection lost/);
  });
});

describe('allocation maps', () => {
  test('extents are sorted, clipped to the disk and merged when they touch or overlap', () => {
    assert.deepEqual(
      normalizeExtents([{ offset: 100, length: 50 }, { offset: 0, length: 10 }, { offset: 10, length: 5 }, { offset: 120, length: 10 }, { offset: 190, length: 50 }, { offset: 300, length: 1 }], 200),
      [{ offset: 0, length: 15 }, { offset: 100, length: 50 }, { offset: 190, length: 10 }],
    );
  });
});

/** Ceph's "rbd diff v1" encoding of records. */
function encode(records: readonly (DiffRecord | { kind: 'from'; name: string })[]): Buffer {
  const parts: Buffer[] = [Buffer.from('rbd diff v1\n')];
  const u64 = (n: number): Buffer => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    return b;
  };
  for (const r of records) {
    if (r.kind === 'from') {
      const len = Buffer.alloc(4);
      len.writeUInt32LE(Buffer.byteLength(r.name));
      parts.push(Buffer.from('f'), len, Buffer.from(r.name));
    } else if (r.kind === 'size') parts.push(Buffer.from('s'), u64(r.sizeBytes));
    else if (r.kind === 'data') parts.push(Buffer.from('w'), u64(r.offset), u64(r.data.length), r.data);
    else parts.push(Buffer.from('z'), u64(r.offset), u64(r.length));
  }
  parts.push(Buffer.from('e'));
  return Buffer.concat(parts);
}

function chunked(b: Buffer, seed: number): Buffer[] {
  const r = rng(seed);
  const out: Buffer[] = [];
  for (let at = 0; at < b.length; ) {
    const n = 1 + Math.floor(r() * 40);
    out.push(b.subarray(at, at + n));
    at += n;
  }
  return out;
}

async function collect(input: Buffer[]): Promise<{ size?: number; data: Buffer; zeros: number }> {
  const parts: Buffer[] = [];
  let size: number | undefined;
  let zeros = 0;
  let next = 0;
  for await (const r of readDiffStream(from(input))) {
    if (r.kind === 'size') size = r.sizeBytes;
    else if (r.kind === 'zero') zeros += r.length;
    else {
      assert.equal(r.offset, next === 0 ? r.offset : next, 'a record\'s pieces follow one another');
      parts.push(r.data);
      next = r.offset + r.data.length;
    }
  }
  return { ...(size === undefined ? {} : { size }), data: Buffer.concat(parts), zeros };
}

describe('export-diff stream', () => {
  const data = Buffer.from(Array.from({ length: 300 }, (_, i) => i % 251));
  const stream = encode([{ kind: 'from', name: 'snap' }, { kind: 'size', sizeBytes: 4096 }, { kind: 'data', offset: 100, data }, { kind: 'zero', offset: 400, length: 50 }]);

  test('records are read whatever the chunking of the stream', async () => {
    for (let seed = 1; seed <= 20; seed++) assert.deepEqual(await collect(chunked(stream, seed)), { size: 4096, data, zeros: 50 });
  });

  test('a stream cut anywhere, garbage or a wrong banner is an output error', async () => {
    for (const cut of [0, 5, 12, 13, 20, 40, stream.length - 1]) await assert.rejects(collect([stream.subarray(0, cut)]), RbdOutputError, `cut at ${cut}`);
    await assert.rejects(collect([Buffer.concat([stream, Buffer.from('x')])]), RbdOutputError);
    await assert.rejects(collect([Buffer.from('rbd diff v2\ne')]), RbdOutputError);
    await assert.rejects(collect([Buffer.from('rbd diff v1\nq')]), RbdOutputError);
  });
});
