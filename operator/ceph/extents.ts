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
