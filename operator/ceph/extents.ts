// Allocation maps as the adapters build them: Ceph reports extents per
// object, in whatever order its callbacks run; the port promises them
// ascending, disjoint and merged.
import type { Extent } from '../domain/block-store.ts';

/** Sorts, clips to the image and merges touching or overlapping extents. */
export function normalizeExtents(extents: Iterable<Extent>, sizeBytes: number): Extent[] {
  const sorted = [...extents]
    .map((e) => ({ offset: e.offset, end: Math.min(e.offset + e.length, sizeBytes) }))
    .filter((e) => e.end > e.offset)
    .sort((a, b) => a.offset - b.offset);
  const out: { offset: number; end: number }[] = [];
  for (const e of sorted) {
    const last = out.at(-1);
    if (last !== undefined && e.offset <= last.end) last.end = Math.max(last.end, e.end);
    else out.push({ ...e });
  }
  return out.map((e) => ({ offset: e.offset, length: e.end - e.offset }));
}

/** The extents cut into pieces of at most `max` bytes, for reads of bounded size. */
export function* piecesOf(extents: readonly Extent[], max: number): Generator<Extent> {
  for (const e of extents) {
    for (let at = e.offset; at < e.offset + e.length; at += max) yield { offset: at, length: Math.min(max, e.offset + e.length - at) };
  }
}

/**
 * Pieces of data joined where they touch and cut at multiples of `max` (the
 * object size), so that a writer issues whole-object writes whatever size
 * the reader handed out. Refuses pieces that go backwards or overlap.
 */
export async function* coalesced(pieces: AsyncIterable<{ readonly offset: number; readonly data: Buffer }>, max: number): AsyncGenerator<{ offset: number; data: Buffer }> {
  let start = -1;
  let parts: Buffer[] = [];
  let length = 0;
  let end = 0;
  const flush = (): { offset: number; data: Buffer } => {
    const out = { offset: start, data: parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, length) };
    start = -1;
    parts = [];
    length = 0;
    return out;
  };
  for await (const piece of pieces) {
    if (piece.offset < end) throw new RangeError(`a piece at ${piece.offset} comes before the end of the previous one (${end})`);
    let { offset, data } = piece;
    if (start >= 0 && offset !== start + length) yield flush();
    while (data.length > 0) {
      if (start < 0) start = offset;
      const take = data.subarray(0, max - (offset % max));
      parts.push(take);
      length += take.length;
      offset += take.length;
      data = data.subarray(take.length);
      if (offset % max === 0) yield flush();
    }
    end = offset;
  }
  if (length > 0) yield flush();
}
